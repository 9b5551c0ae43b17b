"""DL5xx: reusing pretrained NLP models (transformers)."""
