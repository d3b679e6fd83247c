"""The options of one batch job: chunking, write mode, key, probabilities, error budget, resume.

:class:`JobOptions` is a frozen pydantic model, built by the CLI from its flags or by
``modelport.score(**options)``, stored (as JSON) with every run record, and reused when a run is
resumed so that chunk boundaries, key and mode stay exactly those of the first attempt.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from modelport.core.errors import InvalidName, ValidationError
from modelport.core.names import SQL_IDENTIFIER_PATTERN

WriteMode = Literal["append", "replace", "upsert"]

DEFAULT_CHUNK_SIZE = 50_000
"""Rows per chunk: each chunk is read, scored and committed (with its checkpoint) as a unit."""


class JobOptions(BaseModel):
    """How a batch job reads, scores and writes.

    Attributes:
        chunk_size: Input rows per chunk (the unit of commit and of resume).
        mode: ``append`` adds rows, ``upsert`` replaces earlier rows with the same key, ``replace``
            swaps the whole output atomically at the end. ``None``: ``append`` for SQL tables,
            ``replace`` for files.
        key: Column(s) identifying a row; copied to the output and used as its primary key.
            Needed for ``upsert``. A SQL source is read in key order, and resumed after the last
            committed key.
        include: Other input columns copied to the output unchanged.
        proba: Also write class probabilities (``proba_<class>`` columns).
        max_errors: Rejected rows tolerated before the run fails.
        resume: Id of a stopped run to continue from its last committed chunk.
        sample_rows: At most this many scored rows per run go to the prediction log as a sample.
        prefetch: Chunks read ahead of scoring (memory grows with it).
        workers: Chunks scored at the same time, in threads (memory grows with it); ``0`` picks
            ``min(4, CPU cores)``. Commits always happen one at a time, in chunk order.
        lease_s: How long a run's lease lasts without renewal; another process may take over a
            run whose lease has expired (a killed process on the same host is detected at once).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    chunk_size: int = Field(default=DEFAULT_CHUNK_SIZE, ge=1, le=5_000_000)
    mode: WriteMode | None = None
    key: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    proba: bool = False
    max_errors: int = Field(default=0, ge=0)
    resume: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    sample_rows: int = Field(default=100, ge=0, le=100_000)
    prefetch: int = Field(default=2, ge=0, le=16)
    workers: int = Field(default=0, ge=0, le=64)
    lease_s: float = Field(default=600.0, gt=0)

    @field_validator("key", "include", mode="before")
    @classmethod
    def _split_columns(cls, value: Any) -> Any:
        """Accept ``"a,b"`` as well as ``["a", "b"]``."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("key", "include")
    @classmethod
    def _valid_columns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            validate_column_name(name)
        if len(set(value)) != len(value):
            raise ValueError(f"columns are repeated: {list(value)}")
        return value

    @classmethod
    def build(cls, **values: Any) -> JobOptions:
        """Validate ``values`` into options, raising modelport's :class:`ValidationError` on a bad one.

        Example:
            >>> JobOptions.build(chunk_size=10_000, key="lead_id", mode="upsert").key
            ('lead_id',)
        """
        try:
            return cls.model_validate(values)
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "options"
            raise ValidationError(
                f"Invalid batch option {where!r}: {first['msg']} (got {first.get('input')!r}).",
                hint="See 'modelport batch --help' for the allowed values.",
            ) from None

    def for_resume(self, stored: dict[str, Any]) -> JobOptions:
        """The options of a resumed run: the stored ones, with this call's error budget and tuning."""
        keep = stored | {
            "max_errors": self.max_errors,
            "prefetch": self.prefetch,
            "workers": self.workers,
            "lease_s": self.lease_s,
            "resume": self.resume,
        }
        return JobOptions.model_validate(keep)

    @property
    def scoring_threads(self) -> int:
        """The number of scoring threads :attr:`workers` asks for (``0``: ``min(4, CPU cores)``)."""
        return self.workers or min(4, os.cpu_count() or 1)

    def stored(self) -> dict[str, Any]:
        """The JSON-able form recorded with the run (without ``resume``)."""
        return self.model_dump(mode="json", exclude={"resume"})


def validate_column_name(name: str) -> str:
    """Return ``name`` if it is a plain SQL column identifier (no schema part), else raise InvalidName."""
    if not isinstance(name, str) or not SQL_IDENTIFIER_PATTERN.fullmatch(name):
        raise InvalidName(
            f"Invalid column name {name!r}.",
            hint="Use letters, digits and '_' only, starting with a letter or '_', at most 63 characters.",
        )
    return name
