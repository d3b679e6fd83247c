"""``POST /v2/models/{name}/feedback`` in an app, through the ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modelport.core.errors import ModelportError
from modelport.monitoring.feedback import FeedbackStore
from modelport.monitoring.feedback_routes import feedback_routes

pytestmark = pytest.mark.anyio


async def translate(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelportError)
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    routes = feedback_routes(FeedbackStore(tmp_path / "fb"), is_known=lambda name: name == "churn", max_body_bytes=2048)
    app = Starlette(routes=routes, exception_handlers={ModelportError: translate})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def test_feedback_is_stored(client: httpx.AsyncClient, tmp_path: Path) -> None:
    body = {"records": [{"request_id": "r1", "label": 1}, {"key": "c-9", "label": 0}], "key_column": "customer_id"}
    response = await client.post("/v2/models/churn/feedback", json=body)
    assert response.status_code == 200
    assert response.json() == {"model": "churn", "accepted": 2}
    assert len(list((tmp_path / "fb" / "model=churn").rglob("*.parquet"))) == 1
    bare = await client.post("/v2/models/churn/feedback", json=[{"request_id": "r2", "label": "yes"}])
    assert bare.json()["accepted"] == 1


@pytest.mark.parametrize(
    ("path", "content", "status", "error_type"),
    [
        ("/v2/models/churn/feedback", b"{not json", 400, "BadRequest"),
        ("/v2/models/churn/feedback", b'{"records": 3}', 400, "BadRequest"),
        ("/v2/models/churn/feedback", b'{"records": [{"label": 1}]}', 422, "ValidationError"),
        ("/v2/models/churn/feedback", b'{"records": [], "key_column": 5}', 400, "BadRequest"),
        ("/v2/models/other/feedback", b"[]", 404, "NotFound"),
        ("/v2/models/BAD/feedback", b"[]", 400, "InvalidName"),
        ("/v2/models/churn/feedback", b"[" + b'{"request_id": "r", "label": 1},' * 100 + b"]", 413, "PayloadTooLarge"),
    ],
)
async def test_bad_requests_are_refused_with_a_reason(
    client: httpx.AsyncClient, path: str, content: bytes, status: int, error_type: str
) -> None:
    response = await client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["type"] == error_type
    assert response.json()["hint"]


async def test_a_chunked_body_over_the_cap_is_refused_without_a_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1024

    response = await client.post("/v2/models/churn/feedback", content=chunks())
    assert response.status_code == 413
