"""The online half of the quickstart: serve, call the three protocols, drift and feedback.

Sends the held-out rows with one feature shifted (as if an upstream unit changed), then their true
labels as feedback, so ``modelport monitor drift`` and the dashboard have something to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd

from modelport.core.errors import ModelportError
from modelport.core.settings import Settings
from modelport.registry.registry import Registry
from modelport.runtime.predictor import Predictor

from .background import background_server
from .serving import build_app, server_config

SHIFTED_FEATURE = "mean texture"
"""The feature the quickstart's traffic shifts: drift detection should flag exactly this one."""
ROWS_PER_REQUEST = 16


@dataclass
class OnlineResult:
    """What the online quickstart saw."""

    protocols_agree: dict[str, bool]
    requests: int
    rows: int
    feedback: int
    runtime: str


def _v2_body(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": column, "datatype": "FP64", "shape": [len(frame)], "data": frame[column].tolist()}
            for column in frame.columns
        ]
    }


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    response = client.post(path, json=body)
    if response.status_code != 200:
        error = response.json().get("error", response.text)
        raise ModelportError(f"POST {path} answered {response.status_code}: {error}", hint="See the server log above.")
    return response


def check_protocols(client: httpx.Client, name: str, frame: pd.DataFrame, expected: np.ndarray) -> dict[str, bool]:
    """Ask the same rows through V2, V1 and MLflow; whether each equals ``Predictor.predict``."""
    records = frame.to_dict(orient="records")
    v2 = _post(client, f"/v2/models/{name}/infer", _v2_body(frame)).json()
    v2_predict = next(o["data"] for o in v2["outputs"] if o["name"] == "predict")
    v1 = _post(client, f"/v1/models/{name}:predict", {"instances": records}).json()["predictions"]
    mlflow = _post(client, "/invocations", {"dataframe_records": records}).json()["predictions"]
    want = expected.tolist()
    return {"V2 /infer": v2_predict == want, "V1 :predict": v1 == want, "MLflow /invocations": mlflow == want}


def run_online(
    settings: Settings, registry: Registry, predictor: Predictor, x_test: pd.DataFrame, y_test: pd.Series
) -> OnlineResult:
    """Serve the production model, call it three ways, send shifted traffic and its feedback."""
    name = predictor.name
    config = server_config([f"{name}@production"], settings=settings, poll_interval_s=0, access_log=False)
    app = build_app(config, settings=settings, registry=registry)
    shifted = x_test.copy()
    scale = float(x_test[SHIFTED_FEATURE].std())
    shifted[SHIFTED_FEATURE] = shifted[SHIFTED_FEATURE] + 2.0 * scale
    with background_server(app) as url, httpx.Client(base_url=url, timeout=30.0) as client:
        sample = x_test.head(8)
        agree = check_protocols(client, name, sample, predictor.predict(sample))
        runtime = client.get(f"/v2/models/{name}").json().get("serving", {}).get("runtime", "native")
        feedback: list[dict[str, Any]] = []
        requests = 0
        for start in range(0, len(shifted), ROWS_PER_REQUEST):
            chunk = shifted.iloc[start : start + ROWS_PER_REQUEST]
            response = _post(client, f"/v2/models/{name}/infer", _v2_body(chunk))
            requests += 1
            request_id = response.headers["x-request-id"]
            truth = y_test.iloc[start : start + ROWS_PER_REQUEST].tolist()
            feedback.extend({"request_id": request_id, "row": i, "label": int(label)} for i, label in enumerate(truth))
        _post(client, f"/v2/models/{name}/feedback", {"records": feedback})
    return OnlineResult(
        protocols_agree=agree, requests=requests, rows=len(shifted), feedback=len(feedback), runtime=runtime
    )
