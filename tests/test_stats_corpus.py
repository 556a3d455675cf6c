"""The statistics corpus a model writes for itself, and the one that ships with the package:
a packaged corpus is used without generating a token, a longer request continues it, and
the packaged gemma-3-270m corpus is what that model writes with its seed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

import factscope.edit.corpus as corpus_mod
from factscope.edit.corpus import (
    SEEDS,
    packaged_corpus_path,
    sample_continuations,
    self_corpus,
    write_corpus,
)
from factscope.edit.fingerprint import model_fingerprint
from factscope.generate import Sampling
from factscope.registry import MODELS
from test_rome import tiny_lm


def test_a_packaged_corpus_is_used_without_writing_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lm = tiny_lm("gemma3", seed=0)
    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))
    docs = [{"seed": s, "text": s + " plays the sport of Fact Michael" * 20} for s in SEEDS[:32]]
    packaged = tmp_path / "pkg" / "self.jsonl.gz"
    packaged.parent.mkdir()
    write_corpus(docs, packaged)
    monkeypatch.setattr(corpus_mod, "packaged_corpus_path", lambda key, seed=0: packaged)
    calls: list[int] = []

    def counting(*args: object, **kwargs: object) -> list[list[int]]:
        calls.append(1)
        return sample_continuations(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(corpus_mod, "sample_continuations", counting)
    have = sum(len(lm.tokenizer.encode(d["text"], add_bos=False)) for d in docs)
    got = self_corpus(lm, have - 10, progress=False)
    assert calls == [] and list(got.documents) == [d["text"] for d in docs]
    # asking for more continues after the packaged documents (one more chunk of 16)
    more = self_corpus(lm, have + 10, progress=False)
    assert len(calls) == 1 and list(more.documents[: len(docs)]) == [d["text"] for d in docs]
    assert len(more.documents) == len(docs) + 16
    assert packaged.read_bytes() == gzip.compress(
        "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode(), mtime=0
    )  # the packaged file is never written


def test_the_packaged_gemma_corpus_is_what_the_model_writes_with_its_seed() -> None:
    """Regenerating: the first 8 tokens of the first chunk's 16 documents, sampled again with
    the corpus's seed, equal the packaged documents' (scripts/write_stats_corpus.py)."""
    from factscope.load import load_model

    if MODELS["gemma-3-270m"].installed_path() is None:
        pytest.skip("gemma-3-270m is not installed")
    lm = load_model("gemma-3-270m")
    path = packaged_corpus_path(model_fingerprint(lm.model, lm.cfg.n_layers - 1))
    assert path.is_file(), f"no packaged corpus for gemma-3-270m at {path}"
    docs = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert sum(len(lm.tokenizer.encode(d["text"], add_bos=False)) for d in docs) >= 102_048
    prompts = list(SEEDS[:16])
    generator = torch.Generator().manual_seed(0)  # chunk 0 of seed 0: seed·1_000_003 + 0
    again = sample_continuations(lm, prompts, 8, Sampling(temperature=1.0, top_p=0.95),
                                 generator, 16)  # fmt: skip
    for prompt, ids, doc in zip(prompts, again, docs[:16], strict=True):
        assert doc["seed"] == prompt
        head = (prompt + lm.tokenizer.decode(ids)).rstrip("\ufffd")  # a cut multi-byte char
        assert doc["text"].startswith(head), (doc["text"][:80], head)


def test_a_config_field_at_its_default_leaves_the_fingerprint_as_it_was() -> None:
    """Fields added to ModelConfig after the base set count only where they are set, so the
    shipped corpus's name (the fingerprint) survives new fields; a set one moves it."""
    import dataclasses

    from factscope.edit.fingerprint import BASE_FIELDS, config_digest_fields
    from reference_models import random_model

    model = random_model("llama")
    digest = config_digest_fields(model.cfg)
    assert set(digest) == BASE_FIELDS  # every later field of a Llama is at its default
    before = model_fingerprint(model, 0)
    model.cfg = dataclasses.replace(model.cfg, qkv_bias=True)
    assert "qkv_bias" in config_digest_fields(model.cfg)
    assert model_fingerprint(model, 0) != before
