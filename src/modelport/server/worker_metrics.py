"""The metrics of several worker processes, merged so that each worker's ``/metrics`` shows the whole server.

With ``--workers N`` uvicorn runs N processes on one socket, and a scrape reaches whichever accepts
the connection. :func:`~modelport.server.run.run` gives the workers a private folder
(``ServerConfig.worker_metrics_dir``). Each worker (:class:`WorkerMetrics`) writes a snapshot of
its samples there every second (one JSON file per process, replaced atomically) and, on
``/metrics``, writes a fresh one, then answers its own samples merged with the other workers' latest
snapshots:

* counters, histograms and summaries are summed per sample (name and labels) over every worker's
  file, those of workers that have exited included, so that a total never goes down; the counts of
  an exited worker are folded into ``retired.json`` and its file removed, under a file lock that
  readers share, so no scrape sees them twice or not at all;
* gauges come from the workers whose snapshot is at most ``fresh_s`` old, merged by a per-gauge
  policy (``sum`` by default, ``min`` or ``max``); a worker without a series counts as 0 for it, as
  an unset gauge reads.

As the scraped worker writes its own snapshot before it reads the others', successive scrapes
through different workers never see a total go down. The request path is untouched: the
:mod:`~modelport.server.tallies` stay in-process numbers, read only when a snapshot is taken.
``_created`` samples are left out of the merged exposition (one per worker would mean nothing summed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import METRIC_TYPES, Metric
from prometheus_client.registry import Collector

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger("modelport.server")

GaugeMerge = Literal["sum", "min", "max"]
"""How one gauge's values from several workers combine."""

SNAPSHOT_INTERVAL_S = 1.0
FRESH_S = 10.0
RETIRED = "retired.json"
LOCK = ".lock"
_WORKER_FILE = re.compile(r"^(\d+)-[0-9a-f]+\.json$")

Sample = tuple[str, dict[str, str], float]
"""Sample name, labels, value."""
Family = tuple[str, str, str, list[Sample]]
"""Metric name, type, documentation, samples."""


def collect_families(registry: Collector) -> list[Family]:
    """The samples of every metric ``registry`` collects, ``_created`` ones left out."""
    families: list[Family] = []
    for metric in registry.collect():
        created = metric.name + "_created"
        samples = [(s.name, dict(s.labels), float(s.value)) for s in metric.samples if s.name != created]
        families.append((metric.name, metric.type, metric.documentation, samples))
    return families


def _checked(data: Any) -> list[Family]:
    """The families of a decoded snapshot file; ``ValueError`` or ``TypeError`` when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("families"), list):
        raise ValueError("not a metrics snapshot")
    families: list[Family] = []
    for name, kind, documentation, samples in data["families"]:
        if not (isinstance(name, str) and isinstance(documentation, str) and kind in METRIC_TYPES):
            raise ValueError(f"bad metric {name!r}")
        Metric(name, documentation, kind)  # raises ValueError on a name the exposition refuses
        checked: list[Sample] = []
        for sample_name, labels, value in samples:
            if not (
                isinstance(sample_name, str)
                and isinstance(labels, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                raise ValueError(f"bad sample of {name!r}")
            checked.append((sample_name, labels, float(value)))
        families.append((name, kind, documentation, checked))
    return families


def read_snapshot(path: Path) -> list[Family] | None:
    """The families in a snapshot file, or ``None`` when it is missing or unreadable."""
    try:
        return _checked(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("Ignoring the metrics snapshot %s: %s", path.name, exc)
        return None


def write_snapshot(path: Path, families: Iterable[Family], *, pid: int) -> None:
    """Write ``families`` to ``path`` atomically (a temporary file, then a rename)."""
    data = json.dumps({"pid": pid, "families": list(families)}, separators=(",", ":")).encode()
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class _Merged:
    """One metric family being merged."""

    __slots__ = ("documentation", "kind", "name", "series")

    def __init__(self, name: str, kind: str, documentation: str) -> None:
        self.name, self.kind, self.documentation = name, kind, documentation
        self.series: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[dict[str, str], list[float]]] = {}

    def add(self, samples: Iterable[Sample]) -> None:
        for name, labels, value in samples:
            key = (name, tuple(sorted(labels.items())))
            found = self.series.get(key)
            if found is None:
                self.series[key] = (labels, [value])
            else:
                found[1].append(value)


def merge_families(
    sources: Iterable[tuple[list[Family], bool]], *, gauge_merge: Mapping[str, GaugeMerge] | None = None
) -> list[Family]:
    """Merge the families of several workers.

    Args:
        sources: Each worker's families, with whether its gauges count (a fresh snapshot). The first
            source fixes the order, type and help text of the metrics it has.
        gauge_merge: Policy per gauge name; ``sum`` for the others.

    Returns:
        Counters, histograms and summaries summed per sample; gauges merged by their policy over the
        sources whose gauges count, a source without a series counting as 0 for it.
    """
    policies = gauge_merge or {}
    merged: dict[str, _Merged] = {}
    gauge_sources = 0
    for families, gauges in sources:
        gauge_sources += gauges
        for name, kind, documentation, found in families:
            if kind == "gauge" and not gauges:
                continue
            family = merged.get(name)
            if family is None:
                family = merged[name] = _Merged(name, kind, documentation)
            if family.kind == kind:  # a clash (another version's metric) keeps the first
                family.add(found)
    result: list[Family] = []
    for family in merged.values():
        policy = policies.get(family.name, "sum")
        samples: list[Sample] = [
            (name, labels, _combine(policy, values, gauge_sources) if family.kind == "gauge" else float(sum(values)))
            for (name, _), (labels, values) in family.series.items()
        ]
        result.append((family.name, family.kind, family.documentation, samples))
    return result


def _combine(policy: GaugeMerge, values: list[float], sources: int) -> float:
    """One gauge's value over ``sources`` workers, of which ``len(values)`` report it (the rest read 0)."""
    if len(values) < sources:
        values = [*values, 0.0]
    if policy == "min":
        return float(min(values))
    if policy == "max":
        return float(max(values))
    return float(sum(values))


class _Families(Collector):
    """Merged families, as a collector for ``generate_latest``."""

    def __init__(self, families: list[Family]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        for name, kind, documentation, samples in self.families:
            metric = Metric(name, documentation, kind)
            for sample_name, labels, value in samples:
                metric.add_sample(sample_name, labels, value)
            yield metric


def render_families(families: list[Family]) -> bytes:
    """The Prometheus text exposition of ``families`` (``prometheus_client``'s own format)."""
    return generate_latest(_Families(families))


def _alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # os.kill would end the process there: never retire
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerMetrics:
    """This worker's side of the folder the workers share their metrics through.

    Args:
        directory: The shared folder (private to the server: mode 0700).
        registry: This worker's metrics.
        gauge_merge: How each gauge merges across workers (``sum`` when not listed).
        fresh_s: Age beyond which a worker's gauges are left out (it is stuck or gone).
        pid: This process (default ``os.getpid()``).
    """

    def __init__(
        self,
        directory: Path,
        registry: Collector,
        *,
        gauge_merge: Mapping[str, GaugeMerge] | None = None,
        fresh_s: float = FRESH_S,
        pid: int | None = None,
    ) -> None:
        self.directory = directory
        self.registry = registry
        self.gauge_merge = dict(gauge_merge or {})
        self.fresh_s = fresh_s
        self.pid = os.getpid() if pid is None else pid
        self.path = directory / f"{self.pid}-{os.urandom(4).hex()}.json"
        self._write_lock = threading.Lock()
        self._taken = 0  # sequence number of the latest snapshot taken (on the event loop)
        self._written = 0  # ... and of the latest written: an older one never replaces it

    def _take(self) -> tuple[int, list[Family]]:
        self._taken += 1
        return self._taken, collect_families(self.registry)

    def _write(self, sequence: int, families: list[Family]) -> None:
        with self._write_lock:
            if sequence <= self._written:
                return
            try:
                write_snapshot(self.path, families, pid=self.pid)
            except OSError as exc:
                logger.warning("Cannot write the metrics snapshot %s: %s", self.path, exc)
                return
            self._written = sequence

    def publish(self) -> list[Family]:
        """Write this worker's snapshot now; return its families."""
        sequence, families = self._take()
        self._write(sequence, families)
        return families

    async def run(self, interval_s: float = SNAPSHOT_INTERVAL_S) -> None:
        """Publish every ``interval_s`` and retire exited workers until cancelled, then publish once more."""
        try:
            while True:
                sequence, families = self._take()
                await asyncio.to_thread(self._write, sequence, families)
                await asyncio.to_thread(self.retire_exited)
                await asyncio.sleep(interval_s)
        finally:
            self.publish()

    @contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the folder's lock: shared to read the snapshots, exclusive to retire one."""
        if sys.platform == "win32":
            yield
            return
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def _others(self) -> list[Path]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return [self.directory / name for name in sorted(names) if _WORKER_FILE.match(name) and name != self.path.name]

    def retire_exited(self) -> None:
        """Fold the counts of workers that have exited into ``retired.json`` and remove their files."""
        for path in self._others():
            match = _WORKER_FILE.match(path.name)
            if match is None or _alive(int(match.group(1))):
                continue
            try:
                with self._locked(exclusive=True):
                    if not path.exists():
                        continue  # another worker retired it meanwhile
                    families = read_snapshot(path)
                    if families is not None:
                        retired = read_snapshot(self.directory / RETIRED) or []
                        total = merge_families([(retired, False), (families, False)])
                        write_snapshot(self.directory / RETIRED, total, pid=0)
                    path.unlink()
                    path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)
            except OSError as exc:
                logger.warning("Cannot retire the metrics snapshot %s: %s", path.name, exc)

    def merged(self) -> list[Family]:
        """This worker's live samples merged with the other workers' snapshots (writes its own first)."""
        own = self.publish()  # a later scrape through another worker then sees at least these numbers
        sources: list[tuple[list[Family], bool]] = [(own, True)]
        now = time.time()
        try:
            with self._locked(exclusive=False):
                for path in [*self._others(), self.directory / RETIRED]:
                    try:
                        fresh = path.name != RETIRED and now - path.stat().st_mtime <= self.fresh_s
                    except OSError:
                        continue
                    families = read_snapshot(path)
                    if families is not None:
                        sources.append((families, fresh))
        except OSError as exc:  # the folder is gone (the server is stopping)
            logger.debug("Cannot read the other workers' metrics: %s", exc)
        return merge_families(sources, gauge_merge=self.gauge_merge)

    def render(self) -> bytes:
        """The text exposition of the whole server's metrics."""
        return render_families(self.merged())
