"""Recommendations: score every user x item candidate and keep the top 5 items per user for the e-mail job.

What it does, end to end:

1. generates users, items and past clicks, trains a click model on user x item features and
   registers it as ``recs`` (alias ``production``);
2. runs a weekly batch job whose input is a SQL query building the candidates
   (``users CROSS JOIN items``, with the features of both) and whose output is the
   ``recommendation_scores`` table, keyed on ``(user_id, item_id)``, with click probabilities;
3. rebuilds ``user_recommendations`` — the table the e-mail job reads: ``user_id``, ``rank``
   (1-5), ``item_id``, ``score`` — from the run's scores in one transaction, so the e-mail job
   sees last week's list or this week's, never a mix.

Run it (from the repository root)::

    python examples/recommendations/recommendations.py                              # SQLite
    python examples/recommendations/recommendations.py --db postgresql://postgres@127.0.0.1:5432/test
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
from modelport.batch.job import JobResult
from modelport.batch.spec import JobSpec, run_spec
from modelport.registry.runs import RunStore

FEATURES = ["age", "activity", "price", "popularity", "same_category"]
CATEGORIES = ["books", "music", "games", "garden"]
TOP_K = 5

CANDIDATES_SQL = """
SELECT u.user_id, i.item_id, u.age, u.activity, i.price, i.popularity,
       CASE WHEN u.favourite = i.category THEN 1 ELSE 0 END AS same_category
FROM users u CROSS JOIN items i
"""

TOP_K_SQL = """
INSERT INTO user_recommendations (user_id, rank, item_id, score, run_id)
SELECT user_id, rank, item_id, score, run_id FROM (
    SELECT user_id, item_id, proba_1 AS score, run_id,
           ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY proba_1 DESC, item_id) AS rank
    FROM recommendation_scores WHERE run_id = :run_id
) ranked
WHERE rank <= :top_k
"""


def make_catalogue(users: int, items: int, *, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generated users (age, activity, favourite category) and items (category, price, popularity)."""
    rng = np.random.default_rng(seed)
    user_table = pd.DataFrame(
        {
            "user_id": np.arange(1, users + 1, dtype=np.int64),
            "age": rng.integers(18, 75, users).astype(np.int64),
            "activity": rng.gamma(2.0, 2.0, users).round(2),
            "favourite": rng.choice(CATEGORIES, users),
        }
    )
    item_table = pd.DataFrame(
        {
            "item_id": np.arange(1, items + 1, dtype=np.int64),
            "category": rng.choice(CATEGORIES, items),
            "price": rng.uniform(5, 200, items).round(2),
            "popularity": rng.beta(2, 5, items).round(3),
        }
    )
    return user_table, item_table


def candidates(users: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Every user x item pair with its features (what ``CANDIDATES_SQL`` computes in the database)."""
    pairs = users.merge(items, how="cross")
    pairs["same_category"] = (pairs["favourite"] == pairs["category"]).astype(np.int64)
    return pairs[["user_id", "item_id", *FEATURES]]


def train(pairs: pd.DataFrame, *, seed: int) -> object:
    """A click model: gradient-boosted trees on the pair features, trained on generated clicks."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    logit = (
        2.0 * pairs["same_category"]
        + 3.0 * pairs["popularity"]
        + 0.15 * pairs["activity"]
        - 0.01 * pairs["price"]
        - 2.5
    )
    clicked = (rng.random(len(pairs)) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return HistGradientBoostingClassifier(max_iter=60, random_state=seed).fit(pairs[FEATURES], clicked)


@dataclass(frozen=True)
class Demo:
    """What the demo produced."""

    scoring: JobResult
    recommendations: pd.DataFrame


def publish_top_k(db_url: str, run_id: str) -> None:
    """Rebuild ``user_recommendations`` from one run's scores, in one transaction."""
    engine = sa.create_engine(db_url)
    metadata = sa.MetaData()
    table = sa.Table(
        "user_recommendations",
        metadata,
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("rank", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.BigInteger, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(sa.text(TOP_K_SQL), {"run_id": run_id, "top_k": TOP_K})
    engine.dispose()


def run_demo(db_url: str, workdir: Path, *, users: int = 300, items: int = 60) -> Demo:
    """Train and register the click model, score all candidates, publish the top 5 per user."""
    settings = modelport.Settings(home=workdir / "home", user="recommendations-demo")
    registry = modelport.Registry(settings)
    train_users, train_items = make_catalogue(400, 60, seed=1)
    pairs = candidates(train_users, train_items)
    mv = modelport.save_model(
        train(pairs, seed=1),
        "recs",
        sample_input=pairs[FEATURES].head(200),
        reference_data=pairs[FEATURES],
        registry=registry,
    )
    registry.set_alias("recs", "production", mv.version, reason="recommendations demo")

    user_table, item_table = make_catalogue(users, items, seed=2)
    shop = sa.create_engine(db_url)
    user_table.to_sql("users", shop, index=False, if_exists="replace")
    item_table.to_sql("items", shop, index=False, if_exists="replace")
    shop.dispose()

    weekly = JobSpec.build(
        "recs@production",
        db_url,
        db_url,
        query=CANDIDATES_SQL,
        table="recommendation_scores",
        key="user_id,item_id",
        mode="replace",
        proba=True,
        chunk_size=5_000,
    )
    store = RunStore(registry.engine, settings.database_url)
    result = run_spec(weekly, load_model=lambda ref: modelport.load_model(ref, registry=registry), store=store)
    registry.close()
    publish_top_k(db_url, result.run_id)
    engine = sa.create_engine(db_url)
    recommendations = pd.read_sql_query(
        sa.text("SELECT user_id, rank, item_id, score FROM user_recommendations ORDER BY user_id, rank"), engine
    )
    engine.dispose()
    return Demo(result, recommendations)


def main(argv: Sequence[str] | None = None) -> Demo:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", type=Path, default=Path("recommendations-demo"), help="where files go")
    parser.add_argument("--db", default=None, help="shop database URL (default: SQLite in the workdir)")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--items", type=int, default=60)
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = args.db or f"sqlite:///{workdir / 'shop.db'}"
    demo = run_demo(db_url, workdir, users=args.users, items=args.items)
    print(f"scored {demo.scoring.rows_written} user x item candidates in run {demo.scoring.run_id}")
    print(demo.recommendations.head(TOP_K * 2).to_string(index=False))
    return demo


if __name__ == "__main__":
    main()
