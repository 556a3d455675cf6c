"""Loading checkpoints from disk: GGUF and Hugging Face folders, the cache, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from factscope.errors import FactscopeError, GGUFError, UnsupportedModelError
from factscope.load import load_model
from reference_models import relative_error
from tiny_checkpoints import (
    logits_of,
    tiny_hf_for_gguf,
    write_tiny_gguf,
    write_tiny_hf_folder,
)

FAMILIES = ["llama", "gemma3"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FACTSCOPE_CACHE", str(cache))
    return cache


@pytest.mark.parametrize("family", FAMILIES)
def test_gguf_file_matches_transformers(family: str, tmp_path: Path) -> None:
    """A GGUF written as llama.cpp writes it (permuted Q/K, 1 + w norms) loads back to the
    transformers model it came from; quantization is off so the weights are exact."""
    hf = tiny_hf_for_gguf(family, seed=1)
    path = tmp_path / f"tiny-{family}.gguf"
    write_tiny_gguf(path, hf, quantize=False)
    lm = load_model(path)
    tokens = torch.randint(
        0, hf.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        got = lm.model(tokens)
    assert relative_error(got, logits_of(hf, tokens)) < 1e-5
    assert lm.cfg.family == family


@pytest.mark.parametrize("family", FAMILIES)
def test_quantized_gguf_is_close_to_transformers(family: str, tmp_path: Path) -> None:
    hf = tiny_hf_for_gguf(family, seed=2)
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, hf, quantize=True)
    lm = load_model(path)
    tokens = torch.randint(
        0, hf.config.vocab_size, (1, 8), generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        got = lm.model(tokens)
    assert relative_error(got, logits_of(hf, tokens)) < 0.05  # Q8_0/F16 rounding only


def test_edits_right_after_a_cold_load_never_reach_the_cache(
    tmp_path: Path, private_cache: Path
) -> None:
    """The cache is written in the background from a copy: editing the loaded weights in
    place while it is written leaves the cache equal to the file."""
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("llama", seed=4))
    fresh = load_model(path, use_cache=False)
    first = load_model(path)
    with torch.no_grad():
        for p in first.model.parameters():
            p.mul_(-2.0)
    second = load_model(path)
    assert "cache_read" in second.timings
    for name, tensor in fresh.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name


def test_cached_load_equals_fresh_load(tmp_path: Path, private_cache: Path) -> None:
    hf = tiny_hf_for_gguf("gemma3", seed=3)
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, hf)
    fresh = load_model(path, use_cache=False)
    first = load_model(path)
    assert "cache_write" in first.timings
    second = load_model(path)
    assert "cache_read" in second.timings and "parse" not in second.timings
    fresh_state, cached_state = fresh.model.state_dict(), second.model.state_dict()
    assert fresh_state.keys() == cached_state.keys()
    for name, tensor in fresh_state.items():
        assert torch.equal(tensor, cached_state[name]), name
    assert fresh.cfg == second.cfg
    text = "Michael Jordan plays the sport of"
    assert fresh.tokenizer.encode(text) == second.tokenizer.encode(text)
    assert path.read_bytes() == path.read_bytes()  # source untouched (still readable)


def test_cache_is_keyed_by_content(tmp_path: Path) -> None:
    """Two different files at the same path never share a cache entry."""
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("llama", seed=4))
    a = load_model(path)
    write_tiny_gguf(path, tiny_hf_for_gguf("llama", seed=5))
    b = load_model(path)
    assert not torch.equal(a.model.embedding.weight, b.model.embedding.weight)


def test_model_file_is_never_modified(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("llama", seed=6))
    before = path.read_bytes(), path.stat().st_mtime_ns
    lm = load_model(path)
    with torch.no_grad():
        lm.model.embedding.weight.mul_(2)  # editing the loaded model touches memory only
    load_model(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


@pytest.mark.parametrize("family", FAMILIES)
def test_hf_folder_matches_transformers(family: str, tmp_path: Path) -> None:
    hf = tiny_hf_for_gguf(family, seed=7)
    write_tiny_hf_folder(tmp_path / "model", hf)
    lm = load_model(tmp_path / "model")
    tokens = torch.randint(
        0, hf.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(2)
    )
    with torch.no_grad():
        assert relative_error(lm.model(tokens), logits_of(hf, tokens)) < 1e-5
    assert lm.tokenizer.encode("w3 w5", add_bos=False) == [3, 5]


def test_truncated_gguf_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("llama"))
    data = path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) - 1000])
    with pytest.raises(GGUFError):
        load_model(cut)


def test_not_a_gguf_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"PK\x03\x04 this is a zip file" * 10)
    with pytest.raises(GGUFError, match="magic"):
        load_model(path)


def test_unsupported_architecture(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "bert.gguf"
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", torch.zeros(4, 4).numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedModelError, match="bert"):
        load_model(path)


def test_missing_file_and_unknown_name() -> None:
    with pytest.raises(FactscopeError, match="no such file"):
        load_model("./does/not/exist.gguf")
    with pytest.raises(FactscopeError, match="unknown model"):
        load_model("gpt-17")


def test_empty_and_too_long_prompts(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("gemma3"))
    lm = load_model(path)
    with pytest.raises(FactscopeError, match="empty"):
        lm.encode("")
    with pytest.raises(FactscopeError, match="context"):
        lm.encode("Jordan " * (lm.cfg.context_length + 5))
