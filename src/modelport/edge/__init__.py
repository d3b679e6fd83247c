"""Layer 3: edge export — ONNX conversion, quantization, parity checks, a standalone runtime."""
