"""How many directions fit within a tolerance: the capacity curve of the video's optimiser.

superposition.py asks whether N = 10,000 directions in d = 100 can all sit between 89 and
91 degrees (they cannot). This asks the converse: for a tolerance eps, the largest N for
which the same optimiser places every pair with |cos| <= eps, as the dimension d grows,
next to what the Welch bound allows (see `CAPACITY_METHOD`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, TypedDict, Unpack

from factscope.errors import FactscopeError
from factscope.progress import Messages
from factscope.read.angles import max_abs_cos, random_directions, welch_capacity
from factscope.read.superposition import (
    LOSS_MEANING,
    VIDEO_LR,
    VIDEO_STEPS,
    loss_power,
    optimize_directions,
)


@dataclass(frozen=True)
class CapacityPoint:
    """For one (eps, d): the largest N the optimiser fitted with every |cos| <= eps."""

    eps: float
    dim: int
    largest_n: int  # the largest N that succeeded
    capped: bool  # True when the search hit `max_n` (the real capacity may be larger)
    first_failure: int | None  # the smallest N tried that failed (None if none failed)
    welch_capacity: int | None  # what the Welch bound allows (None: no limit from it)
    trials: list[tuple[int, float]]  # (N, achieved max |cos|) for every N tried


@dataclass(frozen=True)
class CapacityResult:
    """The capacity curve: for each eps, the largest N as the dimension grows."""

    eps: list[float]
    dims: list[int]
    steps: int
    lr: float
    max_n: int
    tolerance: float
    seed: int
    points: list[CapacityPoint]
    method: str
    loss: str = "scene"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "capacity",
            "eps": list(self.eps),
            "dims": list(self.dims),
            "steps": self.steps,
            "lr": self.lr,
            "max_n": self.max_n,
            "tolerance": self.tolerance,
            "seed": self.seed,
            "method": self.method,
            "loss": self.loss,
            "points": [asdict(p) for p in self.points],
        }

    def _repr_html_(self) -> str:
        from factscope.report.superposition_html import capacity_fragment  # display only

        return capacity_fragment(self.to_dict())


CAPACITY_METHOD = (
    "For each (eps, d): the loss below with its cutoff set to 0.9 eps (aiming under eps: "
    "with the cutoff at eps the worst pairs hover at eps +- the step size), Adam at lr 0.01, "
    "from random unit vectors (seeded); a trial with N vectors succeeds when every pair of "
    "the normalised result has |cos| <= eps. N is searched by doubling from d, then by "
    "bisection on log N until the bracket is within the tolerance; the upper end of the "
    "search is min(max_n, the Welch bound's limit + 1). Success is not exactly monotone in "
    "N (each N is one seeded run), so the curve is the optimiser's, not the geometry's."
)


CAPACITY_MARGIN = 0.9  # a capacity trial's loss cutoff, as a fraction of eps


def _fits(n: int, dim: int, eps: float, steps: int, lr: float, seed: int, power: int) -> float:
    """The max |cos| the optimiser reaches for `n` directions in `dim` dimensions."""
    start = random_directions(n, dim, seed)
    final, _ = optimize_directions(start, steps, lr=lr, cutoff=CAPACITY_MARGIN * eps, power=power)
    return max_abs_cos(final)


class CapacitySearch(TypedDict, total=False):
    """`capacity_curve`'s settings, for `capacity_point`; what is left out takes their
    default (the video's steps and rate, N up to 2,000, a 10% bracket, seed 0, its loss)."""

    steps: int  # Adam steps per trial
    lr: float
    max_n: int  # the largest N tried
    tolerance: float  # stop bisecting when hi/lo <= 1 + tolerance
    seed: int
    loss: str  # one of superposition.LOSSES
    progress: Messages | None  # told one line per trial


def capacity_point(eps: float, dim: int, **search: Unpack[CapacitySearch]) -> CapacityPoint:
    """The largest N (up to `max_n`) for which the optimiser gets every |cos| <= eps in
    `dim` dimensions: `capacity_curve` at one (eps, d)."""
    return capacity_curve([eps], [dim], **search).points[0]


def capacity_curve(
    eps_values: Iterable[float] = (0.05, 0.1, 0.2),
    dims: Iterable[int] = (10, 25, 50, 100, 200),
    *,
    steps: int = VIDEO_STEPS,
    lr: float = VIDEO_LR,
    max_n: int = 2000,
    tolerance: float = 0.1,
    seed: int = 0,
    loss: str = "scene",
    progress: Messages | None = None,
) -> CapacityResult:
    """For every eps and dimension, the largest N (up to `max_n`) for which the optimiser
    gets every |cos| <= eps (see `CAPACITY_METHOD`)."""
    eps_list, dim_list = [float(e) for e in eps_values], [int(d) for d in dims]
    for e in eps_list:
        if not 0 < e < 1:
            raise FactscopeError(f"eps must be between 0 and 1 (got {e})")
    for d in dim_list:
        if d < 2:
            raise FactscopeError(f"dimensions must be at least 2 (got {d})")

    def achieved(eps: float, dim: int, n: int) -> float:  # one trial: the optimiser's run
        worst = _fits(n, dim, eps, steps, lr, seed, loss_power(loss))
        if progress is not None:
            progress(f"eps {eps}, d {dim}: N {n} -> max|cos| {worst:.4f}")
        return worst

    points = [
        _largest_n(e, d, max_n, tolerance, partial(achieved, e, d))
        for e in eps_list
        for d in dim_list
    ]
    loss_power(loss)  # a known loss
    method = f"{CAPACITY_METHOD} Loss: {LOSS_MEANING[loss]}."
    return CapacityResult(
        eps_list, dim_list, steps, lr, max_n, tolerance, seed, points, method, loss
    )


def _largest_n(
    eps: float, dim: int, max_n: int, tolerance: float, achieved: Callable[[int], float]
) -> CapacityPoint:
    """The search for one (eps, d), `achieved(N)` being a trial's max |cos|: doubling from
    N = d, then bisection in log N until hi/lo <= 1 + tolerance."""
    limit = welch_capacity(eps, dim)
    ceiling = max_n if limit is None else min(max_n, limit + 1)
    trials: list[tuple[int, float]] = []

    def ok(n: int) -> bool:
        worst = achieved(n)
        trials.append((n, worst))
        return worst <= eps

    lo = dim  # N = d always fits (an orthonormal basis); not run
    if dim >= ceiling:
        return CapacityPoint(eps, dim, dim, dim >= max_n, None, limit, trials)
    hi: int | None = None
    n = min(2 * dim, ceiling)
    while hi is None:
        if ok(n):
            lo = n
            if n >= ceiling:
                break
            n = min(2 * n, ceiling)
        else:
            hi = n
    while hi is not None and hi > lo + 1 and hi / lo > 1 + tolerance:
        mid = round(math.sqrt(lo * hi))
        mid = min(max(mid, lo + 1), hi - 1)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    capped = hi is None and lo >= max_n
    return CapacityPoint(eps, dim, lo, capped, hi, limit, trials)
