"""modelport's HTTP protocol: each response leaves in one write, and nothing else changes.

Driven three ways: the transport wrapper on its own, uvicorn's protocol fed raw request bytes
with a recording transport (exactly what reaches the socket, write by write), and a real server
on a loopback socket.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from modelport.api.background import background_server
from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from modelport.server.http_protocol import (
    HTTP_PROTOCOL,
    CoalescingHttpProtocol,
    CoalescingTransport,
    ModelportHttpProtocol,
)
from modelport.server.run import uvicorn_options

pytestmark = pytest.mark.anyio


class RecordingTransport(asyncio.Transport):
    """A socket stand-in: keeps every write and every close, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, bytes]] = []
        self.closing = False
        self.buffered = 0
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        self.events.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.events.append(("abort", b""))
        self.closing = True

    def write_eof(self) -> None:
        self.events.append(("eof", b""))

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16, 64)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.events.append(("limits", f"{high},{low}".encode()))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    @property
    def writes(self) -> list[bytes]:
        return [data for kind, data in self.events if kind == "write"]


async def _next_step() -> None:
    """Let the loop run the callbacks scheduled so far (the wrapper flushes there)."""
    for _ in range(3):
        await asyncio.sleep(0)


# --- the transport wrapper -----------------------------------------------------------------------


async def test_writes_of_one_loop_step_leave_as_one_write_in_order() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(b"body-1"))
    transport.writelines([memoryview(b"-2"), b"-3"])
    assert inner.events == []  # held until the end of this step
    assert transport.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\nbody-1-2-3")
    await _next_step()
    assert inner.events == [("write", b"HTTP/1.1 200 OK\r\n\r\nbody-1-2-3")]
    transport.write(b"next")
    await _next_step()
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody-1-2-3", b"next"]


async def test_close_and_eof_send_what_is_held_first_abort_drops_it() -> None:
    loop = asyncio.get_running_loop()
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, loop)
    transport.write(b"last words")
    transport.write_eof()
    transport.write(b"bye")
    transport.close()
    assert inner.events == [("write", b"last words"), ("eof", b""), ("write", b"bye"), ("close", b"")]
    await _next_step()  # the scheduled flush finds nothing left
    assert len(inner.events) == 4

    aborted = RecordingTransport()
    transport = CoalescingTransport(aborted, loop)
    transport.write(b"never sent")
    transport.abort()
    await _next_step()
    assert aborted.events == [("abort", b"")]


async def test_nothing_is_written_to_a_connection_that_closed_meanwhile() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"too late")
    inner.closing = True  # the peer went away before the end of the step
    await _next_step()
    assert inner.writes == []
    assert transport.is_closing()


async def test_everything_else_is_the_real_transports() -> None:
    inner = RecordingTransport()
    inner.buffered = 100
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    assert transport.get_extra_info("peername") == ("127.0.0.1", 50000)
    assert transport.get_extra_info("missing", "dflt") == "dflt"
    assert transport.get_write_buffer_size() == 100
    assert transport.get_write_buffer_limits() == (16, 64)
    transport.set_write_buffer_limits(64, 16)
    assert inner.events == [("limits", b"64,16")]
    assert transport.can_write_eof()
    transport.pause_reading()
    assert not transport.is_reading()
    assert not inner.reading
    transport.resume_reading()
    assert transport.is_reading()


# --- uvicorn's protocol on top of it --------------------------------------------------------------


async def _small_app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/stream":  # a streamed response: its parts go out in order, whole
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _protocol() -> tuple[CoalescingHttpProtocol, RecordingTransport]:
    config = uvicorn.Config(_small_app, http=HTTP_PROTOCOL, lifespan="off", log_level="warning")
    protocol = CoalescingHttpProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    inner = RecordingTransport()
    protocol.connection_made(inner)
    return protocol, inner


async def _settle(protocol: CoalescingHttpProtocol) -> None:
    for _ in range(20):
        await asyncio.sleep(0)
        if not protocol.tasks:
            break
    await _next_step()


async def test_a_response_is_one_write_with_status_headers_and_body() -> None:
    protocol, inner = _protocol()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await _settle(protocol)
    assert len(inner.writes) == 1
    head, body = inner.writes[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 11" in head
    assert body == b'{"ok":true}'
    protocol.connection_lost(None)


async def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    protocol, inner = _protocol()
    protocol.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    await _settle(protocol)
    await _settle(protocol)
    stream = b"".join(inner.writes)
    assert stream.count(b"HTTP/1.1 200 OK") == 2
    assert stream.endswith(b'{"ok":true}')
    assert not inner.closing
    protocol.connection_lost(None)


async def test_connection_close_sends_the_response_before_closing() -> None:
    protocol, inner = _protocol()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await _settle(protocol)
    kinds = [kind for kind, _ in inner.events]
    assert kinds == ["write", "close"]
    assert inner.events[0][1].endswith(b'{"ok":true}')


async def test_a_head_response_and_a_streamed_response_arrive_whole() -> None:
    protocol, inner = _protocol()
    protocol.data_received(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    await _settle(protocol)
    assert len(inner.writes) == 1
    assert inner.writes[0].endswith(b"\r\n\r\n")
    protocol.data_received(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await _settle(protocol)
    streamed = b"".join(inner.writes[1:])
    assert b"transfer-encoding: chunked" in streamed
    assert streamed.endswith(b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n")
    protocol.connection_lost(None)


def test_the_server_runs_uvicorn_with_this_protocol() -> None:
    assert uvicorn_options(ServerConfig(), "warning")["http"] is ModelportHttpProtocol


# --- a real socket ---------------------------------------------------------------------------------


def _read_response(sock: socket.socket, buffer: bytearray) -> bytes:
    """One HTTP response with a content-length from ``sock`` (``buffer`` keeps what comes after it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        rest += chunk
    buffer[:] = rest[length:]
    return head + b"\r\n\r\n" + rest[:length]


def test_real_socket_pipelined_predictions_and_large_responses(iris_bundles: dict[int, Path]) -> None:
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, access_log=False)
    body = b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2]}]}'
    request = (
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with background_server(create_app(config, registry=None)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request * 5)  # pipelined: five answers, in order, on one connection
            buffer = bytearray()
            answers = [_read_response(sock, buffer) for _ in range(5)]
        assert all(a.startswith(b"HTTP/1.1 200 OK") and b'"model_name":"iris"' in a for a in answers)
        docs = httpx.get(f"{url}/openapi.json", timeout=10)  # tens of kB in one response
        assert docs.status_code == 200
        assert docs.json()["paths"]
        assert len(docs.content) == int(docs.headers["content-length"])
