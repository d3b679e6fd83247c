"""Release configs that servers route by, and the traffic they report back.

A :class:`ReleaseConfig` says how a running server splits the traffic of one model's alias
(``production`` by default): the *primary* version, an optional *canary* version with a weight
in percent and an optional sticky header (one user, one version), an optional *shadow* version
(fed copies of requests, never answering), and the :class:`RollbackRule` by which a server stops
a failing canary. Configs live in ``releases`` (one ``active`` per model, the rest history);
starting, changing or ending one writes an audit entry and bumps the registry revision, which
servers poll, so a change takes effect without a restart. Servers report what they saw as
:class:`TrafficSummary` objects (mergeable counters plus a fixed log-scale latency histogram)
into ``release_traffic``, one row per release and reporter; ``release status`` merges them.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelport.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from modelport.core.names import validate_name
from modelport.registry import aliases as alias_sql
from modelport.registry import audit as audit_sql
from modelport.registry import policies as policy_sql
from modelport.registry import users as user_sql
from modelport.registry import validations as validation_sql
from modelport.registry import versions as version_sql
from modelport.registry.store import SqlStore
from modelport.registry.tables import NAME_LENGTH, UTCDateTime, metadata

T = TypeVar("T")

ReleaseState = Literal["active", "promoted", "rolled_back", "stopped"]
RELEASE_STATES: tuple[ReleaseState, ...] = get_args(ReleaseState)
Route = Literal["primary", "canary", "shadow"]
ROUTES: tuple[Route, ...] = get_args(Route)

LATENCY_BUCKETS_MS: tuple[float, ...] = tuple(round(0.1 * 1.25**i, 6) for i in range(64))
"""Upper bounds of the latency histogram, 0.1 ms to about 128 s, each 25 % above the last (plus overflow)."""

_HEADER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(NAME_LENGTH), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("started_by", sa.String(255), nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("ended_by", sa.String(255), nullable=True),
    sa.Column("end_reason", sa.Text, nullable=True),
)

release_traffic = sa.Table(
    "release_traffic",
    metadata,
    sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), primary_key=True),
    sa.Column("reporter", sa.String(255), primary_key=True),
    sa.Column("summaries", sa.JSON(), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _version(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"Invalid {what} {value!r}.", hint="Versions are positive integers, e.g. 3.")
    return value


@dataclass(frozen=True)
class RollbackRule:
    """When a server rolls a canary back: over the last ``window_s`` seconds, once the canary has
    ``min_requests`` requests, its error rate exceeds the primary's by more than
    ``max_error_rate_increase`` (absolute), or its p99 latency exceeds both ``max_p99_ratio`` times
    the primary's and the primary's plus ``min_p99_increase_ms``."""

    window_s: float = 60.0
    min_requests: int = 20
    max_error_rate_increase: float = 0.05
    max_p99_ratio: float = 1.5
    min_p99_increase_ms: float = 5.0

    def __post_init__(self) -> None:
        checks = {
            "window_s": _positive(self.window_s),
            "min_requests": isinstance(self.min_requests, int)
            and not isinstance(self.min_requests, bool)
            and self.min_requests >= 1,
            "max_error_rate_increase": _positive(self.max_error_rate_increase) and self.max_error_rate_increase < 1,
            "max_p99_ratio": _positive(self.max_p99_ratio) and self.max_p99_ratio >= 1,
            "min_p99_increase_ms": _positive(self.min_p99_increase_ms) or self.min_p99_increase_ms == 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValidationError(
                    f"Invalid rollback rule {name}={getattr(self, name)!r}.",
                    hint="window_s > 0, min_requests >= 1, 0 < max_error_rate_increase < 1, max_p99_ratio >= 1, "
                    "min_p99_increase_ms >= 0.",
                )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class ReleaseConfig:
    """How a server splits the traffic of ``model@alias``.

    Attributes:
        model: The model name.
        primary_version: The version the alias points at; it answers every request not sent to the canary.
        canary_version: The candidate answering ``canary_weight`` percent of requests, or ``None``.
        canary_weight: Percent of requests (0-100) routed to the canary.
        sticky_header: A request header (e.g. ``X-User-Id``) whose value pins a caller to one version.
        shadow_version: A version fed a copy of each request after the primary answered, or ``None``.
        alias: The alias whose traffic is split (``production``).
        rollback: When a server rolls the canary back.
        id: The release id (``None`` before it is stored).
        state: ``active``, or how it ended: ``promoted``, ``rolled_back``, ``stopped``.
        started_at: When it started.
        started_by: Who started it.
        ended_at: When it ended.
        ended_by: Who (or which server) ended it.
        end_reason: Why it ended.
    """

    model: str
    primary_version: int
    canary_version: int | None = None
    canary_weight: float = 0.0
    sticky_header: str | None = None
    shadow_version: int | None = None
    alias: str = "production"
    rollback: RollbackRule = field(default_factory=RollbackRule)
    id: int | None = None
    state: ReleaseState = "active"
    started_at: datetime | None = None
    started_by: str | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None

    def __post_init__(self) -> None:
        validate_name(self.model)
        validate_name(self.alias, what="alias")
        _version(self.primary_version, "primary version")
        weight = self.canary_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 100:
            raise ValidationError(
                f"Invalid canary weight {weight!r}.", hint="Give a percentage from 0 to 100, e.g. 10."
            )
        if self.canary_version is not None:
            _version(self.canary_version, "canary version")
            if self.canary_version == self.primary_version:
                raise ValidationError(
                    f"The canary {self.model}:{self.canary_version} is the primary version.",
                    hint="Canary another version than the one the alias points at.",
                )
            if weight <= 0:
                raise ValidationError(f"Invalid canary weight {weight!r} for a canary.", hint="Give more than 0.")
        elif weight != 0:
            raise ValidationError(f"Canary weight {weight!r} without a canary version.", hint="Name the canary.")
        if self.shadow_version is not None and _version(self.shadow_version, "shadow version") == self.primary_version:
            raise ValidationError(
                f"The shadow {self.model}:{self.shadow_version} is the primary version.",
                hint="Shadow another version than the one the alias points at.",
            )
        if self.sticky_header is not None and not _HEADER.fullmatch(self.sticky_header):
            raise ValidationError(
                f"Invalid sticky header {self.sticky_header!r}.", hint="Use a header name such as 'X-User-Id'."
            )
        if self.state not in RELEASE_STATES:
            raise ValidationError(f"Invalid release state {self.state!r}.", hint=f"Use: {', '.join(RELEASE_STATES)}.")

    @property
    def versions(self) -> tuple[int, ...]:
        """The versions a server must load for this release: primary, canary, shadow."""
        return tuple(v for v in (self.primary_version, self.canary_version, self.shadow_version) if v is not None)

    @property
    def active(self) -> bool:
        """Whether servers route by it now."""
        return self.state == "active"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (``release status --json``)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["rollback"] = self.rollback.to_dict()
        for key in ("started_at", "ended_at"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        return data

    def routing(self) -> dict[str, Any]:
        """The part stored as the row's ``config`` JSON (what routes requests)."""
        keys = ("model", "alias", "primary_version", "canary_version", "canary_weight", "sticky_header")
        return {
            **{k: getattr(self, k) for k in keys},
            "shadow_version": self.shadow_version,
            "rollback": self.rollback.to_dict(),
        }


def _from_row(row: Any) -> ReleaseConfig:
    config = dict(row.config)
    rule = RollbackRule(**config.pop("rollback", {}))
    return ReleaseConfig(
        **config,
        rollback=rule,
        id=int(row.id),
        state=cast(ReleaseState, row.status),
        started_at=row.started_at,
        started_by=row.started_by,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        end_reason=row.end_reason,
    )


def latency_bucket(latency_ms: float) -> int:
    """The histogram bucket of ``latency_ms`` (``len(LATENCY_BUCKETS_MS)`` is the overflow bucket)."""
    return bisect.bisect_left(LATENCY_BUCKETS_MS, max(0.0, float(latency_ms)))


@dataclass(frozen=True)
class TrafficSummary:
    """What servers saw of one version on one route during a release: counters that add up.

    Attributes:
        version: The model version.
        route: ``primary``, ``canary`` or ``shadow``.
        requests: Requests answered (or attempted) by this version on this route.
        errors: Of which failed.
        latency_counts: Requests per latency bucket (:data:`LATENCY_BUCKETS_MS`, plus overflow).
        compared: Requests whose prediction was compared with the primary's (shadow and canary).
        agreed: Of which agreed.
        labelled: Requests whose true outcome came back as feedback.
        correct: Of which the prediction was right.
    """

    version: int
    route: Route
    requests: int = 0
    errors: int = 0
    latency_counts: tuple[int, ...] = ()
    compared: int = 0
    agreed: int = 0
    labelled: int = 0
    correct: int = 0

    def merge(self, other: TrafficSummary) -> TrafficSummary:
        """The sum of two summaries of the same version and route (e.g. from two servers)."""
        if (other.version, other.route) != (self.version, self.route):
            raise ValidationError(
                f"Cannot merge traffic of {other.version}/{other.route} into {self.version}/{self.route}.",
                hint="Merge summaries of one version and route only.",
            )
        size = max(len(self.latency_counts), len(other.latency_counts))
        mine = self.latency_counts + (0,) * (size - len(self.latency_counts))
        theirs = other.latency_counts + (0,) * (size - len(other.latency_counts))
        return replace(
            self,
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            latency_counts=tuple(a + b for a, b in zip(mine, theirs, strict=True)),
            compared=self.compared + other.compared,
            agreed=self.agreed + other.agreed,
            labelled=self.labelled + other.labelled,
            correct=self.correct + other.correct,
        )

    @property
    def error_rate(self) -> float | None:
        """Errors per request, or ``None`` before any request."""
        return self.errors / self.requests if self.requests else None

    @property
    def agreement(self) -> float | None:
        """Share of compared predictions equal to the primary's, or ``None``."""
        return self.agreed / self.compared if self.compared else None

    @property
    def accuracy(self) -> float | None:
        """Share of labelled predictions that were right (live accuracy), or ``None``."""
        return self.correct / self.labelled if self.labelled else None

    def latency_ms(self, quantile: float) -> float | None:
        """The ``quantile`` (0-1) of latency: the upper bound of its histogram bucket, or ``None``."""
        total = sum(self.latency_counts)
        if not total:
            return None
        rank = max(1, math.ceil(quantile * total))
        seen = 0
        for index, count in enumerate(self.latency_counts):
            seen += count
            if seen >= rank:
                return LATENCY_BUCKETS_MS[min(index, len(LATENCY_BUCKETS_MS) - 1)]
        return LATENCY_BUCKETS_MS[-1]  # pragma: no cover - seen reaches total

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (as stored)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {
            "latency_counts": list(self.latency_counts)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrafficSummary:
        """Rebuild from :meth:`to_dict` output."""
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        values["latency_counts"] = tuple(int(c) for c in values.get("latency_counts", ()))
        if values.get("route") not in ROUTES:
            raise ValidationError(f"Invalid traffic route {values.get('route')!r}.", hint=f"Use: {', '.join(ROUTES)}.")
        return cls(**values)


def merge_traffic(summaries: Iterable[TrafficSummary]) -> list[TrafficSummary]:
    """Summaries summed per (version, route), sorted by route then version."""
    merged: dict[tuple[int, str], TrafficSummary] = {}
    for item in summaries:
        key = (item.version, item.route)
        merged[key] = merged[key].merge(item) if key in merged else item
    return sorted(merged.values(), key=lambda s: (ROUTES.index(s.route), s.version))


def _require_active(conn: Connection, model: str) -> ReleaseConfig:
    found = active_release(conn, model, lock=True)
    if found is None:
        raise NotFound(
            f"Model {model!r} has no active release.",
            hint=f"Start one with `modelport release start {model} --canary VERSION --weight 10`.",
        )
    return found


def active_release(conn: Connection, model: str, *, lock: bool = False) -> ReleaseConfig | None:
    """The active release of ``model``, or ``None``."""
    query = sa.select(releases).where(releases.c.model == model, releases.c.status == "active")
    row = conn.execute(query.with_for_update() if lock else query).first()
    return _from_row(row) if row is not None else None


def end_release(
    conn: Connection,
    release: ReleaseConfig,
    state: ReleaseState,
    *,
    actor: str,
    reason: str | None,
    details: Mapping[str, Any] | None = None,
) -> ReleaseConfig:
    """End ``release`` as ``state`` in the caller's transaction: audit entry and revision bump."""
    now = _now()
    conn.execute(
        sa.update(releases)
        .where(releases.c.id == release.id, releases.c.status == "active")
        .values(status=state, ended_at=now, ended_by=actor, end_reason=reason)
    )
    ended = replace(release, state=state, ended_at=now, ended_by=actor, end_reason=reason)
    action = {"promoted": "release.promote", "rolled_back": "release.rollback"}.get(state, "release.stop")
    _audit(conn, actor, action, ended, reason, dict(details or {}))
    return ended


def _audit(
    conn: Connection, actor: str, action: str, release: ReleaseConfig, reason: str | None, details: dict[str, Any]
) -> None:
    audit_sql.record(
        conn,
        at=_now(),
        actor=actor,
        action=action,
        target=f"{release.model}@{release.alias}",
        model=release.model,
        reason=reason,
        details={"release_id": release.id, **release.routing(), **details},
    )
    audit_sql.bump_revision(conn)


def _check_candidate(conn: Connection, model: str, alias: str, version: int, role: str) -> None:
    row = version_sql.require_version(conn, model, version)
    version_sql.check_not_deleted(row, doing=f"release it as a {role}")
    policy = policy_sql.effective(conn, model)
    if policy.protects(alias):
        blockers = validation_sql.gate_blockers(conn, model, version, alias, policy.required_gates)
        if blockers:
            raise PermissionDenied(
                f"{model}:{version} may not be a {role} of protected alias {model}@{alias}: {'; '.join(blockers)}.",
                hint=f"Validate it first (`modelport validate {model}:{version} --holdout FILE`) and fix failed gates.",
            )


class ReleaseStore(SqlStore):
    """Release configs and reported traffic in the registry database (``registry.releases``).

    Args:
        engine: Engine of the registry database (already at the newest schema).
        url: The database URL as configured (only for error messages).
    """

    def start(self, config: ReleaseConfig, *, by: user_sql.Principal, reason: str | None = None) -> ReleaseConfig:
        """Store ``config`` as the model's active release (``data_scientist`` role), audited.

        Raises:
            PermissionDenied: ``by`` lacks the role, or a candidate misses the gates of a protected alias.
            Conflict: The model has an active release, or its alias no longer points at the primary.
            NotFound: A version does not exist.
        """
        if config.canary_version is None and config.shadow_version is None:
            raise ValidationError(
                f"A release of {config.model!r} needs a canary or a shadow version.",
                hint="Give --canary VERSION --weight N, or use `modelport release shadow NAME VERSION`.",
            )

        def work(conn: Connection) -> ReleaseConfig:
            actor = user_sql.require(conn, by, "data_scientist", to="start releases")
            version_sql.require_model(conn, config.model, lock=True)
            existing = active_release(conn, config.model, lock=True)
            if existing is not None:
                raise Conflict(
                    f"Model {config.model!r} has an active release ({existing.id}) already.",
                    hint=f"Promote, roll back or stop it first (`modelport release rollback {config.model}`).",
                )
            self._check_primary(conn, config)
            for version, role in ((config.canary_version, "canary"), (config.shadow_version, "shadow")):
                if version is not None:
                    _check_candidate(conn, config.model, config.alias, version, role)
            now = _now()
            result = conn.execute(
                sa.insert(releases).values(
                    model=config.model, status="active", config=config.routing(), started_at=now, started_by=actor.name
                )
            )
            key = result.inserted_primary_key
            stored = replace(
                config, id=int(key[0]) if key else None, state="active", started_at=now, started_by=actor.name
            )
            _audit(conn, actor.name, "release.start", stored, reason, {})
            return stored

        return self._tx(work)

    @staticmethod
    def _check_primary(conn: Connection, config: ReleaseConfig) -> None:
        current = alias_sql.alias_target(conn, config.model, config.alias)
        if current != config.primary_version:
            raise Conflict(
                f"{config.model}@{config.alias} points at {current}, not at primary {config.primary_version}.",
                hint="Start the release again; it takes the primary from the alias.",
            )

    def set_shadow(
        self, model: str, version: int | None, *, by: user_sql.Principal, reason: str | None = None
    ) -> ReleaseConfig:
        """Shadow ``version`` in the active release of ``model`` (``None`` stops shadowing), audited.

        Raises:
            NotFound: No active release.
            PermissionDenied: ``by`` lacks the ``data_scientist`` role, or the version misses required gates.
        """

        def work(conn: Connection) -> ReleaseConfig:
            actor = user_sql.require(conn, by, "data_scientist", to="change releases")
            release = _require_active(conn, model)
            if version is not None:
                _check_candidate(conn, model, release.alias, version, "shadow")
            changed = replace(release, shadow_version=version)
            conn.execute(sa.update(releases).where(releases.c.id == release.id).values(config=changed.routing()))
            _audit(conn, actor.name, "release.shadow", changed, reason, {})
            return changed

        return self._tx(work)

    def end(
        self,
        model: str,
        state: ReleaseState,
        *,
        actor: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ReleaseConfig:
        """End the active release of ``model`` as ``state`` (audited, revision bumped).

        The caller decides who may: governance checks the user's role; a server rolling a failing
        canary back passes its own name as ``actor``.

        Raises:
            NotFound: No active release.
        """
        if state == "active":
            raise ValidationError("A release cannot end as 'active'.", hint="Use promoted, rolled_back or stopped.")
        return self._tx(
            lambda conn: end_release(
                conn, _require_active(conn, model), state, actor=actor, reason=reason, details=details
            )
        )

    def active(self, model: str) -> ReleaseConfig | None:
        """The active release of ``model``, or ``None``."""
        return self._tx(lambda conn: active_release(conn, model), write=False)

    def active_releases(self) -> list[ReleaseConfig]:
        """Every active release, by model (what a server polls after the revision moved)."""
        query = sa.select(releases).where(releases.c.status == "active").order_by(releases.c.model)
        return [_from_row(row) for row in self._tx(lambda conn: list(conn.execute(query)), write=False)]

    def history(self, model: str) -> list[ReleaseConfig]:
        """Every release of ``model``, oldest first."""
        query = sa.select(releases).where(releases.c.model == model).order_by(releases.c.id)
        return [_from_row(row) for row in self._tx(lambda conn: list(conn.execute(query)), write=False)]

    def get(self, release_id: int) -> ReleaseConfig:
        """Release ``release_id``.

        Raises:
            NotFound: No such release.
        """
        row = self._tx(
            lambda conn: conn.execute(sa.select(releases).where(releases.c.id == release_id)).first(), write=False
        )
        if row is None:
            raise NotFound(f"No release {release_id}.", hint="List releases with `modelport release status NAME`.")
        return _from_row(row)

    def report_traffic(self, release_id: int, reporter: str, summaries: Sequence[TrafficSummary]) -> None:
        """Store what ``reporter`` (a server instance) saw of release ``release_id`` since it started.

        Each call replaces the reporter's previous report: send cumulative counters.

        Raises:
            NotFound: No such release.
        """
        if not isinstance(reporter, str) or not reporter or len(reporter) > 255:
            raise ValidationError(f"Invalid traffic reporter {str(reporter)[:40]!r}.", hint="Give 1-255 characters.")
        data = [s.to_dict() for s in summaries]

        def work(conn: Connection) -> None:
            if conn.execute(sa.select(releases.c.id).where(releases.c.id == release_id)).first() is None:
                raise NotFound(f"No release {release_id}.", hint="Report traffic of a release the registry knows.")
            key = (release_traffic.c.release_id == release_id) & (release_traffic.c.reporter == reporter)
            values = {"summaries": data, "updated_at": _now()}
            if conn.execute(sa.update(release_traffic).where(key).values(**values)).rowcount == 0:
                conn.execute(sa.insert(release_traffic).values(release_id=release_id, reporter=reporter, **values))

        self._tx(work)

    def traffic(self, release_id: int) -> list[TrafficSummary]:
        """What every reporter saw of release ``release_id``, summed per version and route."""
        query = sa.select(release_traffic.c.summaries).where(release_traffic.c.release_id == release_id)
        rows = self._tx(lambda conn: list(conn.execute(query).scalars()), write=False)
        return merge_traffic(TrafficSummary.from_dict(item) for data in rows for item in data)
