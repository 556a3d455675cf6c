"""`explain basics`: the article's numbers, a softmax that sums to 1, a falling loss; and
`explain layer`: every number it prints is the model's own, read at the hook sites."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from factscope.cli import main
from factscope.config import tiny_config
from factscope.hooks import run_with_cache
from factscope.load import LoadedModel
from factscope.model import Transformer
from factscope.scratch.bpe import train_bpe
from factscope.scratch.walkthrough import (
    ARTICLE_INPUT,
    basics_forward,
    explain_layer,
    layer_lines,
    softmax,
    train_basics,
)


def test_first_hidden_node_is_the_articles_sum() -> None:
    """(32 * 0.10) + (107 * -0.29) + (56 * -0.07) + (11.2 * 0.46) = -26.6; + 0.25 = -26.35."""
    result = basics_forward()
    node = result.hidden[0]
    assert result.inputs == ARTICLE_INPUT
    assert node.weights == (0.10, -0.29, -0.07, 0.46)
    assert sum(node.products) == pytest.approx(-26.598, abs=1e-9)
    assert round(sum(node.products), 1) == -26.6
    assert round(node.value, 2) == -26.35
    assert node.activated == 0.0  # ReLU of a negative number
    assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-12)
    assert result.label == "leaf"  # the article: the first output is larger


def test_softmax_matches_torch() -> None:
    values = (2.6871, -0.7579, 10.0)
    assert softmax(values) == pytest.approx(torch.softmax(torch.tensor(values), 0).tolist())


def test_cli_prints_the_articles_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "basics", "--steps", "50"]) == 0
    text = capsys.readouterr().out
    assert "-26.6" in text and "-26.35" in text
    assert "(32 * 0.10) + (107 * -0.29) + (56 * -0.07) + (11.2 * 0.46)" in text
    probs = [float(ln.rsplit("=", 1)[1]) for ln in text.splitlines() if ln.startswith("  p(")]
    assert len(probs) == 2 and math.isclose(sum(probs), 1.0, abs_tol=2e-6)
    assert "sum of probabilities = 1.000000" in text


def test_gradient_descent_lowers_the_loss() -> None:
    result = train_basics(steps=100)
    assert result.losses[-1] < 0.2 * result.losses[0]
    assert result.accuracies[-1] == 1.0
    s = result.first_step
    assert s["new_weight"] == pytest.approx(s["weight"] - s["learning_rate"] * s["gradient"])


@pytest.fixture(scope="module")
def tiny_lm() -> LoadedModel:
    tokenizer = train_bpe(["the cat sat on the mat", "a dog ran in the park"] * 5, 300)
    torch.manual_seed(0)
    cfg = tiny_config("llama", vocab_size=tokenizer.vocab_size)
    return LoadedModel("tiny", Transformer(cfg).eval(), tokenizer, Path("."))


@pytest.mark.parametrize("gated", [True, False])
def test_explain_layer_reads_the_models_own_numbers(tiny_lm: LoadedModel, gated: bool) -> None:
    lm = tiny_lm
    if not gated:
        cfg = tiny_config("llama", vocab_size=lm.cfg.vocab_size, gated_mlp=False, activation="relu")
        torch.manual_seed(0)
        lm = LoadedModel("plain", Transformer(cfg).eval(), lm.tokenizer, Path("."))
    prompt = "the cat sat on the"
    trip = explain_layer(lm, prompt, layer=1, token=-1, n_values=4)
    tokens = torch.tensor([lm.tokenizer.encode(prompt)])
    _, cache = run_with_cache(lm.model, tokens)
    t = tokens.shape[1] - 1
    by_site = {s.site: s for s in trip.steps if s.site}
    for site in ("blocks.1.resid_pre", "blocks.1.attn.out", "blocks.1.mlp.post"):
        assert by_site[site].values == pytest.approx(cache[site][0, t, :4].tolist(), abs=1e-6)
        assert by_site[site].shape == list(cache[site].shape)
    pattern = by_site["blocks.1.attn.pattern"].values
    assert len(pattern) == t + 1 and sum(pattern) == pytest.approx(1.0, abs=1e-5)
    assert ("blocks.1.mlp.gate" in by_site) == gated
    assert all(diff == 0.0 for diff in trip.checks.values())  # the adds, recomputed exactly
    assert "attention weights" in "\n".join(layer_lines(trip))


def test_explain_layer_refuses_a_layer_outside_the_model(tiny_lm: LoadedModel) -> None:
    from factscope.errors import FactscopeError

    with pytest.raises(FactscopeError, match=r"outside 0\.\.2"):
        explain_layer(tiny_lm, "the cat", layer=3)
    with pytest.raises(FactscopeError, match="--token 9"):
        explain_layer(tiny_lm, "the cat", layer=0, token=9)
