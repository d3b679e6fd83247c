from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelport.batch.options import JobOptions
from modelport.batch.scoring import REJECTS_SCHEMA, ChunkScorer, proba_column_names
from modelport.batch.screening import prepare_inputs, screen, suspects
from modelport.batch.sources import SourceChunk
from modelport.bundle.io import load_bundle, save_bundle
from modelport.core.errors import Unsupported, ValidationError
from modelport.runtime.predictor import Predictor

from .conftest import FEATURES, frame

NOW = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


def _scorer(predictor: Predictor, **options: object) -> ChunkScorer:
    return ChunkScorer(
        predictor,
        JobOptions.build(**options),
        run_id="r" * 32,
        clock=lambda: NOW,
        timer=lambda: 0.0,
        sample_per_chunk=3,
    )


def _chunk(data: pd.DataFrame, start_row: int = 0) -> SourceChunk:
    table = pa.Table.from_pandas(data, preserve_index=False)
    return SourceChunk(table=table, start_row=start_row, position={"rows": start_row + len(data)})


def test_clean_chunk_gives_the_documented_columns_and_the_models_predictions(predictor: Predictor) -> None:
    data = frame(40)
    scored = _scorer(predictor, key="id", proba=True).score(4, _chunk(data, start_row=400))
    out = scored.output.to_pandas()
    assert list(out.columns) == ["id", "prediction", "proba_0", "proba_1", "model", "version", "run_id", "scored_at"]
    assert out["id"].tolist() == data["id"].tolist()
    np.testing.assert_array_equal(out["prediction"], predictor.predict(data[FEATURES]))
    np.testing.assert_allclose(out[["proba_0", "proba_1"]], predictor.predict_proba(data[FEATURES]))
    assert set(out["model"]) == {"lr"}
    assert out["version"].isna().all()
    assert set(out["run_id"]) == {"r" * 32}
    assert scored.output.schema.field("scored_at").type == pa.timestamp("us", tz="UTC")
    assert (scored.index, scored.rows_read, scored.rejects.num_rows) == (4, 40, 0)
    assert [row for row, _, _ in scored.sample] == [400, 419, 439]
    assert set(scored.sample[0][1]) == set(FEATURES)
    assert set(scored.sample[0][2]) == {"predict", "predict_proba"}


def test_bad_rows_become_rejects_with_reason_and_original_values(predictor: Predictor) -> None:
    data = frame(12)
    data["a"] = data["a"].map(str).astype(object)  # text, as read from a CSV
    data.loc[2, "a"] = "oops"
    data.loc[5, "b"] = np.nan
    data.loc[7, "c"] = np.inf
    data.loc[9, "id"] = 3  # repeats row 3's key
    data["id"] = data["id"].astype("Int64")
    data.loc[10, "id"] = pd.NA
    scored = _scorer(predictor, key="id").score(0, _chunk(data, start_row=1000))
    rejects = scored.rejects.to_pandas()
    assert scored.rejects.schema == REJECTS_SCHEMA
    assert rejects["row"].tolist() == [1002, 1005, 1007, 1009, 1010]
    reasons = dict(zip(rejects["row"], rejects["reason"], strict=True))
    assert "column 'a'" in reasons[1002]
    assert "oops" in reasons[1002]
    assert "at row 1002" in reasons[1002]
    assert "column 'b'" in reasons[1005]
    assert "missing" in reasons[1005]
    assert "column 'c'" in reasons[1007]
    assert "finite" in reasons[1007]
    assert "duplicate key" in reasons[1009]
    assert "missing key" in reasons[1010]
    assert '"a":"oops"' in rejects.loc[0, "values"]
    good = [0, 1, 3, 4, 6, 8, 11]
    out = scored.output.to_pandas()
    assert out["id"].tolist() == data.loc[good, "id"].tolist()
    expected = predictor.predict(data.loc[good, FEATURES].astype(float).to_numpy())
    np.testing.assert_array_equal(out["prediction"], expected)


def test_text_numbers_from_csv_are_cast_once_and_only_bad_ones_rejected(predictor: Predictor) -> None:
    table = pa.table({"a": ["1.5", "2", "x"], "b": ["0", "1", "2"], "c": [1.0, 2.0, 3.0]})
    prepared = prepare_inputs(table, predictor.signature.columns)
    assert prepared.column("b").type == pa.float64()
    assert prepared.column("a").type == pa.string()  # 'x' blocks the cast
    assert suspects(prepared, predictor.signature.columns).tolist() == [False, False, True]
    result = screen(predictor, prepared, ("predict",))
    assert result.rows.tolist() == [0, 1]
    assert result.rejected[0][0] == 2


def test_rows_the_model_itself_refuses_are_found_by_bisection(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = pd.DataFrame({"plan": ["basic", "pro"] * 20})
    model = make_pipeline(OneHotEncoder(handle_unknown="error"), LogisticRegression()).fit(train, [0, 1] * 20)
    save_bundle(model, tmp_path / "plan", name="plan", sample_input=train)
    predictor = Predictor(load_bundle(tmp_path / "plan"))
    plans = ["basic", "pro", "team", "basic", "gold", "pro", "pro", "basic"]
    inputs = pa.table({"plan": plans})
    assert not suspects(inputs, predictor.signature.columns).any()  # only the model knows
    result = screen(predictor, inputs, ("predict",))
    assert [row for row, _ in result.rejected] == [2, 4]
    assert "rejected the input" in result.rejected[0][1]
    assert result.rows.tolist() == [0, 1, 3, 5, 6, 7]
    np.testing.assert_array_equal(result.outputs["predict"], model.predict(train.iloc[[0, 1, 0, 1, 1, 0]]))


def test_every_row_rejected_still_gives_typed_empty_output(predictor: Predictor) -> None:
    data = pd.DataFrame({"id": [1, 2], "a": ["x", "y"], "b": [1.0, 2.0], "c": [1.0, 2.0]})
    scored = _scorer(predictor, key="id").score(0, _chunk(data))
    assert scored.output.num_rows == 0
    assert scored.output.column_names == ["id", "prediction", "model", "version", "run_id", "scored_at"]
    assert scored.rejects.num_rows == 2


def test_options_the_model_cannot_honour_are_refused(tmp_path: Path, predictor: Predictor) -> None:
    from sklearn.linear_model import LinearRegression

    train = frame(30)
    save_bundle(
        LinearRegression().fit(train[FEATURES], train["a"]), tmp_path / "reg", name="reg", sample_input=train[FEATURES]
    )
    regressor = Predictor(load_bundle(tmp_path / "reg"))
    with pytest.raises(Unsupported, match="no class probabilities"):
        _scorer(regressor, proba=True)
    with pytest.raises(ValidationError, match="clash"):
        _scorer(predictor, key="prediction")
    scored = _scorer(regressor, include="c").score(0, _chunk(train))
    assert scored.output.column_names[:2] == ["c", "prediction"]
    assert scored.output.schema.field("prediction").type == pa.float64()


def test_probability_column_names_fall_back_to_positions_for_odd_labels() -> None:
    assert proba_column_names(["stay", "churn"]) == ("proba_stay", "proba_churn")
    assert proba_column_names(["a b", "a-b"]) == ("proba_0", "proba_1")
    assert proba_column_names([True, False]) == ("proba_True", "proba_False")


def _backend_spy(predictor: Predictor, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of joblib's active backend at every predict call of ``predictor``'s model."""
    from joblib.parallel import get_active_backend

    seen: list[str] = []
    adapter = predictor.adapter
    predict = adapter.predict

    def spy(data: object) -> object:
        seen.append(type(get_active_backend()[0]).__name__)
        return predict(data)

    monkeypatch.setattr(adapter, "predict", spy)
    return seen


@pytest.mark.parametrize(("parallel_chunks", "backend"), [(True, "SequentialBackend"), (False, "LokyBackend")])
def test_parallel_chunks_run_joblib_models_in_the_scoring_thread(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch, parallel_chunks: bool, backend: str
) -> None:
    seen = _backend_spy(predictor, monkeypatch)
    data = frame(30)
    scorer = ChunkScorer(
        predictor,
        JobOptions.build(key="id"),
        run_id="r" * 32,
        clock=lambda: NOW,
        timer=lambda: 0.0,
        parallel_chunks=parallel_chunks,
    )
    out = scorer.score(0, _chunk(data)).output.to_pandas()
    assert seen == [backend]
    np.testing.assert_array_equal(out["prediction"], predictor.predict(data[FEATURES]))
    from joblib.parallel import get_active_backend

    assert type(get_active_backend()[0]).__name__ == "LokyBackend"  # the setting ends with the call


def test_constant_columns_keep_their_types_and_an_empty_chunk_has_them_too(predictor: Predictor) -> None:
    scorer = _scorer(predictor, key="id")
    full = scorer.score(0, _chunk(frame(5))).output
    empty = scorer.score(1, _chunk(frame(0))).output
    for table, rows in ((full, 5), (empty, 0)):
        assert table.num_rows == rows
        assert [table.schema.field(c).type for c in ("model", "version", "run_id", "scored_at")] == [
            pa.string(),
            pa.int64(),
            pa.string(),
            pa.timestamp("us", tz="UTC"),
        ]
    assert full.column("scored_at").to_pylist() == [NOW] * 5
    assert full.column("model").to_pylist() == ["lr"] * 5
