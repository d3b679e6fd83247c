"""A real Open Inference Protocol V2 client (NVIDIA's tritonclient) works unchanged against the server."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as http

from modelport.runtime.predictor import Predictor

from .support import FEATURES, iris_frame


def test_tritonclient_metadata_readiness_and_inference(iris_url: str, iris_predictor: Predictor) -> None:
    x, _ = iris_frame()
    sample = x.iloc[::25]
    expected = iris_predictor.predict(sample)
    client = http.InferenceServerClient(url=iris_url.removeprefix("http://"))
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("iris")
        metadata = client.get_model_metadata("iris")
        assert [i["name"] for i in metadata["inputs"]] == list(FEATURES)

        for binary in (False, True):
            inputs = []
            for name in FEATURES:
                tensor = http.InferInput(name, [len(sample)], "FP64")
                tensor.set_data_from_numpy(sample[name].to_numpy(np.float64), binary_data=binary)
                inputs.append(tensor)
            outputs = [http.InferRequestedOutput("predict", binary_data=binary)]
            result = client.infer("iris", inputs, outputs=outputs, request_id="triton-1")
            assert result.as_numpy("predict").tolist() == expected.tolist()
            assert result.get_response()["id"] == "triton-1"

        with pytest.raises(http.InferenceServerException, match="nope"):
            client.get_model_metadata("nope")
    finally:
        client.close()
