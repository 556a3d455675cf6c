"""Ablating neurons: does p(answer) fall when the top-scored neurons are switched off?

Ablation confirms the scores: set the top-k neurons to zero or to their mean at that
position and watch p(answer), against k random neurons of the same layers
(`ablation_curve`). Ablation only changes tokens from the ablated position on, so every
batch reuses the keys/values of the tokens before it (`SuffixRunner`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import HookFn
from factscope.model import Transformer
from factscope.progress import Bar
from factscope.read.suffix import ForwardCount, SuffixRunner
from factscope.result import Result

AblationMode = Literal["zero", "mean"]
ABLATION_MODES: tuple[AblationMode, ...] = ("zero", "mean")


def default_ks(max_k: int) -> list[int]:
    """The k values of an ablation curve: every k to 10, then about 8 per decade, to max_k."""
    grid = [*range(1, 11), 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250]
    grid += [300, 400, 500, 600, 800, 1000]
    return sorted({k for k in grid if k < max_k} | {max_k})


NeuronSet = dict[int, Tensor]  # layer -> indices of the neurons ablated in that layer


def neuron_set(neurons: Sequence[tuple[int, int]]) -> NeuronSet:
    """[(layer, index), ...] grouped by layer."""
    grouped: dict[int, list[int]] = {}
    for layer, index in neurons:
        grouped.setdefault(int(layer), []).append(int(index))
    return {layer: torch.tensor(idx) for layer, idx in grouped.items()}


def ablated_answer_probs(
    model: Transformer,
    tokens: Tensor,
    answer_id: int,
    position: int,
    rows: Sequence[NeuronSet],
    values: Tensor,
    *,
    batch_size: int = 64,
    count: ForwardCount | None = None,
    progress: Bar | None = None,
) -> Tensor:
    """p(answer) with each row's neurons set to `values` (L, F) at token `position`: (R,).

    Rows go through in batches; tokens before `position` are computed once. Zero ablation
    passes zeros, mean ablation the mean activations.
    """
    F = model.cfg.d_mlp
    runner = SuffixRunner(model, tokens, position, count)
    values = values.to(device=tokens.device, dtype=model.dtype)
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        masks: dict[int, Tensor] = {}
        for r, row in enumerate(batch):
            for layer, idx in row.items():
                if layer not in masks:
                    masks[layer] = torch.zeros(len(batch), F, dtype=torch.bool)
                masks[layer][r, idx] = True

        def ablate(x: Tensor, site: str, masks: dict[int, Tensor] = masks) -> Tensor:
            layer = int(site.split(".")[1])
            mask = masks[layer].to(x.device)  # (B, F)
            x = x.clone()
            x[:, 0] = torch.where(mask, values[layer], x[:, 0])  # suffix index 0 = position
            return x

        fns: dict[str, HookFn] = {f"blocks.{layer}.mlp.post": ablate for layer in masks}
        with torch.no_grad():
            out.append(runner.answer_probs(answer_id, len(batch), fns).cpu())
        if progress is not None:
            progress.update(1)
    return torch.cat(out) if out else torch.empty(0)


@dataclass
class AblationCurve(Result):
    """p(answer) as the top-k neurons of `position`'s ranking are ablated there (`mode`:
    zero or mean), against `draws` sets of k random neurons drawn from the same layers
    (same count per layer, none of the top k)."""

    position: str
    mode: str
    ks: list[int]
    clean_p: float
    top_p: list[float]  # (K,)
    random_p: list[list[float]]  # (K, draws)
    random_mean: list[float]  # (K,)
    random_std: list[float]  # (K,)
    random_min: list[float]  # (K,)
    random_max: list[float]  # (K,)


def random_like(
    top: Sequence[tuple[int, int]], n_neurons: int, generator: torch.Generator
) -> list[tuple[int, int]]:
    """As many random neurons per layer as `top` has there, avoiding `top`'s own."""
    chosen: list[tuple[int, int]] = []
    for layer, idx in neuron_set(top).items():
        free = torch.ones(n_neurons, dtype=torch.bool)
        free[idx] = False
        pool = free.nonzero()[:, 0]
        picks = pool[torch.randperm(len(pool), generator=generator)[: len(idx)]]
        chosen += [(layer, int(i)) for i in picks]
    return chosen


def ablation_curve(
    model: Transformer,
    tokens: Tensor,
    answer_id: int,
    position: int,
    ranking: Sequence[tuple[int, int]],
    ks: Sequence[int],
    values: dict[str, Tensor],
    *,
    position_name: str = "",
    draws: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    count: ForwardCount | None = None,
    progress: Bar | None = None,
) -> list[AblationCurve]:
    """One `AblationCurve` per mode in `values` ({"zero": (L, F), "mean": (L, F)})."""
    n_total = model.cfg.n_layers * model.cfg.d_mlp
    most = min(len(ranking), n_total)
    for k in ks:
        if not 1 <= k <= most:
            raise FactscopeError(f"k = {k} is out of range; ablate between 1 and {most} neurons")
    if draws < 1:
        raise FactscopeError(f"draws must be at least 1, got {draws}")
    generator = torch.Generator().manual_seed(seed)
    rows: list[NeuronSet] = [{}]  # row 0: nothing ablated
    for k in ks:
        rows.append(neuron_set(ranking[:k]))
        rows += [
            neuron_set(random_like(ranking[:k], model.cfg.d_mlp, generator)) for _ in range(draws)
        ]
    curves = []
    for mode, vals in values.items():
        p = ablated_answer_probs(
            model,
            tokens,
            answer_id,
            position,
            rows,
            vals,
            batch_size=batch_size,
            count=count,
            progress=progress,
        )
        grid = p[1:].view(len(ks), 1 + draws).double()  # (K, 1 + draws)
        rand = grid[:, 1:]
        curves.append(
            AblationCurve(
                position=position_name,
                mode=mode,
                ks=list(ks),
                clean_p=float(p[0]),
                top_p=grid[:, 0].tolist(),
                random_p=rand.tolist(),
                random_mean=rand.mean(1).tolist(),
                random_std=(rand.std(1) if draws > 1 else torch.zeros(len(ks))).tolist(),
                random_min=rand.min(1).values.tolist(),
                random_max=rand.max(1).values.tolist(),
            )
        )
    return curves


__all__ = [
    "ABLATION_MODES",
    "AblationCurve",
    "NeuronSet",
    "ablated_answer_probs",
    "ablation_curve",
    "default_ks",
    "neuron_set",
    "random_like",
]
