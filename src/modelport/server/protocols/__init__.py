"""The wire protocols the server speaks: Open Inference Protocol V2, the V1 ``:predict`` shape, MLflow."""
