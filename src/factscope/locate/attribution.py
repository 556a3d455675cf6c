"""Attribution patching: a causal trace estimated from gradients, in seconds.

The exact trace (trace.py) re-runs the model for every restored cell. Attribution patching
(Syed, Rager & Conmy 2023; Nanda's "attribution patching" post) replaces each re-run by a
first-order Taylor expansion around the corrupted run. For one noise sample,

    p(cell restored) ~= p(corrupted) + sum over restored sites of dp/d(state) . (clean - corrupt)

where the gradient is taken in the corrupted run at the restored site and token. One
forward and one backward pass per noise sample (all samples in one batch) give the gradient
at every site and token at once, so every cell of every kind is estimated together.

We differentiate p(answer) itself, not log p: the heatmap shows p, and a first-order
estimate of p is what it can be compared against. Windowed mlp/attn cells sum the terms of
the layers in their window (restoring several sites at once is, to first order, the sum of
restoring each). The estimate is exact where p is linear in the restored state and poor
where restoring moves the model far (e.g. the hidden state at the last token, late
layers, where p jumps back to the clean value through the softmax).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

import torch
from torch import Tensor

from factscope.hooks import hooks
from factscope.locate.corruption import (
    KINDS,
    CleanRun,
    Corruption,
    Kind,
    TraceOptions,
    TraceResult,
    answer_probability,
    clean_run,
    corrupt_embed_hook,
    window_layers,
)
from factscope.model import Transformer

SITE_OF_KIND: dict[Kind, str] = {"hidden": "resid_post", "mlp": "mlp.out", "attn": "attn.out"}


def attribution_terms(
    model: Transformer,
    tokens: Tensor,
    subject_span: tuple[int, int],
    answer_id: int,
    noise: Tensor,
    clean: CleanRun,
    kinds: Sequence[Kind] = KINDS,
) -> tuple[Tensor, dict[Kind, Tensor]]:
    """Corrupted p per sample (S,) and, per kind, the first-order terms
    grad . (clean - corrupted) at every layer, sample and token: (L, S, T).

    `noise` is the (S, n_subject, D) noise of `subject_noise`; tokens (1, T); `clean` the
    clean run of `clean_run`."""
    L = model.cfg.n_layers
    final = f"blocks.{L - 1}.resid_post"
    sites = [f"blocks.{j}.{SITE_OF_KIND[k]}" for k in kinds for j in range(L)]
    states: dict[str, Tensor] = {}

    add_noise = corrupt_embed_hook(noise, subject_span)

    def corrupt(x: Tensor, site: str) -> Tensor:
        # a fresh leaf, so gradients flow whether or not the weights require them
        return add_noise(x, site).detach().requires_grad_(True)

    def record(x: Tensor, site: str) -> None:
        states[site] = x

    recorders = dict.fromkeys([*sites, final], record)
    with torch.enable_grad(), hooks(model, {"embed": corrupt, **recorders}):
        model(tokens.expand(noise.shape[0], -1), logits_at="last")
        p = answer_probability(model, states[final][:, -1], answer_id)  # (S,)
        grads = torch.autograd.grad(p.sum(), [states[s] for s in sites], allow_unused=True)
    grad_of = dict(zip(sites, grads, strict=True))

    terms: dict[Kind, Tensor] = {}
    for kind in kinds:
        per_layer = []
        for j in range(L):
            site = f"blocks.{j}.{SITE_OF_KIND[kind]}"
            delta = clean.states(kind)[j] - states[site].detach()  # (S, T, D)
            grad = grad_of[site]
            term = (grad * delta).sum(-1) if grad is not None else torch.zeros_like(delta[..., 0])
            per_layer.append(term)
        terms[kind] = torch.stack(per_layer)  # (L, S, T)
    return p.detach(), terms


def approx_trace(
    model: Transformer,
    tokens: Tensor,
    subject_span: tuple[int, int],
    answer_id: int,
    **options: Unpack[TraceOptions],
) -> dict[Kind, TraceResult]:
    """The causal trace of `trace_fact`, estimated by attribution patching: the same
    noise (same seed), the same cells and the same TraceResult, with method="approx" and
    scores = corrupted p + the first-order estimate of what restoring each cell adds."""
    setup = Corruption.of(model, tokens, subject_span, answer_id, **options)
    L, window = model.cfg.n_layers, setup.window
    noise = setup.noise(model.cfg.d_model)
    clean = clean_run(model, setup.tokens, answer_id)
    p, terms = attribution_terms(
        model, setup.tokens, setup.subject_span, answer_id, noise, clean, setup.kinds
    )
    clean_p = clean.p
    corrupted_p = float(p.mean())
    results: dict[Kind, TraceResult] = {}
    for kind in setup.kinds:
        per_layer = terms[kind].mean(dim=1).T.double()  # (T, L), averaged over samples
        if kind == "hidden":
            gain = per_layer
        else:
            gain = torch.stack(
                [per_layer[:, window_layers(l, window, L)].sum(-1) for l in range(L)], dim=1
            )
        scores = corrupted_p + gain.cpu()
        results[kind] = setup.result(kind, "approx", clean_p, corrupted_p, scores)
    return results
