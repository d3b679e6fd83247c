"""A realistic day in the life of a model, for the dashboard tests (API and browser).

A real scikit-learn pipeline saved as a bundle with reference data, registered twice; aliases
moved; traffic logged for both versions over the last day through the real writer (version 2
sees older customers: ``age`` drifts); ground truth for part of it; two batch runs recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from modelport.bundle.io import save_bundle
from modelport.core.settings import Settings
from modelport.monitoring.feedback import FeedbackRecord, FeedbackStore
from modelport.registry.registry import Registry
from modelport.registry.runs import ChunkCommit, RunStore
from modelport.registry.tables import alias_events

from .support import features, log_traffic


@dataclass(frozen=True)
class Scenario:
    """Where the scenario lives."""

    settings: Settings
    log_dir: Path
    feedback_dir: Path
    registry: Registry
    runs: RunStore
    predictions: int
    errors: int


def _model(seed: int) -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(seed)
    frame = features(600, rng)
    frame["income"] = frame["income"].fillna(frame["income"].median())
    target = ((frame["age"] - 40) / 10 - 0.3 * (frame["visits"] - 3) + rng.normal(0, 0.5, len(frame)) > 0).astype(int)
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("num", StandardScaler(), ["age", "income", "visits"]), ("cat", OneHotEncoder(), ["plan"])]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    )
    model.fit(frame, target)
    return model, frame


def _backdate_alias_events(registry: Registry, ages: list[timedelta]) -> None:
    """Spread the alias moves over the past days, as they happen in real life (the registry stamps "now")."""
    now = datetime.now(UTC)
    with registry.engine.begin() as conn:
        ids = [row[0] for row in conn.execute(sa.select(alias_events.c.id).order_by(alias_events.c.id))]
        for event_id, age in zip(ids, ages, strict=True):
            conn.execute(alias_events.update().where(alias_events.c.id == event_id).values(at=now - age))


def build(root: Path) -> Scenario:
    """Build the scenario under ``root`` (takes a few seconds)."""
    settings = Settings(home=root / "home", user="alice")
    registry = Registry(settings)
    for seed in (1, 2):
        model, frame = _model(seed)
        bundle = root / f"bundle-{seed}"
        save_bundle(model, bundle, name="churn", sample_input=frame.head(20), reference_data=frame)
        registry.register(bundle, reason=f"training run {seed}")
    registry.set_alias("churn", "staging", 1, reason="first candidate")
    registry.set_alias("churn", "production", 1, reason="go live")
    registry.set_alias("churn", "staging", 2, reason="retrained")
    registry.set_alias("churn", "production", 2, reason="better AUC")
    _backdate_alias_events(registry, [timedelta(days=6), timedelta(days=5), timedelta(hours=20), timedelta(hours=9)])

    log_dir = root / "logs"
    now = datetime.now(UTC)
    rng = np.random.default_rng(7)
    first = log_traffic(
        log_dir, features(900, rng), version=1, start=now - timedelta(hours=23), span=timedelta(hours=15),
        error_every=40, latency_ms=9.0, seed=1,
    )  # fmt: skip
    second = log_traffic(
        log_dir, features(700, rng, age_shift=9.0), version=2, start=now - timedelta(hours=8),
        span=timedelta(hours=7.5), error_every=25, latency_ms=14.0, seed=2,
    )  # fmt: skip

    feedback = FeedbackStore(root / "feedback")
    for logged, version_noise in ((first, 0.0), (second, 0.15)):
        labels = (logged.proba + rng.normal(0, 0.2 + version_noise, len(logged.proba)) > 0.5).astype(int)
        records = [
            FeedbackRecord(key=request_id, label=int(label))
            for request_id, label in zip(logged.request_ids[::2], labels[::2], strict=True)
        ]
        feedback.add("churn", records)

    runs = RunStore(registry.engine)
    for days_ago, status, written, rejected in (
        (3, "completed", 48_000, 120),
        (2, "failed", 12_500, 2_400),
        (1, "completed", 51_000, 80),
    ):
        started = now - timedelta(days=days_ago)
        run_id = uuid.uuid4().hex
        runs.create_run(
            run_id, model_ref="churn@production", source="s3://bucket/customers.parquet",
            destination="postgresql://etl:secret@db/scores", options={}, now=started,
        )  # fmt: skip
        runs.set_model(run_id, name="churn", version=1 if days_ago > 1 else 2)
        runs.record_chunks(
            run_id, [ChunkCommit(index=0, rows_read=written + rejected, rows_written=written, rows_rejected=rejected,
                                 position={"offset": written + rejected}, committed_at=started + timedelta(minutes=5))],
        )  # fmt: skip
        failed = status == "failed"
        runs.finish_run(
            run_id, status=status, now=started + timedelta(minutes=6),
            error="connection reset" if failed else None, error_type="ServiceUnavailable" if failed else None,
        )  # fmt: skip
    errors = 900 // 40 + 700 // 25
    return Scenario(
        settings=settings,
        log_dir=log_dir,
        feedback_dir=root / "feedback",
        registry=registry,
        runs=runs,
        predictions=1600,
        errors=errors,
    )
