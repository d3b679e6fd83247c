"""The direct path: V2/V1 predictions answered by modelport's HTTP protocol without an ASGI cycle.

Over a real socket, the protocol takes ``POST`` predictions straight to the shared prediction
steps; these tests check that a client cannot tell: the same status, body and headers as the ASGI
app gives in process, pipelined and keep-alive connections answered in order, ``Connection:
close`` and HTTP/1.0 honoured, deadlines (while the body arrives, and while the model scores),
clients that leave mid-body, metrics and the access log. API keys are checked as the ASGI route
checks them; a check that would wait, and compressed or chunked bodies, go the ASGI way.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from modelport.api.background import background_server
from modelport.registry.registry import Registry
from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from modelport.server.http_protocol import DirectCycle, ModelportHttpProtocol
from modelport.server.registry_auth import RegistryKeys

from .support import Gated, gated_app, rows, serving, v2_body

pytestmark = pytest.mark.anyio

GOOD = v2_body(rows(2))
ONE_ROW = orjson.dumps(v2_body(rows(1), ("predict",)))
_NOT_COMPARED = {"date", "x-request-id", "server"}


def _app(bundle: Path, **config: Any) -> Any:
    settings = {"models": (str(bundle),), "poll_interval_s": 0, "warmup_rows": 0, **config}
    return create_app(ServerConfig(**settings), registry=None)


def _spy(app: Any) -> list[bool]:
    """Record, per prediction request the protocol offered, whether the direct path took it."""
    taken: list[bool] = []
    original: Callable[..., Any] = app.direct.begin

    def begin(*args: Any) -> Any:
        call = original(*args)
        taken.append(call is not None)
        return call

    app.direct.begin = begin
    return taken


@contextmanager
def _socket_server(app: Any) -> Iterator[tuple[str, int]]:
    with background_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def _request(path: str, body: bytes, *extra: str, version: str = "1.1") -> bytes:
    head = [f"POST {path} HTTP/{version}", "Host: test", "Content-Type: application/json"]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join([*head, *extra]) + "\r\n\r\n").encode() + body


def _read_response(stream: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from ``stream`` (``buffer`` keeps what arrived beyond it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = stream.recv(65536)
        assert chunk, "the server closed the connection before a response"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = stream.recv(65536)
        assert chunk
        rest += chunk
    buffer[:] = rest[length:]
    return int(lines[0].split()[1]), headers, rest[:length]


def _without_ids(body: bytes) -> Any:
    doc = orjson.loads(body)
    if isinstance(doc, dict):
        doc.pop("request_id", None)
    return doc


# (label, path, body, extra headers): predictions good and bad, on the routes the direct path takes
CASES: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("V2 columns", "/v2/models/iris/infer", orjson.dumps(GOOD), {}),
    ("V2 output, id", "/v2/models/iris/infer", orjson.dumps({**v2_body(rows(3), ("predict_proba",)), "id": "q"}), {}),
    ("V2 on a version", "/v2/models/iris/versions/1/infer", orjson.dumps(GOOD), {}),
    ("V1 records", "/v1/models/iris:predict", orjson.dumps({"instances": rows(3)}), {}),
    ("V1 rows with probabilities", "/v1/models/iris:predict",
     orjson.dumps({"instances": [list(r.values()) for r in rows(2)], "parameters": {"probabilities": True}}), {}),
    ("malformed JSON", "/v2/models/iris/infer", b'{"inputs": [', {}),
    ("empty body", "/v2/models/iris/infer", b"", {}),
    ("wrong shape", "/v2/models/iris/infer", orjson.dumps({"inputs": [{**GOOD["inputs"][0], "shape": [3]}]}), {}),
    ("unknown output", "/v2/models/iris/infer", orjson.dumps(v2_body(rows(1), ("explain",))), {}),
    ("infinity", "/v1/models/iris:predict", b'{"instances": [[1e999, 1, 1, 1]]}', {}),
    ("unknown model", "/v2/models/nope/infer", orjson.dumps(GOOD), {}),
    ("unknown version", "/v2/models/iris/versions/5/infer", orjson.dumps(GOOD), {}),
    ("pickle media type", "/v2/models/iris/infer", b"\x80\x04K\x01.", {"content-type": "application/python-pickle"}),
    ("unknown model, pickle", "/v2/models/nope/infer", b"\x80", {"content-type": "application/python-pickle"}),
    ("client request id", "/v2/models/iris/infer", orjson.dumps(GOOD), {"x-request-id": "abc-123"}),
]  # fmt: skip


@pytest.mark.parametrize("version_headers", [False, True])
async def test_the_socket_answers_exactly_as_the_asgi_app(iris_bundles: dict[int, Path], version_headers: bool) -> None:
    in_process = _app(iris_bundles[1], max_body_bytes=4096, version_headers=version_headers)
    over_socket = _app(iris_bundles[1], max_body_bytes=4096, version_headers=version_headers)
    taken = _spy(over_socket)
    cases = [*CASES, ("over the body limit", "/v2/models/iris/infer", b"[" + b"1," * 3000 + b"1]", {})]
    with background_server(over_socket) as url:
        async with serving(in_process) as local, httpx.AsyncClient(base_url=url) as remote:
            for label, path, body, headers in cases:
                sent = {"content-type": "application/json", **headers}
                expected = await local.post(path, content=body, headers=sent)
                got = await remote.post(path, content=body, headers=sent)
                assert got.status_code == expected.status_code, label
                assert _without_ids(got.content) == _without_ids(expected.content), label
                same = {k: v for k, v in expected.headers.items() if k not in _NOT_COMPARED}
                assert {k: v for k, v in got.headers.items() if k not in _NOT_COMPARED} == same, label
                assert "date" in got.headers, label
                if got.status_code == 200:
                    assert ("x-model-version" in got.headers) is version_headers, label
                if "x-request-id" in headers:
                    assert got.headers["x-request-id"] == headers["x-request-id"], label
    assert taken == [True] * len(cases)  # every one of them went the direct way


async def test_pipelined_requests_are_answered_in_order_whatever_path_they_take(
    iris_bundles: dict[int, Path],
) -> None:
    app = _app(iris_bundles[1])
    taken = _spy(app)
    stream = (
        _request("/v2/models/iris/infer", ONE_ROW)
        + b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n"
        + _request("/v1/models/iris:predict", orjson.dumps({"instances": rows(2)}))
        + _request("/v2/models/iris/infer", b"{broken")
        + _request("/v2/models/iris/infer", ONE_ROW)
    )
    with _socket_server(app) as address, socket.create_connection(address, timeout=10) as conn:
        conn.sendall(stream)
        buffer = bytearray()
        answers = [_read_response(conn, buffer) for _ in range(5)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 400, 200]
    assert orjson.loads(answers[0][2])["outputs"][0]["shape"] == [1]
    assert orjson.loads(answers[1][2]) == {"live": True}
    assert len(orjson.loads(answers[2][2])["predictions"]) == 2
    assert "Malformed JSON" in orjson.loads(answers[3][2])["error"]
    ids = [headers["x-request-id"] for _, headers, _ in answers]
    assert len(set(ids)) == 5
    assert all(not headers.get("connection") for _, headers, _ in answers)  # kept alive throughout
    assert True in taken


@pytest.mark.parametrize(
    ("extra", "version"), [(("Connection: close",), "1.1"), ((), "1.0")], ids=["connection-close", "http-1.0"]
)
async def test_the_connection_closes_after_the_response_when_asked(
    iris_bundles: dict[int, Path], extra: tuple[str, ...], version: str
) -> None:
    app = _app(iris_bundles[1])
    taken = _spy(app)
    with _socket_server(app) as address, socket.create_connection(address, timeout=10) as conn:
        conn.sendall(_request("/v2/models/iris/infer", ONE_ROW, *extra, version=version))
        status, headers, _ = _read_response(conn, bytearray())
        assert (status, headers["connection"]) == (200, "close")
        assert conn.recv(1024) == b""  # then the server closes
    assert taken == [True]


async def test_a_body_that_does_not_arrive_before_the_deadline_is_504(iris_bundles: dict[int, Path]) -> None:
    app = _app(iris_bundles[1], request_timeout_s=0.2)
    with _socket_server(app) as address, socket.create_connection(address, timeout=10) as conn:
        conn.sendall(_request("/v2/models/iris/infer", ONE_ROW)[:-20])  # the last 20 bytes never come
        status, _, body = _read_response(conn, bytearray())
        assert status == 504
        assert orjson.loads(body)["type"] == "DeadlineExceeded"
        with httpx.Client(base_url=f"http://{address[0]}:{address[1]}") as client:
            metrics = client.get("/metrics").text
    assert 'modelport_refused_total{model="iris",reason="timeout"} 1.0' in metrics
    assert app.state.modelport.in_flight.count == 0


async def test_a_model_slower_than_the_deadline_is_504_and_its_version_is_released(
    iris_bundles: dict[int, Path],
) -> None:
    box: list[Gated] = []
    app = gated_app(iris_bundles[1], box, delay_s=0.5, request_timeout_s=0.1)
    taken = _spy(app)
    with background_server(app) as url, httpx.Client(base_url=url) as client:
        reply = client.post("/v2/models/iris/infer", content=ONE_ROW)
        assert reply.status_code == 504
        assert reply.json()["type"] == "DeadlineExceeded"
        await asyncio.sleep(0.6)  # the model finishes; its late result is dropped
        served = app.state.modelport.manager.lookup("iris", None)
        assert served.in_flight == 1  # only the lookup just made
        served.release()
        assert client.post("/v2/models/iris/infer", content=ONE_ROW).status_code == 504
    assert taken == [True, True]


async def test_a_client_that_leaves_mid_body_is_recorded_and_frees_everything(
    iris_bundles: dict[int, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelport.server.access")
    app = _app(iris_bundles[1], access_log=True)
    with _socket_server(app) as address:
        with socket.create_connection(address, timeout=10) as conn:
            conn.sendall(_request("/v2/models/iris/infer", ONE_ROW, "X-Request-ID: leaver")[:-10])
            await asyncio.sleep(0.1)
        for _ in range(100):
            if app.state.modelport.in_flight.count == 0:
                break
            await asyncio.sleep(0.02)
        assert app.state.modelport.in_flight.count == 0
        served = app.state.modelport.manager.lookup("iris", None)
        assert served.in_flight == 1  # only this lookup
        served.release()
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "modelport.server.access"]
    line = next(entry for entry in lines if entry["request_id"] == "leaver")
    assert (line["status"], line["error_type"], line["model"]) == (499, "ClientDisconnect", "iris")


async def test_direct_requests_are_counted_and_logged(
    iris_bundles: dict[int, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelport.server.access")
    app = _app(iris_bundles[1], access_log=True)
    taken = _spy(app)
    with background_server(app) as url, httpx.Client(base_url=url) as client:
        reply = client.post("/v2/models/iris/infer", content=ONE_ROW, headers={"X-Request-ID": "direct-1"})
        assert reply.status_code == 200
        assert client.post("/v2/models/nope/infer", content=ONE_ROW).status_code == 404
        text = client.get("/metrics").text
    assert taken == [True, True]
    assert 'modelport_requests_total{model="iris",route="v2_infer",status="200"} 1.0' in text
    assert 'modelport_requests_total{model="",route="v2_infer",status="404"} 1.0' in text
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "modelport.server.access"]
    line = next(entry for entry in lines if entry["request_id"] == "direct-1")
    assert (line["method"], line["path"], line["status"], line["model"], line["version"]) == (
        "POST",
        "/v2/models/iris/infer",
        200,
        "iris",
        1,
    )
    assert line["client"] == "127.0.0.1"
    assert line["latency_ms"] > 0


KEY = "k-123-456-789-abcdef"


async def test_keys_are_checked_on_the_direct_path_as_on_the_asgi_route(iris_bundles: dict[int, Path]) -> None:
    in_process = _app(iris_bundles[1], api_keys=[f"predict:{KEY}"], auth_failure_limit=3)
    over_socket = _app(iris_bundles[1], api_keys=[f"predict:{KEY}"], auth_failure_limit=3)
    taken = _spy(over_socket)
    good = {"Authorization": f"Bearer {KEY}"}
    attempts = [good, {"X-API-Key": KEY}, {}, {"Authorization": "Bearer not-the-key-at-all"}, {"X-API-Key": "nor-this"}]
    attempts.append(good)  # 3 failures so far: the limit refuses even a good key now (429)
    with background_server(over_socket) as url:
        async with serving(in_process) as local, httpx.AsyncClient(base_url=url) as remote:
            answers = []
            for headers in attempts:
                expected = await local.post("/v2/models/iris/infer", content=ONE_ROW, headers=headers)
                got = await remote.post("/v2/models/iris/infer", content=ONE_ROW, headers=headers)
                assert (got.status_code, _without_ids(got.content)) == (
                    expected.status_code,
                    _without_ids(expected.content),
                ), headers
                assert got.headers.get("retry-after") == expected.headers.get("retry-after")
                answers.append(got.status_code)
    assert answers == [200, 200, 401, 401, 401, 429]
    assert taken == [True] * len(attempts)
    for app in (in_process, over_socket):
        assert app.state.modelport.metrics.registry.get_sample_value("modelport_auth_failures_total") == 3


async def test_a_registry_key_not_yet_cached_goes_the_asgi_way_once(registry: Registry) -> None:
    issued = registry.users.bootstrap_admin("root", actor="tests").token
    root = registry.authenticate(issued)
    registry.users.create_user("scorer", "viewer", by=root)
    key = registry.users.create_key("scorer", by=root).token
    authenticator = RegistryKeys(registry, ttl_s=60.0)
    authenticator.refresh()
    config = ServerConfig(models=("iris@production",), warmup_rows=2, poll_interval_s=0)
    app = create_app(config, registry=registry, authenticators=(authenticator,))
    taken = _spy(app)
    with background_server(app) as url, httpx.Client(base_url=url) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert [client.post("/v2/models/iris/infer", content=ONE_ROW, headers=headers).status_code for _ in "ab"] == [
            200,
            200,
        ]
        assert client.post("/v2/models/iris/infer", content=ONE_ROW).status_code == 401
    assert taken == [False, True, True]  # looked up in the registry (a thread) once, then from the cache


async def test_compressed_and_chunked_bodies_go_the_asgi_way(iris_bundles: dict[int, Path]) -> None:
    app = _app(iris_bundles[1])
    taken = _spy(app)

    def chunks() -> Iterator[bytes]:
        yield ONE_ROW[:10]
        yield ONE_ROW[10:]

    with background_server(app) as url, httpx.Client(base_url=url) as client:
        zipped = client.post(
            "/v2/models/iris/infer", content=gzip.compress(ONE_ROW), headers={"Content-Encoding": "gzip"}
        )
        assert zipped.status_code == 200
        assert client.post("/v2/models/iris/infer", content=chunks()).status_code == 200
    assert taken == [False, False]


@pytest.fixture
def protocols(monkeypatch: pytest.MonkeyPatch) -> list[ModelportHttpProtocol]:
    """Every connection the servers of this test accept, as its protocol object."""
    made: list[ModelportHttpProtocol] = []
    original = ModelportHttpProtocol.connection_made

    def connection_made(self: ModelportHttpProtocol, transport: Any) -> None:
        original(self, transport)
        made.append(self)

    monkeypatch.setattr(ModelportHttpProtocol, "connection_made", connection_made)
    return made


async def test_a_client_that_does_not_read_its_answers_stops_being_served(
    iris_bundles: dict[int, Path], protocols: list[ModelportHttpProtocol]
) -> None:
    big = orjson.dumps(v2_body(rows(150) * 10, ("predict_proba",)))  # ~100 KB per answer
    with _socket_server(_app(iris_bundles[1])) as address, socket.socket() as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect(address)
        conn.settimeout(0.2)
        for _ in range(60):
            try:
                conn.sendall(_request("/v2/models/iris/infer", big))
            except (TimeoutError, BlockingIOError):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        protocol = protocols[-1]
        held = protocol.transport.get_write_buffer_size()
        answered = protocol.server_state.total_requests
    assert held < 1_000_000  # bounded as on the ASGI way: not one answer per request sent
    assert answered < 40


async def test_an_idle_connection_keeps_nothing_of_its_last_request(
    iris_bundles: dict[int, Path], protocols: list[ModelportHttpProtocol]
) -> None:
    big = orjson.dumps({"instances": rows(150) * 50})
    with _socket_server(_app(iris_bundles[1])) as address, socket.create_connection(address, timeout=10) as conn:
        conn.sendall(_request("/v1/models/iris:predict", big))
        status, _, _ = _read_response(conn, bytearray())
        cycle = protocols[-1].cycle
        assert isinstance(cycle, DirectCycle)
        assert (status, cycle.body, cycle.call) == (200, b"", None)


async def test_a_fault_after_scoring_is_a_500_not_a_client_left_waiting(
    iris_bundles: dict[int, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(iris_bundles[1])
    endpoints = app.direct.endpoints

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in a step")

    monkeypatch.setattr(endpoints, "encode", broken)
    monkeypatch.setattr(endpoints, "failed", broken)
    with background_server(app) as url, httpx.Client(base_url=url) as client:
        reply = client.post("/v2/models/iris/infer", content=ONE_ROW)
        assert reply.status_code == 500
        assert reply.json()["type"] == "InternalError"
        assert "a bug in a step" not in reply.text
        assert client.post("/v2/models/iris/infer", content=b"{bad").status_code == 500  # failed() itself fails
    assert app.state.modelport.in_flight.count == 0
    assert "a bug in a step" in caplog.text
