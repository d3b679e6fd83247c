"""MLflow ``/invocations`` with ``text/csv`` bodies: the same predictions as ``dataframe_split``, teaching 4xx.

CSV is read into the columns ``dataframe_split`` gives and coerced by the signature the same way;
every malformed body is a 400 or 422 naming the problem; V2 and V1 routes refuse CSV with a 415.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from modelport.core.errors import BadRequest, ValidationError
from modelport.core.types import ColumnSpec, Signature, TensorSpec
from modelport.runtime.coercion import Coercer
from modelport.server.app import create_app
from modelport.server.config import ServerConfig
from modelport.server.protocols import mlflow

from .support import FEATURES, rows, serving, v2_body

pytestmark = pytest.mark.anyio

CSV = "text/csv"
MIXED = Signature(
    kind="tabular",
    columns=(
        ColumnSpec(name="age", type="int", dtype="int64"),
        ColumnSpec(name="income", type="float", dtype="float64", nullable=True),
        ColumnSpec(name="plan", type="string", dtype="object"),
        ColumnSpec(name="active", type="bool", dtype="bool"),
        ColumnSpec(name="joined", type="datetime", dtype="datetime64[ns]"),
    ),
)


def _csv(records: list[dict[str, float]]) -> bytes:
    return pd.DataFrame(records, columns=list(FEATURES)).to_csv(index=False).encode()


def _split(records: list[dict[str, float]]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(FEATURES), "data": [[r[f] for f in FEATURES] for r in records]}}


@pytest.fixture
def app(iris_bundles: dict[int, Path]) -> Any:
    return create_app(ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0), registry=None)


# --- parsing, without a server ------------------------------------------------------------------


def test_csv_gives_the_columns_of_dataframe_split() -> None:
    req = mlflow.parse_csv(b"age,income,plan,active,joined\n31,2.5,007,true,2024-01-01\n", MIXED)
    split = mlflow.parse_invocations(
        {
            "dataframe_split": {
                "columns": ["age", "income", "plan", "active", "joined"],
                "data": [[31, 2.5, "007", True, "2024-01-01"]],
            }
        },
        MIXED,
    )
    assert req.outputs == split.outputs == ("predict",)
    assert list(req.data) == list(split.data)
    assert {k: np.asarray(v).tolist() for k, v in req.data.items()} == split.data
    assert req.data["plan"].tolist() == ["007"]  # text columns stay text: no number inference


@pytest.mark.parametrize(
    "csv",
    [
        # typed read: numbers, bools, missing-value markers, quoted commas and newlines, columns in any order
        b'joined,plan,age,income,active\n2024-01-01,"a, ""b""\nc",1,NA,TRUE\n2024-02-03T04:05:06Z,x,-2,1e3,0\n',
        # text read (an int written as 1.0, a lower-case bool the Arrow reader does not know): same coercion
        b"age,income,plan,active,joined\n1.0,,a,tRuE,2024-01-01\n2,0.5,b,False,2024-02-03\n",
    ],
)
def test_csv_coerces_exactly_like_json(csv: bytes) -> None:
    coercer = Coercer(MIXED, "frame")
    frame = pd.read_csv(io.BytesIO(csv), dtype=str, keep_default_na=False)
    as_json = {
        "columns": list(frame.columns),
        "data": [[None if v in ("", "NA") else v for v in row] for row in frame.itertuples(index=False)],
    }
    json_frame = coercer.coerce(mlflow.parse_invocations({"dataframe_split": as_json}, MIXED).data)
    csv_frame = coercer.coerce(mlflow.parse_csv(csv, MIXED).data)
    pd.testing.assert_frame_equal(csv_frame, json_frame)
    assert csv_frame["plan"].dtype == object
    assert csv_frame["age"].dtype == np.int64


def test_big_ints_stay_exact() -> None:
    req = mlflow.parse_csv(b"age,income,plan,active,joined\n9007199254740993,1,a,1,2024-01-01\n", MIXED)
    assert Coercer(MIXED, "frame").coerce(req.data)["age"].tolist() == [9007199254740993]


def test_tensor_models_read_columns_by_tensor_name() -> None:
    sig = Signature(kind="tensor", tensors=(TensorSpec(name="x", dtype="float32", shape=(-1,)),))
    req = mlflow.parse_csv(b"x\n1.5\n2\n", sig)
    assert req.data["x"].tolist() == [1.5, 2.0]
    with pytest.raises(BadRequest, match="header row is required"):
        mlflow.parse_csv(b"1.5\n2\n", sig)


MIXED_HEADER = b"age,income,plan,active,joined\n"


@pytest.mark.parametrize(
    ("csv", "error", "message"),
    [
        (b"", BadRequest, "body is empty"),
        (b" \r\n", BadRequest, "body is empty"),
        (MIXED_HEADER, BadRequest, "no data rows"),
        (MIXED_HEADER.strip(), BadRequest, "no data rows"),
        (MIXED_HEADER + b"1,2,a,1\n", BadRequest, "Row #2: Expected 5 columns, got 4"),
        (MIXED_HEADER + b"1,2,a,1,2024-01-01,9\n", BadRequest, "Expected 5 columns, got 6"),
        (MIXED_HEADER + b'1,2,"a,1,2024-01-01\n', BadRequest, "Malformed CSV body"),
        (b"1,2.5,a,1,2024-01-01\n2,2.5,a,1,2024-01-01\n", BadRequest, "header row is required"),
        (b"1,2.5,a,1,2024-01-01", BadRequest, "header row is required"),
        (MIXED_HEADER + b"1,2,caf\xe9,1,2024-01-01\n", BadRequest, "not valid UTF-8 (byte 0xe9 on line 2)"),
        (b'{"dataframe_split": {}}', BadRequest, "looks like JSON"),
        (b"," + MIXED_HEADER + b"0,1,2,a,1,2024-01-01\n", BadRequest, "column 1 has no name"),
        (b"age," + MIXED_HEADER + b"1,1,2,a,1,2024-01-01\n", BadRequest, "'age' twice"),
        (b"colour," + MIXED_HEADER + b"red,1,2,a,1,2024-01-01\n", ValidationError, "Unknown input column 'colour'"),
    ],
)  # fmt: skip
def test_bad_csv_is_refused(csv: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        mlflow.parse_csv(csv, MIXED)
    assert type(info.value) is error
    assert info.value.hint  # type: ignore[attr-defined]


# --- over HTTP ----------------------------------------------------------------------------------


async def test_csv_predictions_equal_dataframe_split(app: Any) -> None:
    records = rows(5, start=45)
    async with serving(app) as client:
        want = await client.post("/invocations", json=_split(records))
        assert want.status_code == 200, want.text
        for content_type in (CSV, "text/csv; charset=utf-8", "Text/CSV;charset=UTF-8"):
            resp = await client.post("/invocations", content=_csv(records), headers={"content-type": content_type})
            assert resp.status_code == 200, (content_type, resp.text)
            assert resp.headers["content-type"].startswith("application/json")
            assert resp.json() == want.json()
            assert set(resp.json()) == {"predictions"}
        shuffled = pd.DataFrame(records)[list(reversed(FEATURES))].to_csv(index=False).encode()
        resp = await client.post("/invocations", content=shuffled, headers={"content-type": CSV})
        assert resp.json() == want.json()


async def test_gzip_csv_and_the_body_caps(iris_bundles: dict[int, Path]) -> None:
    config = ServerConfig(models=(str(iris_bundles[1]),), poll_interval_s=0, max_body_bytes=64 * 1024)
    records = rows(3)
    async with serving(create_app(config, registry=None)) as client:
        want = (await client.post("/invocations", json=_split(records))).json()
        resp = await client.post(
            "/invocations",
            content=gzip.compress(_csv(records)),
            headers={"content-type": CSV, "content-encoding": "gzip"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json() == want
        big = _csv(records) + b"5.1,3.5,1.4,0.2\n" * 5000
        resp = await client.post("/invocations", content=big, headers={"content-type": CSV})
        assert resp.status_code == 413
        assert "65536 bytes" in resp.json()["error"]
        bomb = gzip.compress(_csv(records) + b"5.1,3.5,1.4,0.2\n" * 1_000_000)
        assert len(bomb) < 100_000
        resp = await client.post(
            "/invocations", content=bomb, headers={"content-type": CSV, "content-encoding": "gzip"}
        )
        assert resp.status_code == 413
        assert "after decompression" in resp.json()["error"]


HEADER = ",".join(FEATURES).encode()
BAD: list[tuple[str, bytes, str, int, str]] = [
    ("empty", b"", CSV, 400, "The request body is empty."),
    ("header only", HEADER + b"\n", CSV, 400, "no data rows"),
    ("ragged row", HEADER + b"\n5.1,3.5,1.4,0.2\n4.9,3.0\n", CSV, 400, "Row #3: Expected 4 columns, got 2"),
    ("missing header", b"5.1,3.5,1.4,0.2\n4.9,3.0,1.4,0.2\n", CSV, 400, "header row is required"),
    ("not UTF-8", HEADER + b"\n5.1,3.5,1.4,\xff\n", CSV, 400, "not valid UTF-8"),
    ("unknown column", HEADER + b",colour\n5.1,3.5,1.4,0.2,red\n", CSV, 422, "Unknown input column 'colour'"),
    ("missing column", b"sepal_length,sepal_width\n5.1,3.5\n", CSV, 422, "Missing column 'petal_length'"),
    ("text in a number column", HEADER + b"\n5.1,3.5,1.4,0.2\n4.9,3.0,wide,0.2\n", CSV, 422,
     "column 'petal_length': expected float, got str ('wide') at row 1"),
    ("missing value", HEADER + b"\n5.1,3.5,,0.2\n", CSV, 422, "missing value"),
    ("infinity", HEADER + b"\n5.1,3.5,inf,0.2\n", CSV, 422, "expected a finite float"),
    ("other charset", HEADER + b"\n5.1,3.5,1.4,0.2\n", "text/csv; charset=latin-1", 415, "charset 'latin-1'"),
    ("JSON sent as CSV", orjson.dumps(_split(rows(1))), CSV, 400, "looks like JSON"),
    ("CSV sent as JSON", HEADER + b"\n5.1,3.5,1.4,0.2\n", "application/json", 400, "Malformed JSON"),
    ("unknown media type", HEADER, "application/xml", 415, "'application/xml' is not supported"),
]  # fmt: skip


async def test_every_bad_csv_is_a_teaching_4xx(app: Any) -> None:
    async with serving(app) as client:
        for label, body, content_type, status, message in BAD:
            resp = await client.post("/invocations", content=body, headers={"content-type": content_type})
            assert resp.status_code == status, (label, resp.text)
            doc = resp.json()
            assert set(doc) == {"error", "hint", "type", "request_id"}, label
            assert message in doc["error"], (label, doc)
            assert doc["hint"], label
            assert "Traceback" not in resp.text
        hint = (await client.post("/invocations", content=HEADER, headers={"content-type": "text/xml"})).json()
        assert "text/csv" in hint["hint"]


async def test_v2_and_v1_refuse_csv_with_415(app: Any) -> None:
    body = _csv(rows(1))
    async with serving(app) as client:
        for path in ("/v2/models/iris/infer", "/v2/models/iris/versions/1/infer", "/v1/models/iris:predict"):
            for content_type in (CSV, "text/csv; charset=utf-8"):
                resp = await client.post(path, content=body, headers={"content-type": content_type})
                assert resp.status_code == 415, (path, resp.text)
                doc = resp.json()
                assert "accepted only by POST /invocations" in doc["error"]
                assert "application/json" in doc["hint"]
                assert doc["type"] == "UnsupportedMediaType"
        assert (await client.post("/v2/models/iris/infer", json=v2_body(rows(1)))).status_code == 200


async def test_openapi_documents_csv_on_invocations(app: Any) -> None:
    async with serving(app) as client:
        doc = (await client.get("/openapi.json")).json()
    content = doc["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    assert set(doc["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]) == {"application/json"}
