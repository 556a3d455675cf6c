"""How perpendicular a real model's weight directions are, against random ones.

The statistics of angles.py (the angles between pairs of unit vectors, the Welch and
frame bounds) measured on a model's own directions: MLP gate and up rows, down-projection
columns, unembedding rows, per layer, each against random directions of the same number
and dimension. Directions packed tighter than random would be a sign of superposition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.progress import Steps
from factscope.read.angles import (
    BIN_DEGREES,
    AngleStats,
    angle_stats,
    frame_bound,
    random_directions,
    welch_bound,
)

MODEL_KINDS = ("gate", "up", "down", "unembed")
KIND_MEANING = {
    "gate": "MLP gate rows: the first question each neuron asks of the residual stream",
    "up": "MLP up-projection rows: the second question (the only one in a plain MLP)",
    "down": "MLP down-projection columns: what each neuron writes to the residual stream",
    "unembed": "unembedding rows: the direction that raises each token's logit",
}


@dataclass(frozen=True)
class DirectionSet:
    """The angle statistics of one set of weight directions (one kind, one layer)."""

    kind: str
    layer: int | None  # None for the unembedding
    stats: AngleStats


@dataclass(frozen=True)
class ModelAngles:
    """Angles between a model's weight directions, next to random directions with the same
    count and dimension and next to the Welch and frame bounds for that count."""

    model: str
    d_model: int
    sets: list[DirectionSet]
    random: dict[str, AngleStats]  # by kind: random unit vectors, same n and d
    unembed_sample: int  # how many unembedding rows were sampled (all pairs of those)
    seed: int
    notes: list[str] = field(default_factory=list)

    def bounds(self, kind: str) -> dict[str, float]:
        n = self.random[kind].n
        return {
            "welch": welch_bound(n, self.d_model),
            "rms": math.sqrt(frame_bound(n, self.d_model)),
        }

    def histograms(self) -> dict[str, list[int]]:
        """Per kind, the angle histogram summed over layers (bins of `BIN_DEGREES`)."""
        sums: dict[str, list[int]] = {}
        for s in self.sets:
            old = sums.get(s.kind)
            sums[s.kind] = (
                list(s.stats.histogram) if old is None
                else [a + b for a, b in zip(old, s.stats.histogram, strict=True)]
            )  # fmt: skip
        return sums

    def to_dict(self) -> dict[str, Any]:
        def scalars(stats: AngleStats) -> dict[str, Any]:
            return {k: v for k, v in stats.to_dict().items() if k != "histogram"}

        kinds = list(dict.fromkeys(s.kind for s in self.sets))
        return {
            "kind": "model",
            "model": self.model,
            "d_model": self.d_model,
            "unembed_sample": self.unembed_sample,
            "seed": self.seed,
            "bin_degrees": BIN_DEGREES,
            "kinds": kinds,
            "meaning": {k: KIND_MEANING[k] for k in kinds},
            "sets": [{"kind": s.kind, "layer": s.layer, **scalars(s.stats)} for s in self.sets],
            "random": {k: {**scalars(v), "histogram": v.histogram} for k, v in self.random.items()},
            "bounds": {k: self.bounds(k) for k in kinds},
            "histograms": self.histograms(),
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        from factscope.report.superposition_html import model_fragment  # display only

        return model_fragment(self.to_dict())


def model_directions(model: Any, kind: str, layer: int | None) -> Tensor:
    """One set of directions of factscope's Transformer as rows (N, d_model)."""
    if kind == "unembed":
        return model.unembed.weight.detach()  # (V, d)
    mlp = model.blocks[layer].mlp
    if kind == "gate":
        if not getattr(mlp, "gated", False):
            raise FactscopeError("this model's MLP has no gate; choose --kind up,down,unembed")
        return mlp.gate_proj.weight.detach()  # (d_mlp, d)
    if kind == "up":
        return mlp.up_proj.weight.detach()  # (d_mlp, d)
    if kind == "down":
        return mlp.down_proj.weight.detach().T  # (d, d_mlp) -> (d_mlp, d): one column each
    raise FactscopeError(f"unknown kind {kind!r}; choose from {', '.join(MODEL_KINDS)}")


def direction_angles(
    lm: Any,
    *,
    kinds: Sequence[str] = MODEL_KINDS,
    layers: Sequence[int] | None = None,
    unembed_sample: int = 4096,
    seed: int = 0,
    progress: Steps | None = None,
) -> ModelAngles:
    """Angle statistics of `lm`'s MLP input directions (gate and up rows), output
    directions (down columns) and unembedding rows (a seeded sample of `unembed_sample`
    tokens: all pairs of 262,144 rows would be 3.4e10), each layer on its own, against
    random unit vectors of the same count and dimension."""
    model, cfg = lm.model, lm.cfg
    unknown = [k for k in kinds if k not in MODEL_KINDS]
    if unknown or not kinds:
        raise FactscopeError(
            f"--kind {','.join(kinds)!r} is not valid; use {', '.join(MODEL_KINDS)}"
        )
    if "gate" in kinds and not cfg.gated_mlp:
        raise FactscopeError("this model's MLP has no gate; choose --kind up,down,unembed")
    chosen = list(range(cfg.n_layers)) if layers is None else list(layers)
    bad = [layer for layer in chosen if not 0 <= layer < cfg.n_layers]
    if bad:
        raise FactscopeError(f"unknown layer {bad[0]}; the model has layers 0..{cfg.n_layers - 1}")
    if unembed_sample < 2:
        raise FactscopeError(f"--unembed-sample must be at least 2 (got {unembed_sample})")
    sets: list[DirectionSet] = []
    random: dict[str, AngleStats] = {}
    sample = min(unembed_sample, cfg.vocab_size)
    for kind in kinds:
        if kind == "unembed":
            rows = model_directions(model, kind, None).float()
            pick = torch.randperm(cfg.vocab_size, generator=torch.Generator().manual_seed(seed))
            stats = angle_stats(rows[pick[:sample].to(rows.device)].cpu())
            sets.append(DirectionSet(kind, None, stats))
        else:
            for layer in chosen:
                rows = model_directions(model, kind, layer).float().cpu()
                sets.append(DirectionSet(kind, layer, angle_stats(rows)))
                if progress is not None:
                    progress(1)
        n = sets[-1].stats.n
        random[kind] = angle_stats(random_directions(n, cfg.d_model, seed + 1))
    result = ModelAngles(lm.name, cfg.d_model, sets, random, sample, seed)
    return ModelAngles(
        result.model, result.d_model, sets, random, sample, seed, notes=_model_notes(result)
    )


def _model_notes(result: ModelAngles) -> list[str]:
    notes = []
    for kind in dict.fromkeys(s.kind for s in result.sets):
        mine = [s.stats for s in result.sets if s.kind == kind]
        rand, bounds = result.random[kind], result.bounds(kind)
        rms = sum(s.rms_cos for s in mine) / len(mine)
        share = sum(s.share_89_91 for s in mine) / len(mine)
        worst = max(s.max_abs_cos for s in mine)
        notes.append(
            f"{kind} ({mine[0].n} directions in {result.d_model} dims"
            f"{', mean over ' + str(len(mine)) + ' layers' if len(mine) > 1 else ''}): "
            f"RMS cos {rms:.4f} vs random {rand.rms_cos:.4f} (frame bound {bounds['rms']:.4f}); "
            f"{share:.1%} of pairs within 89-91 degrees vs random {rand.share_89_91:.1%}; "
            f"max |cos| {worst:.3f} vs random {rand.max_abs_cos:.3f} (Welch {bounds['welch']:.4f})."
        )
    return notes
