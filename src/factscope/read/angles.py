"""The geometry of many directions in few dimensions: bounds and angle statistics.

For N > d unit vectors in d dimensions:

- Welch bound: max_{i != j} |cos| >= sqrt((N - d) / (d (N - 1))).
- Frame bound: mean over pairs of cos^2 >= (N/d - 1) / (N - 1), with equality for a tight
  frame. Random directions already have E[cos^2] = 1/d, within a hair of it.

For N = 10,000 and d = 100 both give about 0.0995: some pair must be at least 5.7 degrees
from perpendicular, and the root-mean-square angle from 90 degrees is at least 5.7 degrees,
so "every pair between 89 and 91 degrees" (|cos| <= 0.0175) is impossible.

`angle_stats` measures a set of directions against these bounds, a block of rows at a time.
superposition.py and capacity.py measure optimised synthetic directions with it,
model_angles.py a real model's weight directions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from factscope.errors import FactscopeError

BIN_DEGREES = 0.1  # histogram resolution: 1800 bins over 0..180 degrees
NEAR_LOW, NEAR_HIGH = 89.0, 91.0  # the video's "between 89 and 91 degrees"


# ---- bounds -------------------------------------------------------------------------------


def welch_bound(n: int, dim: int) -> float:
    """The smallest possible max |cos| among `n` unit vectors in `dim` dimensions (Welch,
    1974): sqrt((n - d) / (d (n - 1))); 0 when n <= d (an orthonormal set exists)."""
    if n <= dim:
        return 0.0
    return math.sqrt((n - dim) / (dim * (n - 1)))


def frame_bound(n: int, dim: int) -> float:
    """The smallest possible mean of cos^2 over pairs i != j of `n` unit vectors in `dim`
    dimensions: (n/d - 1) / (n - 1), reached by a tight frame; 0 when n <= d.

    From ||V V^T||_F^2 >= (sum_i ||v_i||^2)^2 / d = n^2 / d: the Gram matrix has rank <= d.
    """
    if n <= dim:
        return 0.0
    return (n / dim - 1) / (n - 1)


def welch_capacity(eps: float, dim: int) -> int | None:
    """The largest n the Welch bound allows with every |cos| <= eps in `dim` dimensions, or
    None when the bound allows any n (d eps^2 >= 1: only other bounds, much weaker, apply)."""
    if dim * eps * eps >= 1:
        return None
    return math.floor(dim * (1 - eps * eps) / (1 - dim * eps * eps) + 1e-9)


# ---- angle statistics ---------------------------------------------------------------------


@dataclass(frozen=True)
class AngleStats:
    """The angles between every pair of `n` directions in `dim` dimensions.

    `histogram[k]` counts pairs whose angle lies in [k, k+1) x `bin_degrees` degrees (the
    last bin includes 180). Cosines are between the normalised vectors.
    """

    n: int
    dim: int
    pairs: int
    max_abs_cos: float
    rms_cos: float  # sqrt(mean cos^2): the frame bound's quantity
    mean_abs_cos: float
    mean_cos: float  # signed: far from 0 when the directions share a common component
    share_89_91: float  # share of pairs with angle within [89, 91] degrees
    min_angle: float  # degrees: the angle furthest below 90
    max_angle: float  # degrees: the angle furthest above 90
    bin_degrees: float
    histogram: list[int]

    @property
    def max_deviation_degrees(self) -> float:
        """How far from 90 degrees the worst pair is."""
        return math.degrees(math.asin(min(1.0, self.max_abs_cos)))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "max_deviation_degrees": self.max_deviation_degrees}


def unit_rows(vectors: Tensor) -> Tensor:
    """`vectors` (N, d) with every row scaled to unit length (a zero row is an error)."""
    norms = vectors.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise FactscopeError("a direction is the zero vector; angles need nonzero vectors")
    return vectors / norms


def angle_stats(
    vectors: Tensor, *, block: int = 1024, bin_degrees: float = BIN_DEGREES
) -> AngleStats:
    """Statistics of the angles between all pairs of rows of `vectors` (N, d), computed a
    block of rows at a time (each unordered pair once) so N can be tens of thousands."""
    if vectors.ndim != 2 or vectors.shape[0] < 2:
        raise FactscopeError("need a matrix of at least 2 directions, one per row")
    u = unit_rows(
        vectors.detach().to(torch.float64 if vectors.dtype == torch.float64 else torch.float32)
    )
    n, dim = u.shape
    bins = round(180 / bin_degrees)
    histogram = torch.zeros(bins, dtype=torch.float64)
    cos_hi, cos_lo = math.cos(math.radians(NEAR_LOW)), math.cos(math.radians(NEAR_HIGH))
    max_abs, sum_sq, sum_abs, sum_cos, near = 0.0, 0.0, 0.0, 0.0, 0
    max_cos, min_cos = -1.0, 1.0
    with torch.no_grad():
        for start in range(0, n - 1, block):
            stop = min(start + block, n)
            cos = u[start:stop] @ u[start:].T  # (b, n - start): rows vs every later row
            upper = torch.ones(stop - start, n - start, dtype=torch.bool).triu(1)
            c = cos[upper].clamp_(-1.0, 1.0)  # each pair (i < j) once
            if c.numel() == 0:
                continue
            max_abs = max(max_abs, float(c.abs().max()))
            max_cos, min_cos = max(max_cos, float(c.max())), min(min_cos, float(c.min()))
            sum_sq += float(c.double().square().sum())
            sum_abs += float(c.double().abs().sum())
            sum_cos += float(c.double().sum())
            near += int(((c >= cos_lo) & (c <= cos_hi)).sum())
            angles = torch.rad2deg(torch.acos(c))
            histogram += torch.histc(angles.double(), bins=bins, min=0.0, max=180.0)
    pairs = n * (n - 1) // 2
    return AngleStats(
        n=n,
        dim=dim,
        pairs=pairs,
        max_abs_cos=max_abs,
        rms_cos=math.sqrt(sum_sq / pairs),
        mean_abs_cos=sum_abs / pairs,
        mean_cos=sum_cos / pairs,
        share_89_91=near / pairs,
        min_angle=math.degrees(math.acos(max_cos)),
        max_angle=math.degrees(math.acos(min_cos)),
        bin_degrees=bin_degrees,
        histogram=[int(x) for x in histogram.tolist()],
    )


def max_abs_cos(vectors: Tensor, block: int = 1024) -> float:
    """The largest |cos| over pairs of rows of `vectors` (N, d), a block of rows at a time."""
    u = unit_rows(vectors.detach().float())
    n = u.shape[0]
    worst = 0.0
    for start in range(0, n - 1, block):
        stop = min(start + block, n)
        cos = (u[start:stop] @ u[start:].T).abs_()  # (b, n - start)
        cos[:, : stop - start].triu_(1)  # keep only pairs j > i
        worst = max(worst, float(cos.max()))
    return worst


def random_directions(
    n: int, dim: int, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """`n` random unit vectors in `dim` dimensions, (n, dim): Gaussian rows, normalised, as
    the scene code starts."""
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(n, dim, generator=generator, dtype=dtype)
    return v / v.norm(dim=1, keepdim=True)
