"""Test set-up: import helpers from this folder and keep the model cache per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reference_models import tiny_hf_model
from tiny_checkpoints import write_tiny_gguf
from tokenizer_vocabs import gemma_like_metadata


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-layer Gemma 3 GGUF file with a Gemma-like vocabulary, written once per module
    (test_cli.py defines its own `tiny_gguf`, which takes precedence there)."""
    path = tmp_path_factory.mktemp("gemma") / "tiny.gguf"
    vocab = len(gemma_like_metadata()["tokenizer.ggml.tokens"])
    hf = tiny_hf_model("gemma3", 3, vocab_size=vocab, layer_types=["sliding_attention"] * 3,
                       sliding_window=64, query_pre_attn_scalar=256)  # fmt: skip
    write_tiny_gguf(path, hf, quantize=False)
    return path
