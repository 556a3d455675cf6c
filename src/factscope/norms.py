"""What an RMSNorm divides by, as a number a reader can hold fixed.

`RMSNorm` (model.py) computes `F.rms_norm(x, weight, eps) = x / rms(x) * weight`. The
attributions that split a normed output into the parts that summed to `x` (direct logit
attribution, a neuron's or head's share of the output) treat the division as a constant of
the run: the scale `1 / rms(x)` is read off the whole `x` once, then applied to each part,
so the parts add up to the norm's output exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from factscope.model import RMSNorm


def frozen_rms_scale(norm: RMSNorm, x: Tensor) -> Tensor:
    """1 / rms(x) as the norm computes it, over the last dim: (..., D) -> (..., 1)."""
    x32 = x.float()
    return torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + norm.eps)


__all__ = ["frozen_rms_scale"]
