"""``release status`` shows each answering version's live accuracy once feedback arrives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelport.api.governing import release_status, start_release
from modelport.api.models import load_model, save_model
from modelport.api.serving import feedback_dir, log_dir, log_redactor
from modelport.core.settings import Settings
from modelport.monitoring.feedback import FeedbackStore, parse_feedback
from modelport.registry.registry import Registry
from modelport.runtime.predlog import PredictionLogWriter, request_records
from modelport.server.releases import ReleaseStats


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer

    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    return frame.iloc[:, :5], target


def test_release_status_reports_live_accuracy_per_version(tmp_path: Path, data: tuple[pd.DataFrame, pd.Series]) -> None:
    from sklearn.linear_model import LogisticRegression

    frame, target = data
    settings = Settings(home=tmp_path / "home", user="tester")
    registry = Registry(settings)
    for c in (1.0, 0.001):
        model = LogisticRegression(C=c, max_iter=5000).fit(frame, target)
        save_model(model, "bc", sample_input=frame.head(50), registry=registry)
    registry.set_alias("bc", "production", 1)
    release = start_release("bc", canary=2, weight=50, settings=settings, registry=registry)

    predictors = {v: load_model(f"bc:{v}", registry=registry) for v in (1, 2)}
    # Half the rows answered by each version, as a server would log and report them.
    stats = ReleaseStats(release)
    writer = PredictionLogWriter(log_dir(settings), redactor=log_redactor(settings))
    writer.start()
    expected: dict[int, list[bool]] = {1: [], 2: []}
    labels = []
    for i, (row, truth) in enumerate(zip(frame.to_dict("records"), target, strict=True)):
        version, route = (1, "primary") if i % 2 == 0 else (2, "canary")
        predicted = int(predictors[version].predict(pd.DataFrame([row]))[0])
        expected[version].append(predicted == truth)
        records = request_records(
            model="bc",
            version=version,
            request_id=f"r{i}",
            inputs=[row],
            outputs={"predict": np.array([predicted])},
            route=route,
        )
        writer.log_many(records)
        stats.record(version, route, 1.0, True)
        labels.append({"request_id": f"r{i}", "label": int(truth)})
    writer.stop()
    assert release.id is not None
    registry.releases.report_traffic(release.id, "server-test", stats.snapshot())

    before = {row.version: row.accuracy for row in release_status("bc", settings=settings, registry=registry).traffic}
    assert before == {1: None, 2: None}  # no ground truth yet

    FeedbackStore(feedback_dir(settings), redactor=log_redactor(settings)).add("bc", parse_feedback(labels))
    after = {row.version: row.accuracy for row in release_status("bc", settings=settings, registry=registry).traffic}
    for version in (1, 2):
        assert after[version] == pytest.approx(np.mean(expected[version]))
    assert after[1] != after[2]
