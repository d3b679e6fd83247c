"""The HTTP door for ground truth: ``POST /v2/models/{name}/feedback``.

The server mounts :func:`feedback_routes` next to its inference routes. The body is JSON::

    {"records": [{"request_id": "3f2a...", "label": 1},
                 {"request_id": "9c1b...", "row": 2, "label": 0},
                 {"key": "c-17", "label": 0}],
     "key_column": "customer_id"}

(a bare list of records is accepted too); the answer is ``{"model": name, "accepted": n}``. The
body is read up to a size cap, validated completely, then stored in one file, so a bad record
rejects the whole call with a 4xx naming it. Errors are raised as :mod:`modelport.core.errors`
exceptions for the server's error table to translate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelport.core.errors import BadRequest, NotFound, PayloadTooLarge
from modelport.core.names import validate_name
from modelport.monitoring.feedback import FeedbackStore, parse_feedback

MAX_BODY_BYTES = 16 * 1024 * 1024
FEEDBACK_PATH = "/v2/models/{name}/feedback"


def feedback_routes(
    store: FeedbackStore,
    *,
    is_known: Callable[[str], bool] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> list[Route]:
    """The feedback route(s), to add to the server's routes.

    Args:
        store: Where feedback is stored.
        is_known: Tells whether a model name exists (served or registered); unknown names get 404.
            ``None`` accepts any valid name.
        max_body_bytes: Largest body accepted (413 beyond, before reading it all).
    """

    async def receive_feedback(request: Request) -> Response:
        name = validate_name(str(request.path_params["name"]))
        if is_known is not None and not await run_in_threadpool(is_known, name):
            raise NotFound(f"Model {name!r} is not known here.", hint="Send feedback for a served or registered model.")
        body = await _read_body(request, max_body_bytes)
        records, key_column = _parse_body(body)
        parsed = parse_feedback(records, key_column=key_column)
        receipt = await run_in_threadpool(store.add, name, parsed)
        return JSONResponse(receipt.to_dict())

    return [Route(FEEDBACK_PATH, receive_feedback, methods=["POST"], name="feedback")]


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Feedback body of {declared} bytes is over {limit}.", hint="Send it in smaller parts.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Feedback body is over {limit} bytes.", hint="Send it in smaller parts.")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_body(body: bytes) -> tuple[list[Any], str | None]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Feedback body is not valid JSON ({exc}).", hint='Send {"records": [...]}.') from exc
    if isinstance(data, list):
        return data, None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise BadRequest(
            "Feedback body has no 'records' list.",
            hint='Send {"records": [{"request_id": "...", "label": 1}], "key_column": null}.',
        )
    key_column = data.get("key_column")
    if key_column is not None and (not isinstance(key_column, str) or not key_column):
        raise BadRequest(f"Invalid 'key_column' {key_column!r}.", hint="Name the logged input column the keys match.")
    return data["records"], key_column
