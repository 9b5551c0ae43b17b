"""DL2xx: quantization and pruning misuse."""
