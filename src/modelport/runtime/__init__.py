"""Layer 2: the runtime — Predictor, input coercion, micro-batching, the prediction log."""
