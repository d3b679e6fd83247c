"""Shared fixtures: a temporary MODELPORT_HOME, and the local PostgreSQL/Redis services.

Service fixtures fail (never skip) when ``CI=true`` and the service is unreachable; on a
developer machine without the service they skip with the reason.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.core.settings import Settings

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Fail under CI, skip elsewhere, when ``host:port`` does not answer."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}, and CI=true requires it.")
    pytest.skip(f"{message}; start it to run this test.")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at a fresh, empty MODELPORT_HOME."""
    return Settings(home=tmp_path / "home", user="tester")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database on the local server, dropped afterwards."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    import sqlalchemy as sa

    admin = sa.create_engine(f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test", isolation_level="AUTOCOMMIT")
    name = f"mp_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """URL of the local Redis server (database 15, flushed by the tests that use it)."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/15"
