"""The OpenAPI 3.1 document of the server, generated from the route table, and the ``/docs`` page.

Schemas are written here by hand (the hot path never builds pydantic models); every route of
:data:`~modelport.server.routes.ROUTES` appears with its parameters, request body, responses,
error statuses and its auth policy (``x-auth-policy`` plus the ``apiKey`` security scheme).
"""

from __future__ import annotations

import html
import inspect
import re
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from modelport.server.auth import Policy
from modelport.server.middleware import request_info
from modelport.server.routes import ROUTES, RouteSpec

_PARAM = re.compile(r"{(\w+)}")
_REF = "#/components/schemas/"


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_ANY_LIST = {"type": "array", "items": {}}
_TENSOR = _obj(
    {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                                                 "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]},
        "parameters": {"type": "object"},
        "data": _ANY_LIST,
    },
    ("name", "shape", "datatype"),
)  # fmt: skip

SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "error": {"type": "string", "description": "What went wrong, naming the offending value."},
            "hint": {"type": ["string", "null"], "description": "How to fix it."},
            "type": {"type": "string", "description": "Error class, e.g. ValidationError."},
            "request_id": {"type": "string", "description": "Quote it to the operator; also in X-Request-ID."},
        },
        ("error", "type", "request_id"),
    ),
    "Live": _obj({"live": {"type": "boolean"}}),
    "V1Live": _obj({"status": {"type": "string", "enum": ["alive"]}}),
    "Ready": _obj({"ready": {"type": "boolean"}}),
    "ModelReady": _obj({"name": {"type": "string"}, "ready": {"type": "boolean"}}),
    "ServerMetadata": _obj(
        {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "ModelMetadata": _obj(
        {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _obj({"name": {}, "datatype": {}, "shape": {}})},
            "outputs": {"type": "array", "items": _obj({"name": {}, "datatype": {}, "shape": {}})},
            "serving": _obj({"version": {"type": "string"}, "runtime": {"type": "string"}}),
        }
    ),
    "InferenceRequest": _obj(
        {
            "id": {"type": "string"},
            "parameters": {"type": "object", "description": "binary_data_output: true returns every output in binary."},
            "inputs": {"type": "array", "items": _TENSOR, "description": "One per column, or one 2-D [rows, columns]."},
            "outputs": {"type": "array", "items": _obj({"name": {"type": "string"}, "parameters": {"type": "object"}})},
        },
        ("inputs",),
    ),
    "InferenceResponse": _obj(
        {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _TENSOR},
        },
        ("model_name", "outputs"),
    ),
    "V1Request": _obj(
        {
            "instances": {"type": "array", "items": {}, "description": "Records ({column: value}) or rows."},
            "inputs": {"type": "object", "description": "Columns: {column: [values...]}."},
            "probabilities": {"type": "boolean", "description": "Also return class probabilities."},
        }
    ),
    "V1Response": _obj(
        {
            "predictions": _ANY_LIST,
            "probabilities": _ANY_LIST,
            "classes": _ANY_LIST,
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
        },
        ("predictions",),
    ),
    "MlflowRequest": _obj(
        {
            "dataframe_split": _obj({"columns": {"type": "array", "items": {"type": "string"}}, "data": _ANY_LIST}),
            "dataframe_records": {"type": "array", "items": {"type": "object"}},
            "instances": _ANY_LIST,
            "inputs": {},
            "params": {"type": "object", "description": "Accepted and ignored."},
        }
    ),
    "MlflowResponse": _obj({"predictions": _ANY_LIST}, ("predictions",)),
    "MlflowCsv": {
        "type": "string",
        "description": "UTF-8 CSV: a header row naming the columns, then one row per prediction.",
        "example": "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n",
    },
    "RepositoryIndexRequest": _obj({"ready": {"type": "boolean"}}),
    "RepositoryIndex": {
        "type": "array",
        "items": _obj(
            {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "state": {"type": "string"},
                "reason": {"type": "string"},
            }
        ),
    },
    "RepositoryLoad": _obj({"name": {"type": "string"}, "loaded": {"type": "boolean"}, "versions": _ANY_LIST}),
    "RepositoryUnload": _obj({"name": {"type": "string"}, "unloaded": {"type": "boolean"}}),
}

_ERRORS_BY_KIND: dict[str, tuple[int, ...]] = {
    "extensions": (400, 404),
    "inference": (400, 404, 413, 415, 422, 503, 504),
    "metadata": (404,),
    "health": (404, 503),
    "repository": (400, 404, 503),
    "operations": (),
}
_AUTH_ERRORS = {"predict": (401, 403, 429), "admin": (401, 403, 429), "public": ()}
_OTHER_REQUEST_TYPES: dict[str, dict[str, str]] = {"MlflowRequest": {"text/csv": "MlflowCsv"}}
"""Request media types besides JSON, by request schema."""


def _operation(spec: RouteSpec) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": spec.summary,
        "tags": [spec.tag],
        "x-auth-policy": spec.policy,
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in _PARAM.findall(spec.path)
        ],
    }
    if spec.policy != "public":
        op["security"] = [{"apiKey": []}, {"bearer": []}]
    if spec.request is not None:
        content = {"application/json": {"schema": {"$ref": _REF + spec.request}}}
        for media, schema in _OTHER_REQUEST_TYPES.get(spec.request, {}).items():
            content[media] = {"schema": {"$ref": _REF + schema}}
        op["requestBody"] = {"required": spec.tag == "inference", "content": content}
    ok: dict[str, Any] = {"description": "OK"}
    if spec.response is not None:
        ok["content"] = {"application/json": {"schema": {"$ref": _REF + spec.response}}}
    responses: dict[str, Any] = {"200": ok}
    for status in sorted({*_ERRORS_BY_KIND.get(spec.tag, ()), *_AUTH_ERRORS[spec.policy]}):
        responses[str(status)] = {
            "description": "Error",
            "content": {"application/json": {"schema": {"$ref": _REF + "Error"}}},
        }
    op["responses"] = responses
    return op


def extra_specs(extra: Sequence[tuple[BaseRoute, Policy]]) -> tuple[RouteSpec, ...]:
    """Route specs for routes added by the composition root (a mount documents its prefix)."""
    specs: list[RouteSpec] = []
    for route, policy in extra:
        if isinstance(route, Mount):
            summary = f"{route.name or route.path.strip('/')} (mounted application; every path below it)."
            specs.append(
                RouteSpec(f"{route.path}/{{path}}", "GET", route.name or "mount", policy, summary, "extensions")
            )
        elif isinstance(route, Route):
            doc = (inspect.getdoc(route.endpoint) or route.name or route.path).splitlines()[0]
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                specs.append(RouteSpec(route.path, method, route.name or "route", policy, doc, "extensions"))
    return tuple(specs)


def build_document(version: str, specs: tuple[RouteSpec, ...] = ROUTES) -> dict[str, Any]:
    """The OpenAPI document describing ``specs``."""
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        operation = _operation(spec)
        operation["operationId"] = f"{spec.handler}_{sum(len(p) for p in paths.values())}"
        paths.setdefault(spec.path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelport model server",
            "version": version,
            "description": "Open Inference Protocol V2, V1 :predict and MLflow /invocations (JSON or text/csv). "
            "Auth policy per route in x-auth-policy: public, predict or admin.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>modelport API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"><h1>modelport API</h1><p>Machine-readable: <a href="openapi.json">openapi.json</a></p>
<table><tr><th>method</th><th>path</th><th>auth</th><th>summary</th></tr>{rows}</table></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>if (window.SwaggerUIBundle) {{ SwaggerUIBundle({{url: "openapi.json", dom_id: "#ui"}}); }}</script>
</body></html>"""


class ApiDocs:
    """The ``/openapi.json`` and ``/docs`` handlers.

    Args:
        version: The server version shown in the document.
        extra: Routes added by the composition root, with their policies.
    """

    def __init__(self, version: str, extra: Sequence[tuple[BaseRoute, Policy]] = ()) -> None:
        specs = (*ROUTES, *extra_specs(extra))
        self.document = orjson.dumps(build_document(version, specs))
        rows = "".join(
            f"<tr><td>{s.method}</td><td><code>{html.escape(s.path)}</code></td><td>{s.policy}</td>"
            f"<td>{html.escape(s.summary)}</td></tr>"
            for s in specs
        )
        self.page = _PAGE.format(rows=rows).encode()

    async def openapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /openapi.json``."""
        request_info(scope).route = "docs"
        await _send(send, self.document, b"application/json")

    async def docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /docs``."""
        request_info(scope).route = "docs"
        await _send(send, self.page, b"text/html; charset=utf-8")


async def _send(send: Send, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
