"""DL3xx: ONNX / TorchScript / TFLite export pitfalls."""
