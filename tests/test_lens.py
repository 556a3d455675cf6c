"""Logit lens and direct logit attribution on tiny random models: exact identities."""

from __future__ import annotations

import json

import pytest
import torch

from factscope.errors import FactscopeError
from factscope.hooks import run_with_cache
from factscope.locate.lens import (
    direct_logit_attribution,
    lens_residuals,
    lens_sites,
    logit_lens,
)
from factscope.model import Transformer
from factscope.registry import MODELS
from reference_models import random_model

FAMILIES = ["llama", "gemma3"]
TOKENS = torch.tensor([[1, 5, 6, 7, 8, 9, 10]])


def relative_error(got: float, want: float) -> float:
    return abs(got - want) / abs(want)


@pytest.fixture(scope="module", params=FAMILIES)
def model(request: pytest.FixtureRequest) -> Transformer:
    return random_model(request.param)


def test_last_lens_row_is_the_model_output(model: Transformer) -> None:
    with torch.no_grad():
        logits = model(TOKENS)[0]  # (T, V)
        resid = lens_residuals(model, TOKENS)
        lensed = model.unembed_residual(resid[-1:])[0]
    assert resid.shape == (model.cfg.n_layers + 1, TOKENS.shape[1], model.cfg.d_model)
    torch.testing.assert_close(lensed, logits, rtol=0, atol=1e-6)

    result = logit_lens(model, TOKENS, top_k=5, all_positions=True)
    probs = logits[-1].softmax(-1)
    top = probs.topk(5)
    assert result.top_ids[-1] == top.indices.tolist()
    torch.testing.assert_close(torch.tensor(result.top_probs[-1]), top.values)
    assert result.answer["id"] == int(logits[-1].argmax())  # default answer: the prediction
    assert result.answer_rank[-1] == 0
    assert result.top1_ids is not None and result.top1_ids[-1] == logits.argmax(-1).tolist()


def test_first_lens_row_reads_the_embeddings(model: Transformer) -> None:
    _, cache = run_with_cache(model, TOKENS, ["embed"])
    with torch.no_grad():
        expected = model.unembed_residual(cache["embed"])[0, -1].softmax(-1)
    result = logit_lens(model, TOKENS, answer_id=11, top_k=3)
    assert result.layers[0] == "blocks.0.resid_pre"
    assert result.layers == lens_sites(model)
    assert result.top_ids[0] == expected.topk(3).indices.tolist()
    assert result.answer_prob[0] == pytest.approx(float(expected[11]), rel=1e-5)


def test_answer_rank_matches_a_sort(model: Transformer) -> None:
    answer = 42
    result = logit_lens(model, TOKENS, answer_id=answer, top_k=2)
    resid = lens_residuals(model, TOKENS)
    with torch.no_grad():
        logits = model.unembed_residual(resid[:, -1:])[:, 0]  # (R, V)
    for row in range(logits.shape[0]):
        order = logits[row].argsort(descending=True).tolist()
        assert result.answer_rank[row] == order.index(answer)
    assert json.loads(json.dumps(result.to_dict()))["answer"]["id"] == answer


@pytest.mark.parametrize("answer", [None, 13])
def test_dla_sums_to_the_logit(model: Transformer, answer: int | None) -> None:
    with torch.no_grad():
        logits = model(TOKENS)[0, -1]
    answer_id = int(logits.argmax()) if answer is None else answer
    dla = direct_logit_attribution(model, TOKENS, answer_id)
    # float32 logits of one row vs all rows may differ in the last ulp (other GEMM kernel)
    assert dla.logit == pytest.approx(float(logits[answer_id]), rel=1e-6)
    total = dla.embed + sum(dla.attn) + sum(dla.mlp)
    assert total == pytest.approx(dla.total)
    assert relative_error(total, float(logits[answer_id])) < 1e-5
    assert sum(dla.components().values()) == pytest.approx(total, rel=1e-12)


def test_heads_sum_to_their_layer(model: Transformer) -> None:
    dla = direct_logit_attribution(model, TOKENS, 13)
    assert len(dla.heads) == model.cfg.n_layers
    for layer, heads in enumerate(dla.heads):
        assert len(heads) == model.cfg.n_heads
        assert sum(heads) == pytest.approx(dla.attn[layer], rel=1e-5, abs=1e-6)
        assert max(abs(h) for h in heads) > 1e-4  # heads are not trivially zero


def test_baseline_gives_the_logit_difference(model: Transformer) -> None:
    a, b = 13, 29
    diff = direct_logit_attribution(model, TOKENS, a, baseline_id=b)
    da, db = (direct_logit_attribution(model, TOKENS, t) for t in (a, b))
    assert diff.logit == pytest.approx(da.logit - db.logit, abs=1e-5)
    assert diff.embed == pytest.approx(da.embed - db.embed, abs=1e-9)
    for got, x, y in zip(diff.mlp, da.mlp, db.mlp, strict=True):
        assert got == pytest.approx(x - y, abs=1e-9)
    for got_heads, xs, ys in zip(diff.heads, da.heads, db.heads, strict=True):
        assert got_heads == pytest.approx([x - y for x, y in zip(xs, ys, strict=True)], abs=1e-9)
    assert relative_error(diff.total, diff.logit) < 1e-5
    assert json.loads(json.dumps(diff.to_dict()))["baseline"]["id"] == b


def test_mlp_term_is_its_direct_effect(model: Transformer) -> None:
    """With the final norm's scale frozen, removing the last MLP's output from the final
    residual lowers the logit by exactly its DLA term (that layer writes nothing else)."""
    L = model.cfg.n_layers
    site = f"blocks.{L - 1}.mlp.out"
    _, cache = run_with_cache(model, TOKENS, [f"blocks.{L - 1}.resid_post", site])
    final = cache[f"blocks.{L - 1}.resid_post"][0, -1].double()
    scale = torch.rsqrt(final.pow(2).mean() + model.norm.eps)
    with torch.no_grad():
        readout = scale * model.norm.weight.double() * model.unembed.weight[13].double()
        removed = (final - cache[site][0, -1].double()) @ readout
    dla = direct_logit_attribution(model, TOKENS, 13)
    assert float(final @ readout - removed) == pytest.approx(dla.mlp[-1], rel=1e-6)


def test_bad_inputs_are_refused(model: Transformer) -> None:
    with pytest.raises(FactscopeError, match="outside the vocabulary"):
        direct_logit_attribution(model, TOKENS, model.cfg.vocab_size)
    with pytest.raises(FactscopeError, match=r"\(1, T\)"):
        logit_lens(model, TOKENS[0])
    with pytest.raises(FactscopeError, match="top_k"):
        logit_lens(model, TOKENS, top_k=0)


@pytest.mark.realmodel
def test_gemma_michael_jordan_lens_and_dla() -> None:
    if MODELS["gemma-3-270m"].installed_path() is None:
        pytest.skip("gemma-3-270m is not installed")
    from factscope.load import load_model
    from factscope.locate.lens import attribute_prompt, lens_prompt

    loaded = load_model("gemma-3-270m")
    prompt = "Michael Jordan plays the sport of"
    lens = lens_prompt(loaded, prompt, " basketball")
    assert lens.answer["token"] == " basketball"
    assert lens.answer_rank[-1] == 0
    assert lens.top_tokens[-1][0] == " basketball"
    dla = attribute_prompt(loaded, prompt, " basketball")
    assert relative_error(dla.total, dla.logit) < 1e-5
    for layer, heads in enumerate(dla.heads):
        assert sum(heads) == pytest.approx(dla.attn[layer], rel=1e-4, abs=1e-4)
