"""A batch job as data: model reference, input, output and options, and how to run one.

:class:`JobSpec` is what the CLI builds from ``modelport batch REF --input ... --output ...``,
what ``modelport.score(ref, input, output, **options)`` builds from its arguments, and what a
schedule stores (as JSON) to run later. :meth:`SourceSpec.open` / :meth:`SinkSpec.open` turn the
user's strings into a :class:`~modelport.batch.sources.Source` and a
:class:`~modelport.batch.sinks.Sink`: a SQLAlchemy URL is a database (with a table or a query),
anything else a file, folder or glob. :func:`run_spec` runs a spec, loading the model through
the caller's ``load_model`` (the api layer's, which knows the registry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from modelport.batch.clock import Clock
from modelport.batch.database import is_database_url
from modelport.batch.engine import Engine
from modelport.batch.file_sink import FileSink
from modelport.batch.file_source import FileSource
from modelport.batch.job import JobResult, run_job
from modelport.batch.options import JobOptions
from modelport.batch.progress import ProgressCallback
from modelport.batch.runlog import RunLog
from modelport.batch.sinks import Sink
from modelport.batch.sources import Source
from modelport.batch.sql_sink import SqlSink
from modelport.batch.sql_source import SqlSource
from modelport.core.errors import BadRequest, Unsupported, ValidationError
from modelport.core.refs import ModelRef
from modelport.registry.runs import RunStore
from modelport.runtime.predictor import Predictor

ModelLoader = Callable[[ModelRef], Predictor]
"""Loads a model by reference (``name``, ``name@alias``, ``name:3`` or a bundle path)."""


def _local_path(uri: str, what: str) -> str:
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    if "://" in uri:
        raise Unsupported(
            f"The {what} {uri.split('://', 1)[0]}://... is not supported.",
            hint="Use a local file, folder or glob, or a database URL (sqlite:///..., postgresql://...).",
        )
    return uri


class SourceSpec(BaseModel):
    """The input of a job.

    Attributes:
        uri: A file, folder or glob (CSV, Parquet, JSON Lines), or a database URL.
        table: Table to read, for a database URL.
        query: ``SELECT`` to run instead of a table, for a database URL.
        format: File format when the names do not tell (``csv``, ``parquet``, ``jsonl``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str
    table: str | None = None
    query: str | None = None
    format: Literal["csv", "parquet", "jsonl"] | None = None

    def open(self) -> Source:
        """The :class:`Source` this spec names (no I/O yet)."""
        if is_database_url(self.uri):
            return SqlSource(self.uri, table=self.table, query=self.query)
        if self.table is not None or self.query is not None:
            raise BadRequest(
                f"--input-table/--query apply to database inputs, not to {self.uri!r}.",
                hint="Pass a database URL such as postgresql://user@host/db with --input-table or --query.",
            )
        return FileSource(_local_path(self.uri, "input"), format=self.format)


class SinkSpec(BaseModel):
    """The output of a job.

    Attributes:
        uri: A ``.csv``/``.parquet`` file, a folder, or a database URL.
        table: Table to write, for a database URL.
        format: File format for a folder (``csv`` or ``parquet``; default ``parquet``).
        rejects: Where rejected rows go: a table name (database) or a CSV path (files).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str
    table: str | None = None
    format: Literal["csv", "parquet"] | None = None
    rejects: str | None = None

    def open(self) -> Sink:
        """The :class:`Sink` this spec names (no I/O yet)."""
        if is_database_url(self.uri):
            if self.table is None:
                raise BadRequest(
                    f"A database output needs a table name (output {self.uri.split('://', 1)[0]}://...).",
                    hint="Pass --table NAME.",
                )
            return SqlSink(self.uri, self.table, rejects_table=self.rejects)
        if self.table is not None:
            raise BadRequest(
                f"--table applies to database outputs, not to {self.uri!r}.",
                hint="Pass a database URL as --output, or drop --table.",
            )
        return FileSink(_local_path(self.uri, "output"), format=self.format, rejects=self.rejects)


class JobSpec(BaseModel):
    """A whole batch job: which model scores what into where, how.

    Attributes:
        model: Model reference, resolved when each run starts (``leads@production``).
        input: What to read.
        output: Where to write.
        options: How (see :class:`~modelport.batch.options.JobOptions`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    input: SourceSpec
    output: SinkSpec
    options: JobOptions = Field(default_factory=JobOptions)

    @classmethod
    def build(
        cls,
        model: str,
        input: str,
        output: str,
        *,
        input_table: str | None = None,
        query: str | None = None,
        input_format: str | None = None,
        table: str | None = None,
        output_format: str | None = None,
        rejects: str | None = None,
        **options: Any,
    ) -> JobSpec:
        """Build a spec from the CLI's flags or ``modelport.score``'s keyword arguments.

        Raises:
            ValidationError: An option has a bad value (the message names it).
            InvalidName: The model reference or a table/column name is not valid.

        Example:
            >>> spec = JobSpec.build("leads@production", "postgresql://db/crm", "postgresql://db/crm",
            ...                      input_table="leads", table="lead_scores", key="lead_id", mode="upsert")
            >>> spec.options.mode
            'upsert'
        """
        ModelRef.parse(model)
        job_options = JobOptions.build(**options)
        try:
            source = SourceSpec(uri=input, table=input_table, query=query, format=input_format)
            sink = SinkSpec(uri=output, table=table, format=output_format, rejects=rejects)
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            side = "input" if exc.title == SourceSpec.__name__ else "output"
            field = ".".join(str(p) for p in first["loc"])
            raise ValidationError(
                f"Invalid {side} {field}: {first['msg']} (got {first.get('input')!r}).",
                hint="See 'modelport batch --help'.",
            ) from None
        return cls(model=model, input=source, output=sink, options=job_options)

    def resuming(self, run_id: str) -> JobSpec:
        """This spec, set to resume ``run_id``."""
        return self.model_copy(update={"options": self.options.model_copy(update={"resume": run_id})})


def run_spec(
    spec: JobSpec,
    *,
    load_model: ModelLoader,
    store: RunStore,
    run_id: str | None = None,
    schedule: str | None = None,
    progress: ProgressCallback | None = None,
    runlog: RunLog | None = None,
    clock: Clock | None = None,
    engine: Engine | None = None,
) -> JobResult:
    """Run ``spec`` (see :func:`~modelport.batch.job.run_job`, whose errors it raises).

    The model is resolved from ``spec.model`` when a fresh run starts; a resumed run loads the
    exact version it started with.
    """
    default_ref = ModelRef.parse(spec.model)
    source = spec.input.open()
    sink = spec.output.open()

    def factory(pinned: ModelRef | None) -> Predictor:
        return load_model(pinned if pinned is not None else default_ref)

    return run_job(
        factory,
        source,
        sink,
        spec.options,
        store,
        model_ref=spec.model,
        run_id=run_id,
        schedule=schedule,
        progress=progress,
        runlog=runlog,
        clock=clock,
        engine=engine,
    )
