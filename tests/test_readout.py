"""Attention knockout and answer heads on tiny seeded models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from factscope.errors import FactscopeError
from factscope.hooks import hooks, run_with_cache
from factscope.load import LoadedModel, load_model
from factscope.locate.lens import direct_logit_attribution
from factscope.model import Transformer
from factscope.read.readout import answer_heads, knock_out, knockout_probs, source_positions
from factscope.read.suffix import ForwardCount
from test_neurons import build, close
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf

TOKENS = torch.tensor([[1, 5, 6, 7, 8, 9, 10]])
ANSWER = 11
T = TOKENS.shape[1]


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def model(request: pytest.FixtureRequest) -> Transformer:
    return build(request.param)


def full_run_p(model: Transformer, layers: list[int], keys: list[int]) -> float:
    """The reference: one full forward, the final query row's scores at `keys` set to -inf."""

    def block(x: torch.Tensor, site: str) -> torch.Tensor:
        x = x.clone()
        x[:, :, -1, keys] = float("-inf")
        return x

    fns = {f"blocks.{layer}.attn.scores": block for layer in layers}
    with torch.no_grad(), hooks(model, fns):
        return float(model(TOKENS)[0, -1].softmax(-1)[ANSWER])


def test_a_knockout_that_blocks_no_edge_changes_nothing(model: Transformer) -> None:
    clean = full_run_p(model, [], [])
    got = knockout_probs(model, TOKENS, ANSWER, [((), ()), ([0, 1, 2], []), ([], [1, 2])])
    assert got[0] == got[1] == got[2]  # bit-identical: no hook, or hooks that block nothing
    assert close(float(got[0]), clean)


def test_knockout_rows_equal_full_forward_references(model: Transformer) -> None:
    rows = [([0], [2, 3]), ([1, 2], [1]), ([0, 1, 2], [1, 2, 3, 4]), ([2], [T - 1])]
    count = ForwardCount()
    got = knockout_probs(model, TOKENS, ANSWER, rows, batch_size=3, count=count)
    assert count.calls == 1 + 2 and count.rows == 1 + 4  # prefix once, then 2 batches of 1 token
    for r, (layers, keys) in enumerate(rows):
        want = full_run_p(model, layers, keys)
        assert close(float(got[r]), want), rows[r]
    assert float(got[2]) != pytest.approx(float(got[0]), rel=1e-3)  # blocking changes p


def test_knockout_errors(model: Transformer) -> None:
    with pytest.raises(FactscopeError, match="every token"):
        knockout_probs(model, TOKENS, ANSWER, [([0], list(range(T)))])
    with pytest.raises(FactscopeError, match="layer does not exist"):
        knockout_probs(model, TOKENS, ANSWER, [([3], [1])])
    with pytest.raises(FactscopeError, match="outside the prompt"):
        knockout_probs(model, TOKENS, ANSWER, [([0], [T])])


def test_sources_split_the_prompt() -> None:
    sources = source_positions(TOKENS, (2, 4), has_bos=True)
    assert sources == {"subject": [2, 3], "non-subject": [1, 4, 5], "last": [T - 1]}


def test_answer_heads_match_dla_and_patterns(model: Transformer) -> None:
    heads = answer_heads(model, TOKENS, ANSWER, (2, 4), n_heads=3, n_tokens=4)
    dla = torch.tensor(direct_logit_attribution(model, TOKENS, ANSWER).heads)
    assert [h.dla for h in heads] == pytest.approx(
        dla.flatten().sort(descending=True).values[:3].tolist()
    )
    sites = [f"blocks.{h.layer}.attn.pattern" for h in heads]
    _, cache = run_with_cache(model, TOKENS, sites)
    for h in heads:
        want = float(cache[f"blocks.{h.layer}.attn.pattern"][0, h.head, -1, 2:4].sum())
        assert abs(h.attn_to_subject - want) < 1e-6
        assert len(h.writes) == len(h.ov_subject) == 4
        assert [v for _, v in h.writes] == sorted((v for _, v in h.writes), reverse=True)
    with pytest.raises(FactscopeError, match="--heads 0 is out of range"):
        answer_heads(model, TOKENS, ANSWER, (2, 4), n_heads=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = Path(tmp_path_factory.mktemp("tiny")) / "tiny.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("gemma3", seed=3))
    return load_model(path)


def test_knock_out_end_to_end(tiny: LoadedModel) -> None:
    prompt = "Fact Michael Jordan plays the sport of"
    result = knock_out(tiny, prompt, "Michael Jordan", " sport", window=2, n_heads=2)
    L = tiny.cfg.n_layers
    assert result.sources["subject"] == [2, 3]
    assert result.windows[0] == [0, 0] and result.windows[1] == [0, 1]  # window_layers(l, 2)
    assert all(len(p) == L for p in result.probs.values())
    assert result.relative_change["subject"][0] == pytest.approx(
        (result.probs["subject"][0] - result.clean_p) / result.clean_p
    )
    json.dumps(result.to_dict())
    assert "<svg" in result._repr_html_()
    with pytest.raises(FactscopeError, match="--window 0 is out of range"):
        knock_out(tiny, prompt, "Michael Jordan", window=0)
    with pytest.raises(FactscopeError, match="does not occur"):
        knock_out(tiny, prompt, "Tom Brady")
