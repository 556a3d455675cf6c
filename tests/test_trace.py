"""Causal tracing: the fast tracer against ROME's plain loop, invariants, attribution patching."""

from __future__ import annotations

import json

import pytest
import torch

from factscope.config import tiny_config
from factscope.errors import FactscopeError
from factscope.hooks import hooks
from factscope.locate.attribution import approx_trace
from factscope.locate.corruption import (
    KINDS,
    TraceResult,
    clean_run,
    corrupt_embed_hook,
    estimate_noise_std,
    restored_sites,
    subject_noise,
    window_layers,
)
from factscope.locate.trace import trace_fact, trace_fact_reference
from factscope.model import Transformer
from factscope.registry import MODELS

FAMILIES = ["llama", "gemma3"]
SPAN = (2, 5)  # subject tokens 2, 3, 4 of a 9-token prompt


def tiny_model(family: str, seed: int = 0) -> Transformer:
    """A 4-layer random model whose next-token probabilities are neither 0 nor 1 (small
    embeddings), so restoring a state moves p(answer) by a visible amount. The gemma3 model
    has local layers 0, 1 with a sliding window of 4 tokens, shorter than the prompt."""
    torch.manual_seed(seed)
    model = Transformer(tiny_config(family, n_layers=4)).eval()
    with torch.no_grad():
        model.embedding.weight.mul_(0.2 / model.cfg.embed_scale**0.5)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
    return model


def prompt_and_answer(model: Transformer) -> tuple[torch.Tensor, int]:
    tokens = torch.randint(0, 97, (1, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        answer = int(model(tokens)[0, -1].argmax())
    return tokens, answer


def scores(result: TraceResult) -> torch.Tensor:
    return torch.tensor(result.scores, dtype=torch.float64)


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_trace_equals_rome_loop(family: str) -> None:
    """Every cell of every kind, with clipped windows at both ends (window 3 of 4 layers),
    and batches that split a token's cells (batch_size 7 rows = 2 cells of 3 samples)."""
    model = tiny_model(family)
    tokens, answer = prompt_and_answer(model)
    kwargs = dict(samples=3, window=3, noise_std=0.5, seed=1)
    fast = trace_fact(model, tokens, SPAN, answer, batch_size=7, **kwargs)  # type: ignore[arg-type]
    ref = trace_fact_reference(model, tokens, SPAN, answer, **kwargs)  # type: ignore[arg-type]
    for kind in KINDS:
        assert fast[kind].clean_p == pytest.approx(ref[kind].clean_p, abs=1e-7)
        assert fast[kind].corrupted_p == pytest.approx(ref[kind].corrupted_p, abs=1e-7)
        torch.testing.assert_close(scores(fast[kind]), scores(ref[kind]), atol=1e-6, rtol=0)
        # the trace is not trivially flat: restoring cells moves p by more than the tolerance
        assert float(scores(ref[kind]).std()) > 1e-3


@pytest.mark.parametrize("window", [1, 2, 10])
def test_fast_trace_equals_rome_loop_for_other_windows(window: int) -> None:
    model = tiny_model("gemma3", seed=1)
    tokens, answer = prompt_and_answer(model)
    kwargs = dict(kinds=("mlp", "attn"), samples=2, window=window, noise_std=0.5)
    fast = trace_fact(model, tokens, SPAN, answer, **kwargs)  # type: ignore[arg-type]
    ref = trace_fact_reference(model, tokens, SPAN, answer, **kwargs)  # type: ignore[arg-type]
    for kind in ("mlp", "attn"):
        torch.testing.assert_close(scores(fast[kind]), scores(ref[kind]), atol=1e-6, rtol=0)


def test_window_follows_rome_and_clips_at_the_edges() -> None:
    assert window_layers(7, 10, 18) == range(2, 12)
    assert window_layers(0, 10, 18) == range(0, 5)
    assert window_layers(17, 10, 18) == range(12, 18)
    assert window_layers(1, 3, 4) == range(0, 3)
    assert window_layers(3, 3, 4) == range(2, 4)
    assert window_layers(2, 1, 4) == range(2, 3)
    assert restored_sites("hidden", 2, 10, 4) == ["blocks.2.resid_post"]
    assert restored_sites("attn", 0, 3, 4) == ["blocks.0.attn.out", "blocks.1.attn.out"]


@pytest.mark.parametrize("family", FAMILIES)
def test_trace_invariants(family: str) -> None:
    model = tiny_model(family)
    tokens, answer = prompt_and_answer(model)
    result = trace_fact(model, tokens, SPAN, answer, samples=4, window=2, noise_std=0.5)
    hidden = scores(result["hidden"])
    # restoring the final residual at the last token gives back the clean run
    assert hidden[-1, -1] == pytest.approx(result["hidden"].clean_p, abs=1e-6)
    # tokens before the subject are not corrupted: restoring them restores nothing
    for kind in KINDS:
        before = scores(result[kind])[: SPAN[0]]
        assert torch.all(before == result[kind].corrupted_p)
    # the final residual of a token before the last one does not reach the prediction
    torch.testing.assert_close(
        hidden[:-1, -1], torch.full((8,), result["hidden"].corrupted_p, dtype=torch.float64)
    )
    assert result["hidden"].corrupted_p != pytest.approx(result["hidden"].clean_p, abs=1e-3)


def test_no_noise_means_every_cell_scores_the_clean_p() -> None:
    """With zero noise the corrupted run is the clean run; the cached keys/values and
    residuals the fast tracer reuses must then reproduce the clean p in every cell."""
    model = tiny_model("gemma3")
    tokens, answer = prompt_and_answer(model)
    result = trace_fact(model, tokens, SPAN, answer, samples=2, window=3, noise_std=0.0)
    for kind in KINDS:
        expected = torch.full((9, 4), result[kind].clean_p, dtype=torch.float64)
        torch.testing.assert_close(scores(result[kind]), expected, atol=1e-6, rtol=0)


def test_restoring_every_state_gives_the_clean_p() -> None:
    """The restoration machinery the reference uses: every block output at every token."""
    model = tiny_model("llama")
    tokens, answer = prompt_and_answer(model)
    noise = subject_noise(3, 3, model.cfg.d_model, 0.5, seed=0)
    clean = clean_run(model, tokens, answer)

    def restore_all(layer: int):  # type: ignore[no-untyped-def]
        return lambda x, site: clean.resid_post[layer].expand_as(x)

    fns = {"embed": corrupt_embed_hook(noise, SPAN)}
    fns.update({f"blocks.{j}.resid_post": restore_all(j) for j in range(4)})  # type: ignore[misc]
    with torch.no_grad(), hooks(model, fns):
        p = torch.softmax(model(tokens.expand(3, -1))[:, -1], -1)[:, answer]
    torch.testing.assert_close(p, torch.full((3,), clean.p), atol=1e-6, rtol=0)


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    model = tiny_model("llama")
    tokens, answer = prompt_and_answer(model)
    kwargs = dict(kinds=("hidden",), samples=2, noise_std=0.5)
    a = trace_fact(model, tokens, SPAN, answer, seed=5, **kwargs)["hidden"]  # type: ignore[arg-type]
    b = trace_fact(model, tokens, SPAN, answer, seed=5, **kwargs)["hidden"]  # type: ignore[arg-type]
    c = trace_fact(model, tokens, SPAN, answer, seed=6, **kwargs)["hidden"]  # type: ignore[arg-type]
    assert a.scores == b.scores and a.corrupted_p == b.corrupted_p
    assert a.scores != c.scores and a.corrupted_p != c.corrupted_p
    torch.testing.assert_close(subject_noise(2, 3, 8, 1.0, 5), subject_noise(2, 3, 8, 1.0, 5))


def test_noise_std_is_measured_where_the_noise_is_added() -> None:
    """Gemma scales embeddings by sqrt(d_model): the std is of the scaled embeddings."""
    model = tiny_model("gemma3")
    ids = [3, 5, 7, 11, 13]
    scaled = model.embedding.weight[ids].detach() * model.cfg.embed_scale
    assert estimate_noise_std(model, ids) == pytest.approx(3 * float(scaled.std()), rel=1e-6)
    assert estimate_noise_std(model, ids, factor=1.0) == pytest.approx(
        float(scaled.std()), rel=1e-6
    )
    assert estimate_noise_std(model) == estimate_noise_std(model)  # seeded vocabulary sample
    with pytest.raises(FactscopeError):
        estimate_noise_std(model, [])


def test_result_is_json_with_derived_fields() -> None:
    model = tiny_model("llama")
    tokens, answer = prompt_and_answer(model)
    result = trace_fact(model, tokens, SPAN, answer, kinds=("mlp",), samples=2, noise_std=0.5)
    data = json.loads(json.dumps(result["mlp"].to_dict()))
    assert data["kind"] == "mlp" and data["method"] == "exact"
    assert data["subject_span"] == [2, 5] and len(data["tokens"]) == 9
    assert len(data["scores"]) == 9 and len(data["scores"][0]) == 4
    ie = torch.tensor(data["indirect_effect"])
    torch.testing.assert_close(ie, torch.tensor(data["scores"]) - data["corrupted_p"])
    assert data["ie_last_subject_token"] == data["indirect_effect"][4]
    assert data["aie_last_token"] == pytest.approx(sum(data["indirect_effect"][8]) / 4)
    peak = data["peak"]
    assert peak["effect"] == pytest.approx(float(ie.max()))
    assert data["answer"]["id"] == answer and data["answer"]["note"] is None


def test_bad_inputs_are_one_line_errors() -> None:
    model = tiny_model("llama")
    tokens, answer = prompt_and_answer(model)
    with pytest.raises(FactscopeError, match="subject span"):
        trace_fact(model, tokens, (5, 5), answer, noise_std=1.0)
    with pytest.raises(FactscopeError, match="subject span"):
        trace_fact(model, tokens, (3, 12), answer, noise_std=1.0)
    with pytest.raises(FactscopeError, match="kind"):
        trace_fact(model, tokens, SPAN, answer, kinds=("neurons",), noise_std=1.0)
    with pytest.raises(FactscopeError, match="one prompt"):
        trace_fact(model, tokens.expand(2, -1), SPAN, answer, noise_std=1.0)


# ---- attribution patching --------------------------------------------------------------------


def interpolated_p(
    model: Transformer,
    tokens: torch.Tensor,
    answer: int,
    noise: torch.Tensor,
    sites: list[str],
    t: int,
    eps: float,
) -> float:
    """p(answer) with the states at `sites`, token t, moved eps of the way to the clean run."""
    clean_states: dict[str, torch.Tensor] = {}
    with (
        torch.no_grad(),
        hooks(model, {s: lambda x, s: clean_states.__setitem__(s, x) for s in sites}),
    ):
        model(tokens)

    def interpolate(x: torch.Tensor, site: str) -> torch.Tensor:
        x = x.clone()
        x[:, t] += eps * (clean_states[site][:, t] - x[:, t])
        return x

    fns = {"embed": corrupt_embed_hook(noise, SPAN), **dict.fromkeys(sites, interpolate)}
    with torch.no_grad(), hooks(model, fns):
        logits = model(tokens.expand(noise.shape[0], -1))
    return float(torch.softmax(logits[:, -1], -1)[:, answer].mean())


@pytest.mark.parametrize("family", FAMILIES)
def test_attribution_is_the_derivative_of_restoring(family: str) -> None:
    """score - corrupted p must be d p / d eps of moving the cell eps of the way to clean
    (central finite difference), for a hidden cell and for windowed cells. The model's norms
    compute in float32 whatever the weights, so eps cannot be tiny: with 3e-3 the finite
    difference is good to ~3e-6 absolute."""
    model = tiny_model(family).double()
    tokens, answer = prompt_and_answer(model)
    samples, window, std = 3, 3, 0.5
    approx = approx_trace(
        model, tokens, SPAN, answer, samples=samples, window=window, noise_std=std
    )
    noise = subject_noise(samples, 3, model.cfg.d_model, std, seed=0)
    eps = 3e-3
    largest = 0.0
    for kind in KINDS:
        for t in (3, 4, 8):
            for layer in range(4):
                sites = restored_sites(kind, layer, window, 4)
                up = interpolated_p(model, tokens, answer, noise, sites, t, eps)
                down = interpolated_p(model, tokens, answer, noise, sites, t, -eps)
                derivative = (up - down) / (2 * eps)
                estimate = approx[kind].scores[t][layer] - approx[kind].corrupted_p
                assert estimate == pytest.approx(derivative, rel=1e-3, abs=1e-5), (kind, t, layer)
                largest = max(largest, abs(derivative))
    assert largest > 1e-3  # some cells matter far beyond the tolerance, so the check can fail


def test_attribution_restoring_nothing_is_the_corrupted_p() -> None:
    model = tiny_model("gemma3")
    tokens, answer = prompt_and_answer(model)
    kwargs = dict(samples=3, window=2, noise_std=0.5, seed=2)
    approx = approx_trace(model, tokens, SPAN, answer, **kwargs)  # type: ignore[arg-type]
    exact = trace_fact(model, tokens, SPAN, answer, kinds=("hidden",), **kwargs)  # type: ignore[arg-type]
    for kind in KINDS:
        r = approx[kind]
        assert r.method == "approx"
        assert r.corrupted_p == pytest.approx(exact["hidden"].corrupted_p, abs=1e-7)
        assert r.clean_p == pytest.approx(exact["hidden"].clean_p, abs=1e-7)
        torch.testing.assert_close(
            scores(r)[: SPAN[0]], torch.full((2, 4), r.corrupted_p, dtype=torch.float64)
        )


# ---- the real model ---------------------------------------------------------------------------


@pytest.mark.realmodel
def test_gemma_michael_jordan_trace() -> None:
    if MODELS["gemma-3-270m"].installed_path() is None:
        pytest.skip("gemma-3-270m is not installed")
    from factscope.load import load_model
    from factscope.locate.trace import trace_prompt

    loaded = load_model("gemma-3-270m")
    prompt, subject = "Michael Jordan plays the sport of", "Michael Jordan"
    exact = trace_prompt(loaded, prompt, subject, " basketball", kinds=("hidden",), samples=3)
    hidden = exact["hidden"]
    assert hidden.tokens == ["<bos>", "Michael", " Jordan", " plays", " the", " sport", " of"]
    assert hidden.subject_span == (1, 3) and hidden.answer.token == " basketball"
    assert hidden.clean_p > 0.5 and hidden.corrupted_p < hidden.clean_p / 3
    assert hidden.scores[-1][-1] == pytest.approx(hidden.clean_p, abs=1e-5)
    # restoring the last subject token's early block outputs brings most of p back
    assert max(hidden.ie_last_subject_token[1:8]) > 0.5 * (hidden.clean_p - hidden.corrupted_p)
    approx = trace_prompt(loaded, prompt, subject, " basketball", method="approx", samples=3)
    assert approx["mlp"].corrupted_p == pytest.approx(hidden.corrupted_p, abs=1e-5)
