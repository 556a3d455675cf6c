"""Checkpoint readers (GGUF, safetensors), conversion to the internal layout, and the cache."""
