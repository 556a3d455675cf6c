"""What a norm divides by, as a number a reader can hold fixed.

`RMSNorm` (model.py) computes `F.rms_norm(x, weight, eps) = x / rms(x) * weight`; a
`LayerNorm` (GPT-2, Pythia) does the same to x - mean(x) and adds a bias. The attributions
that split a normed output into the parts that summed to `x` (direct logit attribution, a
neuron's or head's share of the output) treat the division as a constant of the run: the
scale is read off the whole `x` once, then applied to each part, so the parts add up to the
norm's output exactly (a LayerNorm's bias is one more, constant, part).
"""

from __future__ import annotations

import torch
from torch import Tensor

from factscope.model import LayerNorm, RMSNorm


def frozen_rms_scale(norm: RMSNorm | LayerNorm, x: Tensor) -> Tensor:
    """1 / rms(x) as the norm computes it, over the last dim (a LayerNorm's of x - mean(x),
    i.e. 1 / std(x)): (..., D) -> (..., 1)."""
    x32 = x.float()
    if isinstance(norm, LayerNorm):
        x32 = x32 - x32.mean(-1, keepdim=True)
    return torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + norm.eps)


def norm_readout(norm: RMSNorm | LayerNorm, scale: Tensor, direction: Tensor) -> Tensor:
    """r with norm(x) . direction = x . r (+ a LayerNorm's bias . direction) at the frozen
    `scale`, in float64: (D,). A LayerNorm subtracts the mean first, so r is centred."""
    r = scale.double() * norm.weight.double() * direction.double()
    return r - r.mean() if isinstance(norm, LayerNorm) else r


__all__ = ["frozen_rms_scale", "norm_readout"]
