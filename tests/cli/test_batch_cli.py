"""``modelport batch``, ``jobs``, ``schedule`` and ``scheduler`` end to end in a temporary MODELPORT_HOME."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from modelport.core.settings import Settings

from .conftest import CliRunner

FEATURES = ["a", "b", "c"]
MODEL = "leads@production"


def leads(n: int, *, seed: int = 0) -> pd.DataFrame:
    """``n`` rows: an integer ``id`` key and three float features."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    data.insert(0, "id", np.arange(n, dtype=np.int64))
    return data


@pytest.fixture
def home(cli: CliRunner, tmp_path: Path) -> Settings:
    """Settings of the CLI's home, where ``leads`` version 1 is registered and in production."""
    from sklearn.linear_model import LogisticRegression

    from modelport.api import open_registry, save_model

    settings = Settings(home=tmp_path / "home")
    train = leads(300, seed=1)
    model = LogisticRegression().fit(train[FEATURES], (train["a"] + train["b"] > 0).astype(int))
    with open_registry(settings) as registry:
        mv = save_model(model, "leads", sample_input=train[FEATURES].head(50), registry=registry)
        registry.set_alias("leads", "production", mv.version)
    return settings


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "leads.csv"
    leads(300).to_csv(path, index=False)
    return path


def expected(settings: Settings, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    from modelport.api import load_model

    predictor = load_model(MODEL, settings=settings)
    return predictor.predict(frame[FEATURES]), predictor.predict_proba(frame[FEATURES])


def read_table(db: Path, table: str) -> pd.DataFrame:
    with sqlite3.connect(db) as conn:
        return pd.read_sql_query(f"SELECT * FROM {table} ORDER BY id", conn)


def test_csv_to_parquet_with_proba_matches_the_model(cli: CliRunner, home: Settings, csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    args = ["batch", MODEL, "--input", str(csv), "--output", str(out), "--key", "id", "--proba", "--chunk-size", "64"]
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    run = result.json()
    assert (run["status"], run["model"], run["version"]) == ("completed", "leads", 1)
    assert (run["rows_read"], run["rows_written"], run["rows_rejected"], run["chunks"]) == (300, 300, 0, 5)

    scores = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    labels, proba = expected(home, leads(300))
    assert scores["id"].tolist() == list(range(300))
    assert scores["prediction"].tolist() == labels.tolist()
    np.testing.assert_allclose(scores[["proba_0", "proba_1"]].to_numpy(), proba, rtol=1e-12)
    assert set(scores["run_id"]) == {run["run_id"]}

    human = cli(*args)
    assert human.exit_code == 0, human.stderr
    assert "Batch run completed" in human.stdout
    assert "300" in human.stdout
    assert "modelport jobs show" in human.stdout

    # Batch traffic reaches the prediction log: a sample of rows and one record per run.
    logged = pd.concat(pd.read_parquet(p) for p in (tmp_path / "home" / "logs" / "predictions").rglob("*.parquet"))
    assert set(logged["source"]) >= {f"batch:{run['run_id']}"}
    assert (logged["kind"] == "run").sum() == 2
    assert (logged["kind"] == "prediction").sum() > 0


def test_batch_log_applies_the_models_redaction_rules(
    cli: CliRunner, home: Settings, csv: Path, tmp_path: Path
) -> None:
    from sklearn.dummy import DummyClassifier

    from modelport.api import open_registry, save_model

    train = leads(50)
    model = DummyClassifier().fit(train[FEATURES], np.arange(50) % 2)
    with open_registry(home) as registry:
        save_model(model, "private", sample_input=train[FEATURES], registry=registry, redaction={"b": "drop"})
    result = cli("batch", "private:1", "--input", str(csv), "--output", str(tmp_path / "p.parquet"), "--json")
    assert result.exit_code == 0, result.stderr
    folder = tmp_path / "home" / "logs" / "predictions" / "model=private"
    logged = pd.concat(pd.read_parquet(p) for p in folder.rglob("*.parquet"))
    inputs = [orjson.loads(i) for i in logged.loc[logged["kind"] == "prediction", "inputs"]]
    assert inputs
    assert all("a" in row and "b" not in row for row in inputs)


def test_sqlite_upsert_twice_refreshes_scores_without_duplicates(
    cli: CliRunner, home: Settings, csv: Path, tmp_path: Path
) -> None:
    db = tmp_path / "crm.db"
    args = ["--output", f"sqlite:///{db}", "--table", "lead_scores", "--key", "id", "--mode", "upsert", "--proba"]
    first = cli("batch", MODEL, "--input", str(csv), *args, "--json")
    assert first.exit_code == 0, first.stderr

    changed = leads(300, seed=7).iloc[100:]  # ids 100..299 with new features, plus 100 new ids
    changed = pd.concat([changed, leads(400, seed=8).iloc[300:]])
    second_csv = tmp_path / "changed.csv"
    changed.to_csv(second_csv, index=False)
    second = cli("batch", MODEL, "--input", str(second_csv), *args, "--chunk-size", "50", "--json")
    assert second.exit_code == 0, second.stderr

    table = read_table(db, "lead_scores")
    assert table["id"].tolist() == list(range(400))  # no duplicate, none lost
    refreshed = table[table["id"] >= 100].reset_index(drop=True)
    labels, proba = expected(home, changed.sort_values("id"))
    assert refreshed["prediction"].tolist() == labels.tolist()
    np.testing.assert_allclose(refreshed[["proba_0", "proba_1"]].to_numpy(), proba, rtol=1e-12)
    assert set(refreshed["run_id"]) == {second.json()["run_id"]}
    assert set(table[table["id"] < 100]["run_id"]) == {first.json()["run_id"]}


def test_resume_of_a_completed_run_is_refused(cli: CliRunner, home: Settings, csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    run_id = cli("batch", MODEL, "--input", str(csv), "--output", str(out), "--json").json()["run_id"]
    before = out.read_bytes()
    again = cli("batch", MODEL, "--input", str(csv), "--output", str(out), "--resume", run_id)
    assert again.exit_code == 4, again
    assert "completed already" in again.stderr
    assert run_id in again.stderr
    assert "Traceback" not in again.stderr
    assert out.read_bytes() == before


def test_rejects_fail_the_run_which_resumes_with_a_larger_budget(
    cli: CliRunner, home: Settings, tmp_path: Path
) -> None:
    frame = leads(120).astype({"a": object})
    frame.loc[70, "a"] = "seventy"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "scores.parquet"
    failed = cli("batch", MODEL, "--input", str(bad), "--output", str(out), "--key", "id", "--chunk-size", "50")
    assert failed.exit_code == 2, failed
    assert "1 row(s) were rejected" in failed.stderr
    listed = cli("jobs", "list", "--status", "failed", "--json").json()
    assert len(listed) == 1
    run_id = listed[0]["run_id"]
    assert f"--resume {run_id}" in failed.stderr

    resumed = cli(
        "batch", MODEL, "--input", str(bad), "--output", str(out), "--key", "id", "--resume", run_id,
        "--max-errors", "1", "--json",
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.stderr
    result = resumed.json()
    assert (result["run_id"], result["rows_read"], result["rows_written"]) == (run_id, 120, 119)
    assert result["resumed_from_chunk"] == 2  # the chunk holding the reject was committed before the run failed
    assert sorted(pd.read_parquet(out)["id"]) == [i for i in range(120) if i != 70]


def test_jobs_list_and_show(cli: CliRunner, home: Settings, csv: Path, tmp_path: Path) -> None:
    assert cli("jobs", "list", "--json").json() == []
    assert "No batch runs yet" in cli("jobs", "list").stdout
    run_id = cli("batch", MODEL, "--input", str(csv), "--output", str(tmp_path / "s.csv"), "--json").json()["run_id"]

    listed = cli("jobs", "list", "--json").json()
    assert [(r["run_id"], r["status"], r["rows_read"], r["model_version"]) for r in listed] == [
        (run_id, "completed", 300, 1)
    ]
    assert run_id in cli("jobs", "list").stdout
    shown = cli("jobs", "show", run_id, "--json").json()
    assert shown["run_id"] == run_id
    assert shown["source"] == str(csv)
    assert (shown["rows_written"], shown["model_ref"], shown["error"]) == (300, MODEL, None)
    human = cli("jobs", "show", run_id)
    assert human.exit_code == 0, human.stderr
    assert "leads:1" in human.stdout

    missing = cli("jobs", "show", "0" * 32)
    assert missing.exit_code == 3
    assert "hint:" in missing.stderr
    bad_status = cli("jobs", "list", "--status", "done")
    assert bad_status.exit_code == 2
    assert "'done'" in bad_status.stderr


def test_schedule_add_list_run_now_remove(cli: CliRunner, home: Settings, csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "nightly.parquet"
    added = cli(
        "schedule", "add", "nightly", "--cron", "0 6 * * *", "--timezone", "Europe/Paris", "--retries", "2",
        "--retry-delay", "30s", "--", MODEL, "--input", str(csv), "--output", str(out), "--key", "id", "--proba",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert "nightly" in added.stdout

    [schedule] = cli("schedule", "list", "--json").json()
    assert (schedule["name"], schedule["cron"], schedule["timezone"]) == ("nightly", "0 6 * * *", "Europe/Paris")
    assert (schedule["retries"], schedule["retry_delay_s"]) == (2, 30.0)
    job = schedule["job"]
    assert (job["model"], job["input"]["uri"], job["output"]["uri"]) == (MODEL, str(csv), str(out))
    assert (job["options"]["key"], job["options"]["proba"]) == (["id"], True)
    assert "nightly" in cli("schedule", "list").stdout

    ran = cli("schedule", "run-now", "nightly", "--json")
    assert ran.exit_code == 0, ran.stderr
    outcome = ran.json()
    assert outcome["status"] == "completed"
    runs = cli("jobs", "list", "--schedule", "nightly", "--json").json()
    assert [r["run_id"] for r in runs] == [outcome["run_id"]]
    assert len(pd.read_parquet(out)) == 300
    human = cli("schedule", "run-now", "nightly")
    assert human.exit_code == 0, human.stderr
    assert "nightly: completed" in human.stdout

    assert cli("schedule", "remove", "nightly").exit_code == 0
    assert cli("schedule", "list", "--json").json() == []
    again = cli("schedule", "remove", "nightly")
    assert again.exit_code == 3
    assert "nightly" in again.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cron", "0 6 * * *", "--", MODEL, "--output", "o.parquet"], "Missing option '--input'"),
        (["--cron", "0 6 * * *"], "has no job"),
        (["--cron", "every day", "--", MODEL, "-i", "x.csv", "-o", "o.parquet"], "Invalid cron expression"),
        (["--cron", "0 6 * * *", "--", MODEL, "-i", "x.csv", "-o", "o.parquet", "--chunk-size", "0"], "chunk_size"),
        (["--cron", "0 6 * * *", "--retry-delay", "soon", "--", MODEL, "-i", "x.csv", "-o", "o.parquet"], "soon"),
        (["--cron", "0 6 * * *", "--", MODEL, "-i", "x.csv", "-o", "o.parquet", "--resume", "0" * 32], "--resume"),
    ],
)
def test_schedule_add_mistakes(cli: CliRunner, args: list[str], needle: str) -> None:
    result = cli("schedule", "add", "nightly", *args)
    assert result.exit_code == 2, result
    assert needle in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert cli("schedule", "list", "--json").json() == []


def test_hostile_table_name_is_rejected(cli: CliRunner, home: Settings, csv: Path, tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    result = cli("batch", MODEL, "--input", str(csv), "--output", f"sqlite:///{db}", "--table", "x; DROP TABLE y")
    assert result.exit_code == 2, result
    assert "'x; DROP TABLE y'" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli("jobs", "list", "--json").json() == []


def test_missing_input_file_is_a_clear_error(cli: CliRunner, home: Settings, tmp_path: Path) -> None:
    result = cli("batch", MODEL, "--input", "no-such-file.csv", "--output", str(tmp_path / "o.parquet"))
    assert result.exit_code == 3, result
    assert "no-such-file.csv" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    unknown = cli("batch", "nope@production", "--input", "x.csv", "--output", "o.parquet")
    assert unknown.exit_code == 3
    assert "nope" in unknown.stderr


def test_scheduler_runs_a_due_schedule(cli: CliRunner, home: Settings, csv: Path, tmp_path: Path) -> None:
    from modelport.api.scoring import run_scheduler
    from modelport.batch.clock import ManualClock
    from modelport.batch.schedule import ScheduleOutcome

    out = tmp_path / "minutely.parquet"
    added = cli("schedule", "add", "minutely", "--cron", "* * * * *", "--", MODEL, "-i", str(csv), "-o", str(out))
    assert added.exit_code == 0, added.stderr
    outcomes: list[ScheduleOutcome] = []
    clock = ManualClock(datetime.now(UTC))
    run_scheduler(
        stop=lambda: bool(outcomes) or clock.monotonic() > 3600,  # a broken loop fails instead of hanging
        settings=home,
        on_outcome=outcomes.append,
        clock=clock,
        poll_s=20,
    )
    assert [(o.schedule, o.status) for o in outcomes] == [("minutely", "completed")]
    assert clock.sleeps  # it slept (on the manual clock) until the next minute
    [run] = cli("jobs", "list", "--schedule", "minutely", "--json").json()
    assert (run["run_id"], run["status"], run["rows_written"]) == (outcomes[0].run_id, "completed", 300)
    assert len(pd.read_parquet(out)) == 300


def test_scheduler_command_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "MODELPORT_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelport", "scheduler", "--poll", "1s"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "Scheduler running" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Scheduler stopped" in out


def test_quickstart_batch_scores_the_held_out_rows(tmp_path: Path) -> None:
    from modelport.api.quickstart import run_quickstart

    steps: list[tuple[str, str]] = []
    result = run_quickstart(
        Settings(home=tmp_path / "qs"), step=lambda title, detail: steps.append((title, detail)), online=False
    )
    titles = [title for title, _ in steps]
    assert titles.index("Batch-scored") == titles.index("Predicted locally") + 1
    detail = dict(steps)["Batch-scored"]
    scores = pd.read_parquet(result.files["scores"])
    patients = pd.read_csv(result.files["input_csv"])
    assert f"{len(patients)} rows" in detail
    assert "rows/s" in detail
    assert str(result.files["scores"]) in detail
    assert scores["run_id"].iloc[0] in detail
    assert len(scores) == len(patients)
    assert {"prediction", "proba_0", "proba_1"} <= set(scores.columns)
