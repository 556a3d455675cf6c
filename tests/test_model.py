"""Our forward pass against transformers' on tiny random models, and model invariants."""

from __future__ import annotations

import pytest
import torch

from factscope.errors import FactscopeError
from factscope.generate import Sampling, generate_tokens
from factscope.hooks import check_sites, hooks, run_with_cache, site_names
from factscope.model import KVCache
from reference_models import ours_from_hf, random_model, relative_error, tiny_hf_model

FAMILIES = ["llama", "gemma3"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seq_len", [1, 7, 20])
def test_logits_match_transformers(family: str, seq_len: int) -> None:
    hf = tiny_hf_model(family, seed=seq_len)
    ours = ours_from_hf(hf)
    tokens = torch.randint(0, 97, (2, seq_len), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(tokens).logits
        got = ours(tokens)
    assert relative_error(got, ref) < 1e-5
    assert torch.equal(got.argmax(-1), ref.argmax(-1))


def test_gemma_sliding_window_matters() -> None:
    """With sequences longer than the window, local layers must see fewer tokens."""
    hf = tiny_hf_model("gemma3", seed=3)
    ours = ours_from_hf(hf)
    assert ours.cfg.local_layers == (0, 1)
    tokens = torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        windowed = ours(tokens)
        for block in ours.blocks:
            block.attn.window = None
        unwindowed = ours(tokens)
    assert not torch.allclose(windowed[:, 5:], unwindowed[:, 5:])
    assert torch.allclose(windowed[:, :4], unwindowed[:, :4], atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_empty_hooks_are_bit_identical(family: str) -> None:
    model = random_model(family)
    tokens = torch.randint(0, 97, (2, 9))
    with torch.no_grad():
        plain = model(tokens)
        with hooks(model, {site: (lambda x, s: None) for site in site_names(model)}):
            hooked = model(tokens)
        after = model(tokens)
    assert torch.equal(plain, hooked)
    assert torch.equal(plain, after)
    assert all(not p.fns for p in model.hook_points.values())


def test_hooks_removed_on_error() -> None:
    model = random_model("llama")

    def boom(x: torch.Tensor, site: str) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError), hooks(model, {"blocks.1.mlp.post": boom}):
        model(torch.zeros(1, 3, dtype=torch.long))
    assert not model.hook_points["blocks.1.mlp.post"].fns


def test_unknown_site_is_an_error() -> None:
    model = random_model("llama")
    with pytest.raises(FactscopeError, match=r"blocks\.1\.mlp\.post"):
        check_sites(model, ["blocks.1.mlp.pots"])
    with pytest.raises(FactscopeError), hooks(model, {"nonsense": lambda x, s: None}):
        pass


@pytest.mark.parametrize("family", FAMILIES)
def test_cache_is_consistent(family: str) -> None:
    """Cached activations obey the residual-stream identities of the architecture."""
    model = random_model(family)
    tokens = torch.randint(0, 97, (1, 6))
    logits, cache = run_with_cache(model, tokens)
    assert set(cache) == set(site_names(model))
    for i in range(model.cfg.n_layers):
        b = f"blocks.{i}"
        torch.testing.assert_close(
            cache[f"{b}.resid_mid"], cache[f"{b}.resid_pre"] + cache[f"{b}.attn.out"]
        )
        torch.testing.assert_close(
            cache[f"{b}.resid_post"], cache[f"{b}.resid_mid"] + cache[f"{b}.mlp.out"]
        )
        pattern = cache[f"{b}.attn.pattern"]
        torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]))
        assert torch.all(pattern.triu(1) == 0)
    assert torch.equal(cache["logits"], logits)


def test_replace_hook_changes_output_downstream_only() -> None:
    model = random_model("llama")
    tokens = torch.randint(0, 97, (1, 6))
    _, clean = run_with_cache(model, tokens)
    zero = {"blocks.1.mlp.post": lambda x, s: torch.zeros_like(x)}
    with hooks(model, zero):
        _, ablated = run_with_cache(model, tokens)
    assert torch.equal(clean["blocks.1.resid_mid"], ablated["blocks.1.resid_mid"])
    assert torch.all(ablated["blocks.1.mlp.out"] == 0)
    assert not torch.allclose(clean["blocks.2.resid_post"], ablated["blocks.2.resid_post"])


@pytest.mark.parametrize("family", FAMILIES)
def test_kv_cache_matches_full_forward(family: str) -> None:
    model = random_model(family)
    tokens = torch.randint(0, 97, (2, 11))
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache.empty(model.cfg.n_layers)
        steps = [model(tokens[:, :5], kv_cache=cache)]
        steps += [model(tokens[:, t : t + 1], kv_cache=cache) for t in range(5, 11)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.8, top_k=5, seed=3)])
def test_cached_generation_equals_uncached(family: str, sampling: Sampling) -> None:
    model = random_model(family)
    prompt = torch.randint(0, 97, (1, 4))
    cached = list(generate_tokens(model, prompt, 12, sampling, use_cache=True))
    uncached = list(generate_tokens(model, prompt, 12, sampling, use_cache=False))
    assert cached == uncached
    assert len(cached) == 12


def test_top_p_keeps_the_nucleus() -> None:
    from factscope.generate import pick_token

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    picks = {int(pick_token(logits, Sampling(temperature=1.0, top_p=0.7), gen)) for _ in range(200)}
    assert picks == {0, 1}


@pytest.mark.parametrize("scale", [0.1, 3.0, 12.0])  # flat (full sort needed) to peaked
def test_nucleus_from_candidates_equals_the_full_sort(scale: float) -> None:
    """The top-p set found among the most likely candidates is the full sort's set."""
    from factscope.generate import nucleus

    logits = torch.randn(4, 40_000, generator=torch.Generator().manual_seed(1)) * scale
    probs = logits.softmax(dim=-1)
    for top_p in (0.5, 0.95):
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        keep = sorted_probs.cumsum(dim=-1) - sorted_probs < top_p
        kept, token_ids = nucleus(probs, top_p)
        for row in range(4):
            ids, values = order[row][keep[row]].tolist(), sorted_probs[row][keep[row]].tolist()
            expected = dict(zip(ids, values, strict=True))
            pairs = zip(token_ids[row].tolist(), kept[row].tolist(), strict=True)
            assert {t: p for t, p in pairs if p > 0} == expected


def test_logits_at_last_equals_full_last_row() -> None:
    model = random_model("gemma3")
    tokens = torch.randint(0, 97, (3, 7))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, logits_at="last"), model(tokens)[:, -1:])


@pytest.mark.parametrize("family", FAMILIES)
def test_site_names_are_in_forward_order(family: str) -> None:
    model = random_model(family)
    seen: list[str] = []
    with hooks(model, {site: (lambda x, s: seen.append(s)) for site in site_names(model)}):
        model(torch.randint(0, 97, (1, 5)))
    assert seen == site_names(model)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_plain_mlp_is_one_question_per_neuron(activation: str) -> None:
    """gated_mlp=False: the neuron is act(up x), no gate weights and no gate site."""
    from factscope.config import tiny_config
    from factscope.model import Transformer

    torch.manual_seed(0)
    model = Transformer(tiny_config("llama", gated_mlp=False, activation=activation))
    assert not hasattr(model.blocks[0].mlp, "gate_proj")
    assert "blocks.0.mlp.gate" not in site_names(model)
    _, cache = run_with_cache(model, torch.randint(0, 97, (1, 6)))
    act = torch.relu if activation == "relu" else torch.nn.functional.gelu
    torch.testing.assert_close(cache["blocks.1.mlp.post"], act(cache["blocks.1.mlp.up"]))


@pytest.mark.parametrize("family", FAMILIES)
def test_training_attention_kernel_equals_the_explicit_path(family: str) -> None:
    """In training with nothing hooked on scores/pattern, attention runs one fused kernel;
    its outputs and gradients equal the explicit (hookable) path's."""
    model = random_model(family).train()
    tokens = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(4))

    def loss_and_grads(hooked: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        reads = {f"blocks.{i}.attn.pattern": (lambda x, s: None) for i in range(3)}
        with hooks(model, reads if hooked else {}):
            logits = model(tokens)
        loss = logits.logsumexp(-1).mean()
        loss.backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    fused, fused_grads = loss_and_grads(hooked=False)
    explicit, explicit_grads = loss_and_grads(hooked=True)
    assert relative_error(fused, explicit) < 1e-5
    for a, b in zip(fused_grads, explicit_grads, strict=True):
        assert relative_error(a, b) < 1e-4
