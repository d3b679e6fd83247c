"""The runnable examples under ``examples/`` (on SQLite here; on PostgreSQL in tests/integration)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import sqlalchemy as sa

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>/<name>.py`` as a module."""
    path = EXAMPLES / name / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def check_lead_scoring(db_url: str, workdir: Path) -> None:
    """Run the lead-scoring demo twice and check the table analysts read and the CRM's CSV."""
    example = load_example("lead_scoring")
    first = example.main(["--workdir", str(workdir), "--db", db_url, "--leads", "600"])
    second = example.main(["--workdir", str(workdir), "--db", db_url, "--leads", "600"])
    assert (first.version, second.version) == (1, 2)
    assert first.scheduled.status == "completed"
    engine = sa.create_engine(db_url)
    scores = pd.read_sql_query(sa.text("SELECT lead_id, proba_1, version, run_id FROM lead_scores"), engine)
    engine.dispose()
    assert len(scores) == 600
    assert scores["lead_id"].is_unique
    assert set(scores["version"]) == {2}
    assert set(scores["run_id"]) == {second.scheduled.run_id}
    assert scores["proba_1"].between(0, 1).all()
    export = pd.read_csv(second.export_path)
    assert len(export) == 600
    assert {"lead_id", "email", "proba_1"} <= set(export.columns)


def check_recommendations(db_url: str, workdir: Path) -> None:
    """Run the recommendations demo and check the top 5 per user against the scores table."""
    example = load_example("recommendations")
    demo = example.main(["--workdir", str(workdir), "--db", db_url, "--users", "40", "--items", "15"])
    assert demo.scoring.rows_written == 40 * 15
    top = demo.recommendations
    assert len(top) == 40 * 5
    assert top.groupby("user_id")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4, 5]).all()
    engine = sa.create_engine(db_url)
    scores = pd.read_sql_query(sa.text("SELECT user_id, item_id, proba_1 FROM recommendation_scores"), engine)
    engine.dispose()
    expected = (
        scores.sort_values(["user_id", "proba_1", "item_id"], ascending=[True, False, True])
        .groupby("user_id")
        .head(5)["item_id"]
        .tolist()
    )
    assert top["item_id"].tolist() == expected


def test_lead_scoring_example_on_sqlite(tmp_path: Path) -> None:
    check_lead_scoring(f"sqlite:///{tmp_path / 'crm.db'}", tmp_path / "demo")


def test_recommendations_example_on_sqlite(tmp_path: Path) -> None:
    check_recommendations(f"sqlite:///{tmp_path / 'shop.db'}", tmp_path / "demo")
