"""``SqlStore``: the base of the stores that keep their rows in the registry database.

Users, policies, promotions, validations, releases and batch runs each have a store object
(``registry.users``, ...) holding the engine and running every method in its own short
transaction, with the registry's bounded retries on lock and serialization errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine

from modelport.registry.db import run_transaction

T = TypeVar("T")


class SqlStore:
    """Holds the registry engine and runs work in transactions.

    Args:
        engine: Engine of the registry database (already at the newest schema).
        url: The database URL as configured (only for error messages; its password is hidden).
    """

    def __init__(self, engine: Engine, url: str | None = None) -> None:
        self._engine = engine
        self._url = url if url is not None else engine.url.render_as_string(hide_password=True)

    def _tx(self, work: Callable[[Connection], T], *, write: bool = True) -> T:
        return run_transaction(self._engine, self._url, work, write=write)
