"""Lead scoring: score new leads every morning into a table analysts query, and export a CSV for the CRM.

What it does, end to end:

1. trains a lead-conversion model on (generated) historical leads and registers it as ``leads``,
   with the ``production`` alias on it;
2. fills the CRM database's ``leads`` table with today's leads (PostgreSQL, or SQLite by default);
3. adds a daily schedule (06:00, Europe/Paris, 3 retries) that scores the ``leads`` table into
   ``lead_scores`` with ``upsert`` on ``lead_id`` — the daily refresh replaces yesterday's score
   of a lead still open — and runs it once now (``run-now``);
4. runs a one-off batch job that writes ``lead_scores.csv`` (lead id, e-mail, conversion
   probability) for the CRM's import.

Run it (from the repository root)::

    python examples/lead_scoring/lead_scoring.py                                   # SQLite, in ./lead-scoring-demo
    python examples/lead_scoring/lead_scoring.py --db postgresql://postgres@127.0.0.1:5432/test

Then ``modelport --home lead-scoring-demo/home jobs list`` shows the runs, and
``modelport --home lead-scoring-demo/home scheduler`` keeps the daily schedule going.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

import modelport
from modelport.batch.clock import SystemClock
from modelport.batch.job import JobResult
from modelport.batch.schedule import ScheduleOutcome, Scheduler, spec_runner
from modelport.batch.spec import JobSpec, run_spec
from modelport.core.refs import ModelRef
from modelport.registry.runs import RunStore
from modelport.runtime.predictor import Predictor

FEATURES = ["visits", "pages_per_visit", "email_opens", "company_size", "days_since_signup", "source"]
SOURCES = ["ads", "organic", "referral", "event"]


def make_leads(n: int, *, seed: int, start_id: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` generated leads (id, e-mail and features) and whether each one converted."""
    rng = np.random.default_rng(seed)
    leads = pd.DataFrame(
        {
            "lead_id": np.arange(start_id, start_id + n, dtype=np.int64),
            "email": [f"lead{i}@example.com" for i in range(start_id, start_id + n)],
            "visits": rng.poisson(4, n).astype(np.int64),
            "pages_per_visit": rng.gamma(2.0, 1.5, n).round(2),
            "email_opens": rng.poisson(2, n).astype(np.int64),
            "company_size": rng.choice([5, 20, 100, 500, 2000], n).astype(np.int64),
            "days_since_signup": rng.integers(0, 90, n).astype(np.int64),
            "source": pd.Series(rng.choice(SOURCES, n), dtype=object),
        }
    )
    score = (
        0.35 * leads["visits"]
        + 0.4 * leads["email_opens"]
        + 0.2 * np.log(leads["company_size"])
        - 0.03 * leads["days_since_signup"]
        + leads["source"].map({"ads": -0.5, "organic": 0.2, "referral": 1.0, "event": 0.5})
    )
    converted = (score + rng.normal(0, 1, n) > 2.2).astype(np.int64)
    return leads, converted.to_numpy()


def train(history: pd.DataFrame, converted: np.ndarray) -> object:
    """A scikit-learn pipeline: one-hot lead source, scaled numbers, logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in FEATURES if c != "source"]
    prepare = ColumnTransformer(
        [("source", OneHotEncoder(handle_unknown="ignore"), ["source"]), ("numbers", StandardScaler(), numeric)]
    )
    return make_pipeline(prepare, LogisticRegression(max_iter=1000)).fit(history[FEATURES], converted)


@dataclass(frozen=True)
class Demo:
    """What the demo produced."""

    version: int
    scheduled: ScheduleOutcome
    export: JobResult
    export_path: Path


def run_demo(db_url: str, workdir: Path, *, leads: int = 5_000) -> Demo:
    """Train and register, fill the CRM table, schedule and run the daily scoring, export the CSV."""
    settings = modelport.Settings(home=workdir / "home", user="lead-scoring-demo")
    registry = modelport.Registry(settings)
    history, converted = make_leads(20_000, seed=1)
    mv = modelport.save_model(
        train(history, converted),
        "leads",
        sample_input=history[FEATURES].head(200),
        reference_data=history[FEATURES],
        registry=registry,
        description="Probability that a lead converts within 30 days.",
    )
    registry.set_alias("leads", "production", mv.version, reason="lead-scoring demo")

    today, _ = make_leads(leads, seed=2, start_id=100_000)
    crm = sa.create_engine(db_url)
    today.to_sql("leads", crm, index=False, if_exists="replace")
    crm.dispose()

    store = RunStore(registry.engine, settings.database_url)

    def load_model(ref: ModelRef) -> Predictor:
        return modelport.load_model(ref, registry=registry)

    daily = JobSpec.build(
        "leads@production",
        db_url,
        db_url,
        input_table="leads",
        table="lead_scores",
        key="lead_id",
        mode="upsert",
        proba=True,
        chunk_size=2_000,
    )
    scheduler = Scheduler(store, spec_runner(store, load_model), clock=SystemClock(), actor=settings.actor)
    if not any(s.name == "daily-lead-scores" for s in scheduler.schedules()):
        scheduler.add("daily-lead-scores", "0 6 * * *", daily, timezone="Europe/Paris", retries=3, retry_delay_s=60)
    scheduled = scheduler.run_now("daily-lead-scores")

    export_path = workdir / "exports" / "lead_scores.csv"
    export = JobSpec.build(
        "leads@production", db_url, str(export_path), input_table="leads", key="lead_id", include="email", proba=True
    )
    result = run_spec(export, load_model=load_model, store=store)
    registry.close()
    return Demo(mv.version, scheduled, result, export_path)


def main(argv: Sequence[str] | None = None) -> Demo:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", type=Path, default=Path("lead-scoring-demo"), help="where files go")
    parser.add_argument("--db", default=None, help="CRM database URL (default: SQLite in the workdir)")
    parser.add_argument("--leads", type=int, default=5_000, help="how many new leads to score")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = args.db or f"sqlite:///{workdir / 'crm.db'}"
    demo = run_demo(db_url, workdir, leads=args.leads)
    print(f"leads:{demo.version} is in production")
    print(f"daily schedule: {demo.scheduled.status}, run {demo.scheduled.run_id}")
    print(f"CSV for the CRM: {demo.export_path} ({demo.export.rows_written} leads)")
    return demo


if __name__ == "__main__":
    main()
