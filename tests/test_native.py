"""factscope's own model folder: save, reload with equal logits, never overwrite silently."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from factscope.errors import FactscopeError
from factscope.load import load_config, load_model, save_model
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_saved_model_reloads_with_equal_logits(tmp_path: Path, family: str) -> None:
    gguf = tmp_path / "tiny.gguf"
    write_tiny_gguf(gguf, tiny_hf_for_gguf(family, seed=5))
    lm = load_model(gguf)
    with torch.no_grad():  # an edit, so the saved weights differ from the file's
        lm.model.blocks[1].mlp.down_proj.weight[0, 0] += 1.0
    folder = save_model(lm, tmp_path / "edited", provenance={"edit": "test"})
    again = load_model(folder)
    tokens = lm.encode("Fact Michael Jordan plays")
    with torch.no_grad():
        assert torch.equal(lm.model(tokens), again.model(tokens))
    assert again.tokenizer.encode("Michael Jordan") == lm.tokenizer.encode("Michael Jordan")
    assert load_config(folder)[1] == lm.cfg
    before = gguf.read_bytes()
    with pytest.raises(FactscopeError, match="already exists"):
        save_model(lm, folder)
    save_model(lm, folder, force=True)
    assert gguf.read_bytes() == before  # the model file is never modified


def test_refuses_to_replace_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    write_tiny_gguf(gguf, tiny_hf_for_gguf("llama", seed=1))
    lm = load_model(gguf)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FactscopeError, match="not a factscope model"):
        save_model(lm, other, force=True)
    assert (other / "keep.txt").read_text() == "mine"
