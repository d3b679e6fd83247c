"""Batch scoring, composed: ``score()``, run records and schedules over the registry database.

The batch layer knows nothing of settings or of the registry; this module wires it to them. The
run store lives in the registry database; models load through :func:`~.models.load_model`, so
``name@production`` is resolved when each run starts; and every run writes to the prediction log
(run records, rejected rows and a bounded sample of scored rows) through the same folder and
redactor as the server, with each model's own redaction rules applied, so monitoring sees batch
traffic as it sees online traffic. :func:`score` and :func:`score_job` run one job;
:func:`list_runs` and :func:`get_run` read run records; :func:`open_scheduler` and
:func:`run_scheduler` manage and run cron schedules.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from modelport.batch.clock import Clock, SystemClock
from modelport.batch.job import JobResult
from modelport.batch.progress import ProgressCallback
from modelport.batch.runlog import RunLog
from modelport.batch.schedule import RunRequest, ScheduleOutcome, Scheduler, ScheduleRunner, spec_runner
from modelport.batch.spec import JobSpec, ModelLoader, run_spec
from modelport.core.refs import ModelRef
from modelport.core.settings import Settings
from modelport.registry.registry import Registry
from modelport.registry.runs import RunRecord, RunStore, ScheduleRecord
from modelport.runtime.predictor import Predictor
from modelport.runtime.predlog import PredictionLogWriter, PredictionRecord

from .context import registry_scope, resolve_settings
from .models import load_model
from .serving import log_dir, log_redactor

logger = logging.getLogger(__name__)

STOP_CHECK_S = 0.25
"""How often a sleeping scheduler looks at its stop flag."""


def run_store(registry: Registry, settings: Settings) -> RunStore:
    """The batch run store in ``registry``'s database."""
    return RunStore(registry.engine, settings.database_url)


class BatchLog:
    """The prediction log as batch runs write it: each model's redaction rules applied first.

    Wraps a started :class:`PredictionLogWriter`. :meth:`loader` registers the redaction rules of
    every model it loads; a model whose rules cannot be applied is logged without its inputs (and
    without error texts, which may quote them), never with raw values.

    Args:
        writer: The prediction-log writer (started and stopped by the caller).
    """

    def __init__(self, writer: PredictionLogWriter) -> None:
        self.writer = writer
        self._without_inputs: set[str] = set()

    def log(self, record: PredictionRecord) -> bool:
        """Queue ``record`` (without inputs for a model whose rules could not be applied)."""
        if record.model in self._without_inputs:
            record = replace(record, inputs=None, error=None)
        return self.writer.log(record)

    def register(self, predictor: Predictor) -> None:
        """Apply ``predictor``'s redaction rules to what is logged for its model."""
        rules = dict(predictor.manifest.redaction)
        if not rules:
            self._without_inputs.discard(predictor.name)
            return
        try:
            if self.writer.redactor is None:
                raise LookupError("the prediction log has no redactor")
            self.writer.redactor.set_rules(predictor.name, rules)
            self._without_inputs.discard(predictor.name)
        except Exception as exc:  # never log raw values of redacted columns; never fail the job
            self._without_inputs.add(predictor.name)
            logger.warning("Prediction log: inputs of %s are not logged (%s).", predictor.name, exc)

    def runlog(self, sample_rows: int) -> RunLog:
        """A fresh :class:`RunLog` for one run (its sample budget is per run)."""
        return RunLog(self, sample_rows=sample_rows)

    def loader(self, registry: Registry, settings: Settings) -> ModelLoader:
        """Load models from ``registry`` and register their redaction rules here."""

        def load(ref: ModelRef) -> Predictor:
            predictor = load_model(ref, registry=registry, settings=settings)
            self.register(predictor)
            return predictor

        return load


@contextlib.contextmanager
def batch_log(settings: Settings) -> Iterator[BatchLog]:
    """A started prediction-log writer in ``settings``' log folder, stopped (and flushed) on exit."""
    writer = PredictionLogWriter(log_dir(settings), redactor=log_redactor(settings))
    writer.start()
    try:
        yield BatchLog(writer)
    finally:
        writer.stop()


def score(
    ref: str,
    input: str,
    output: str,
    *,
    settings: Settings | None = None,
    registry: Registry | None = None,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> JobResult:
    """Score ``input`` with model ``ref`` into ``output``, in committed chunks, exactly once per row.

    Args:
        ref: Model reference (``name``, ``name:3``, ``name@production``) or a bundle path.
        input: A CSV, Parquet or JSON Lines file, folder or glob, or a database URL.
        output: A ``.csv``/``.parquet`` file, a folder, or a database URL.
        settings: Settings (default: from ``MODELPORT_*`` variables).
        registry: The registry (default: opened from ``settings`` and closed afterwards).
        progress: Called with a :class:`~modelport.batch.progress.ProgressEvent` as the run goes.
        **options: ``input_table``, ``query``, ``input_format``, ``table``, ``output_format``,
            ``rejects``, and the :class:`~modelport.batch.options.JobOptions` (``chunk_size``,
            ``mode``, ``key``, ``include``, ``proba``, ``max_errors``, ``resume``, ...).

    Returns:
        The completed run.

    Raises:
        ModelportError: A bad option, name, source or destination, or a failed run (its hint
            names the ``resume`` run id).

    Example:
        >>> result = modelport.score("leads@production", "postgresql://db/crm", "postgresql://db/crm",
        ...                          input_table="leads", table="lead_scores", key="lead_id",
        ...                          mode="upsert", proba=True)  # doctest: +SKIP
        >>> result.rows_written  # doctest: +SKIP
        5000
    """
    spec = JobSpec.build(ref, input, output, **options)
    return score_job(spec, settings=settings, registry=registry, progress=progress)


def score_job(
    spec: JobSpec,
    *,
    settings: Settings | None = None,
    registry: Registry | None = None,
    progress: ProgressCallback | None = None,
) -> JobResult:
    """Run a batch job described by ``spec`` (see :func:`score`, which builds one)."""
    settings = resolve_settings(settings)
    with registry_scope(settings, registry) as reg, batch_log(settings) as log:
        return run_spec(
            spec,
            load_model=log.loader(reg, settings),
            store=run_store(reg, settings),
            progress=progress,
            runlog=log.runlog(spec.options.sample_rows),
        )


def list_runs(
    *,
    settings: Settings | None = None,
    registry: Registry | None = None,
    schedule: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[RunRecord]:
    """Batch runs, newest first, optionally of one schedule or with one status."""
    settings = resolve_settings(settings)
    with registry_scope(settings, registry) as reg:
        return run_store(reg, settings).list_runs(schedule=schedule, status=status, limit=limit)


def get_run(run_id: str, *, settings: Settings | None = None, registry: Registry | None = None) -> RunRecord:
    """The batch run ``run_id`` (NotFound when there is none)."""
    settings = resolve_settings(settings)
    with registry_scope(settings, registry) as reg:
        return run_store(reg, settings).get_run(run_id)


def _runner(store: RunStore, log: BatchLog, load: ModelLoader, progress: ProgressCallback | None) -> ScheduleRunner:
    """The standard runner, with a fresh run log (and its sample budget) for each run."""

    def run(schedule: ScheduleRecord, request: RunRequest) -> JobResult:
        sample_rows = JobSpec.model_validate(dict(schedule.job)).options.sample_rows
        runner = spec_runner(store, load, progress=progress, runlog=log.runlog(sample_rows))
        return runner(schedule, request)

    return run


@contextlib.contextmanager
def open_scheduler(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    progress: ProgressCallback | None = None,
    clock: Clock | None = None,
    poll_s: float = 30.0,
) -> Iterator[Scheduler]:
    """A :class:`Scheduler` on the registry database, its runs logged to the prediction log.

    Example:
        >>> with open_scheduler() as scheduler:  # doctest: +SKIP
        ...     scheduler.add("daily-leads", "0 6 * * *", spec, timezone="Europe/Paris", retries=3)
    """
    settings = resolve_settings(settings)
    with registry_scope(settings, registry) as reg, batch_log(settings) as log:
        store = run_store(reg, settings)
        runner = _runner(store, log, log.loader(reg, settings), progress)
        yield Scheduler(store, runner, clock=clock, poll_s=poll_s, actor=settings.actor)


class StoppableClock(SystemClock):
    """The system clock, whose sleeps end early once ``stop()`` is true (checked every 0.25 s)."""

    def __init__(self, stop: Callable[[], bool]) -> None:
        self.stop = stop

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or until ``stop()``."""
        deadline = time.monotonic() + seconds
        while not self.stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(STOP_CHECK_S, left))


def run_scheduler(
    *,
    stop: Callable[[], bool],
    settings: Settings | None = None,
    registry: Registry | None = None,
    on_outcome: Callable[[ScheduleOutcome], None] | None = None,
    progress: ProgressCallback | None = None,
    clock: Clock | None = None,
    poll_s: float = 30.0,
) -> None:
    """Run due schedules until ``stop()`` is true (``modelport scheduler``).

    A run under way when ``stop()`` turns true finishes first; a scheduler killed mid-run resumes
    that run when it starts again.

    Args:
        stop: Checked between runs and while sleeping.
        settings: Settings (default: from ``MODELPORT_*`` variables).
        registry: The registry (default: opened from ``settings``).
        on_outcome: Called with what each scheduler step did with each schedule it ran.
        progress: Called as each run goes.
        clock: Time source (default: the system clock, its sleeps cut short by ``stop``).
        poll_s: Longest sleep between two looks at the schedules.
    """
    clock = clock if clock is not None else StoppableClock(stop)
    with open_scheduler(settings, registry=registry, progress=progress, clock=clock, poll_s=poll_s) as scheduler:
        scheduler.run_forever(stop=stop, on_outcome=on_outcome)
