"""Small hand-made tokenizer vocabularies in GGUF metadata form, for fast tests."""

from __future__ import annotations

from typing import Any

import numpy as np

WORDS = ["Fact", "▁Michael", "▁Jordan", "▁plays", "▁the", "▁sport", "▁of"]


def gemma_like_metadata() -> dict[str, Any]:
    """A SentencePiece-style vocabulary: specials, 256 byte pieces, letters, word prefixes.

    Every prefix of each word is a token, so the merges recovered from vocabulary order can
    build the whole word; "  " (two real spaces) exercises the respelling to "▁▁".
    """
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    letters = sorted({c for w in WORDS for c in w} | set("abcdefghijklmnopqrstuvwxyz:"))
    prefixes = [w[:n] for w in WORDS for n in range(2, len(w) + 1)]
    normal = [*letters, "  ", *dict.fromkeys(prefixes)]
    tokens = specials + byte_pieces + normal
    types = [3] * len(specials) + [6] * len(byte_pieces) + [1] * len(normal)
    return {
        "general.architecture": "gemma3",
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": np.zeros(len(tokens), dtype=np.float32),
        "tokenizer.ggml.token_type": np.array(types, dtype=np.int32),
        "tokenizer.ggml.bos_token_id": 2,
        "tokenizer.ggml.eos_token_id": 1,
        "tokenizer.ggml.add_bos_token": True,
    }


def byte_level_metadata() -> dict[str, Any]:
    """A GPT-2 byte-level vocabulary: one token per byte, then merges spelling a few words."""
    from factscope.tokenizer import _CHAR_OF_BYTE

    alphabet = [_CHAR_OF_BYTE[b] for b in range(256)]
    merges: list[str] = []
    words: list[str] = []
    for word in WORDS:
        spelled = word.replace("▁", "Ġ")
        for n in range(2, len(spelled) + 1):
            merges.append(f"{spelled[: n - 1]} {spelled[n - 1]}")
            words.append(spelled[:n])
    tokens = ["<|endoftext|>", *alphabet, *dict.fromkeys(words)]
    return {
        "general.architecture": "llama",
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": np.array([3] + [1] * (len(tokens) - 1), dtype=np.int32),
        "tokenizer.ggml.merges": list(dict.fromkeys(merges)),
        "tokenizer.ggml.bos_token_id": 0,
        "tokenizer.ggml.eos_token_id": 0,
        "tokenizer.ggml.add_bos_token": False,
    }
