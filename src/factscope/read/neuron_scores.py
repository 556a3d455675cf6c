"""A score for every MLP neuron: how much it writes the answer.

A neuron is (layer, index) of `blocks.{layer}.mlp.post`, the input of the down-projection.
Scores, at two positions:

- **final token** (`final_contributions`): the neuron's *direct* contribution to the
  answer's logit. Its activation a_i times its down column w_i, passed through the post-MLP
  norm and the final norm with their scales frozen at the values of the real run (exactly
  as `locate.lens.direct_logit_attribution` freezes them), read along W_U[answer]:

      c_i = a_i * (w_i * s_post * g_post) . (s_final * g_final * W_U[answer])

  so the c_i of one layer add up to that layer's MLP term of the DLA.
- **last subject token** (`subject_attribution`): no direct path to the logit, so an
  attribution of p(answer): the gradient times the activation's excess over its mean,
  dp/da_i * (a_i - mean a_i), or integrated gradients (Dai et al. 2022, "Knowledge
  Neurons": scale the layer's activations from 0 to their value, average the gradient).
  Means are over the same prompt with other people's names (`reference_names`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import HookFn, hooks, run_with_cache
from factscope.model import MLP, Transformer
from factscope.norms import frozen_rms_scale, norm_readout
from factscope.read.suffix import ForwardCount, SuffixRunner

Position = Literal["subject", "final"]
POSITIONS: tuple[Position, ...] = ("subject", "final")
SubjectMethod = Literal["grad_x_act", "integrated_gradients"]
SUBJECT_METHODS: tuple[SubjectMethod, ...] = ("grad_x_act", "integrated_gradients")

METHOD_NAMES = {
    "final": "direct contribution to the answer's logit (post-MLP and final norm scales "
    "frozen; a layer's neurons sum to its MLP DLA term)",
    "grad_x_act": "gradient x (activation - mean activation) of p(answer)",
    "integrated_gradients": "integrated gradients of p(answer), baseline 0 (Dai et al. 2022)",
}


def mlp_at(model: Transformer, layer: int) -> MLP:
    """The MLP of block `layer`."""
    return cast(MLP, model.blocks[layer].mlp)


def mlp_sites(model: Transformer, kinds: Sequence[str] = ("post",)) -> list[str]:
    """`blocks.{l}.mlp.{kind}` for every layer and kind (no `gate` site in a plain MLP)."""
    kinds = [k for k in kinds if k != "gate" or model.cfg.gated_mlp]
    return [f"blocks.{layer}.mlp.{k}" for layer in range(model.cfg.n_layers) for k in kinds]


@torch.no_grad()
def neuron_activations(model: Transformer, tokens: Tensor, kind: str = "post") -> Tensor:
    """Every neuron's `kind` activation (gate, up or post) on `tokens` (B, T): (B, L, T, F)."""
    sites = mlp_sites(model, (kind,))
    if not sites:
        raise FactscopeError(f"this model's MLP has no {kind!r} site (it is not gated)")
    _, cache = run_with_cache(model, tokens, sites, logits_at="last")
    return torch.stack([cache[s] for s in sites], dim=1)


@torch.no_grad()
def mean_activations(model: Transformer, prompts: Sequence[tuple[Tensor, int]]) -> Tensor:
    """Mean neuron activation over (tokens (1, T), position) pairs: (L, F).

    Prompts of equal length run as one batch."""
    by_length: dict[int, list[tuple[Tensor, int]]] = {}
    for tokens, position in prompts:
        by_length.setdefault(tokens.shape[1], []).append((tokens, position))
    total = torch.zeros(model.cfg.n_layers, model.cfg.d_mlp, dtype=torch.float64)
    for group in by_length.values():
        batch = torch.cat([t for t, _ in group])  # (B, T)
        acts = neuron_activations(model, batch)  # (B, L, T, F)
        rows = torch.arange(len(group))
        where = torch.tensor([p for _, p in group])
        total += acts[rows, :, where].double().sum(0).cpu()  # (L, F)
    return (total / len(prompts)).to(model.dtype)


def neuron_readout(
    model: Transformer, post: Tensor, direction: Tensor, final_scale: Tensor
) -> Tensor:
    """What one unit of each neuron adds to `direction`'s logit at one position: (L, F).

    `post` (L, F) are the activations at that position (they set the frozen post-MLP norm
    scale); `direction` (D,) is W_U[answer]; `final_scale` the frozen 1/rms of the final norm.
    """
    readout = norm_readout(model.norm, final_scale, direction)  # (D,)
    rows = []
    for layer in range(model.cfg.n_layers):
        mlp = mlp_at(model, layer)
        w_down = mlp.down_proj.weight.double()  # (D, F)
        r = readout
        if mlp.post_norm is not None:  # Gemma: freeze the post-MLP norm at the layer's output
            raw = mlp.down_proj(post[layer].to(w_down.device, mlp.down_proj.weight.dtype))
            r = r * frozen_rms_scale(mlp.post_norm, raw).double() * mlp.post_norm.weight.double()
        rows.append(r @ w_down)  # (F,)
    return torch.stack(rows)


@torch.no_grad()
def final_contributions(model: Transformer, tokens: Tensor, answer_id: int) -> Tensor:
    """Each neuron's direct contribution to the answer's logit at the final token: (L, F),
    float64. Row l sums to the MLP term of layer l in `direct_logit_attribution`."""
    L = model.cfg.n_layers
    sites = [*mlp_sites(model), f"blocks.{L - 1}.resid_post"]
    _, cache = run_with_cache(model, tokens, sites, logits_at="last")
    post = torch.stack([cache[s][0, -1] for s in mlp_sites(model)])  # (L, F)
    final_scale = frozen_rms_scale(model.norm, cache[f"blocks.{L - 1}.resid_post"][0, -1])
    per_unit = neuron_readout(model, post, model.unembed.weight[answer_id], final_scale)
    return post.double() * per_unit  # (L, F)


def subject_attribution(
    model: Transformer,
    tokens: Tensor,
    answer_id: int,
    position: int,
    mean_post: Tensor,
    method: SubjectMethod = "grad_x_act",
    steps: int = 20,
    count: ForwardCount | None = None,
) -> Tensor:
    """Attribution of p(answer) to every neuron at token `position`: (L, F), float64.

    grad_x_act: dp/da * (a - mean a), one forward and backward. integrated_gradients:
    for each layer, a_i * mean over alpha in (0, 1] of dp/da_i at alpha * a (the layer's
    whole activation vector scaled together, `steps` points, right Riemann sum).
    """
    count = count if count is not None else ForwardCount()
    L, F = model.cfg.n_layers, model.cfg.d_mlp
    if method == "grad_x_act":
        kept: dict[str, Tensor] = {}

        def keep(x: Tensor, site: str) -> None:
            kept[site] = x

        fns: dict[str, HookFn] = {site: keep for site in mlp_sites(model)}
        # the graph starts at the embeddings, whatever the parameters' requires_grad
        fns["embed"] = lambda x, site: x.detach().requires_grad_(True)
        with torch.enable_grad(), hooks(model, fns):
            p = model(tokens, logits_at="last")[0, -1].float().log_softmax(-1)[answer_id].exp()
            acts = [kept[s] for s in mlp_sites(model)]
            grads = torch.autograd.grad(p, acts)
        count.add(1, tokens.shape[1])
        count.backward += 1
        a = torch.stack([x[0, position] for x in acts]).detach().double()  # (L, F)
        g = torch.stack([x[0, position] for x in grads]).double()  # (L, F)
        return g * (a - mean_post.to(a.device).double())
    if method != "integrated_gradients":
        raise FactscopeError(f"unknown attribution method {method!r}; use {SUBJECT_METHODS}")
    if steps < 1:
        raise FactscopeError(f"steps must be at least 1, got {steps}")
    post = neuron_activations(model, tokens)[0, :, position]  # (L, F)
    count.add(1, tokens.shape[1])
    runner = SuffixRunner(model, tokens, position, count)
    alphas = torch.arange(1, steps + 1, device=tokens.device, dtype=post.dtype) / steps  # (S,)
    scores = torch.empty(L, F, dtype=torch.float64)
    for layer in range(L):
        scaled = (alphas[:, None] * post[layer][None, :]).requires_grad_(True)  # (S, F)

        def put(x: Tensor, site: str, scaled: Tensor = scaled) -> Tensor:
            x = x.clone()
            x[:, 0] = scaled  # the suffix starts at `position`
            return x

        with torch.enable_grad():
            p = runner.answer_probs(answer_id, steps, {f"blocks.{layer}.mlp.post": put})
            (grad,) = torch.autograd.grad(p.sum(), scaled)
        count.backward += 1
        scores[layer] = (post[layer].double() * grad.double().mean(0)).cpu()
    return scores


def ranking(scores: Tensor, n: int) -> list[tuple[int, int]]:
    """The n (layer, index) pairs with the largest scores, largest first. scores: (L, F)."""
    F = scores.shape[1]
    order = scores.flatten().argsort(descending=True, stable=True)[:n]
    return [(int(i) // F, int(i) % F) for i in order]


__all__ = [
    "METHOD_NAMES",
    "POSITIONS",
    "SUBJECT_METHODS",
    "final_contributions",
    "mean_activations",
    "mlp_at",
    "mlp_sites",
    "neuron_activations",
    "neuron_readout",
    "ranking",
    "subject_attribution",
]
