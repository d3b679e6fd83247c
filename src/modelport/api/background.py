"""Run the composed server in a background thread of this process (quickstart, examples, tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from modelport.core.errors import DeadlineExceeded
from modelport.server.http_protocol import HTTP_PROTOCOL


@contextmanager
def background_server(app: ASGIApp, *, host: str = "127.0.0.1", startup_timeout_s: float = 120.0) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield its base URL; shut it down gracefully.

    Raises:
        DeadlineExceeded: The server did not finish starting (models loading) in time.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=0,
        log_level="warning",
        lifespan="on",
        access_log=False,
        http=HTTP_PROTOCOL,
        proxy_headers=False,  # as modelport's run() without forwarded_allow_ips
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="modelport-background-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise DeadlineExceeded(
                "The background server did not start.", hint="Look at the log lines above for the model that failed."
            )
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
