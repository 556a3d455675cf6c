"""How many almost-perpendicular directions fit in d dimensions: the video's experiment.

3Blue1Brown's "How might LLMs store facts" argues that a d-dimensional residual stream can
hold far more than d feature directions if "almost perpendicular" is good enough. Its scene
code (3b1b/videos, `_2024/transformers/almost_orthogonal.py`) takes 10,000 random unit
vectors in 100 dimensions and runs Adam (lr 0.01, 250 steps) on the loss

    sum over all (i, j) of relu(|G_ij - I_ij| - 0.01)  +  N * sum_i (G_ii - 1)^2

where G = V V^T is the Gram matrix of the (N, d) matrix V: every dot product further than
0.01 from what an orthonormal set would have is penalised linearly, and the squared norm
term keeps the rows near unit length. `optimize_directions` minimises exactly that loss,
with its gradient written out by hand so that the N x N Gram matrix is never held whole:

    grad V = 2 S V + 4 N diag(G_ii - 1) V,   S_ij = sign(T_ij),
    T = (G - I) - clamp(G - I, -c, c)        (the soft-thresholded deviation)

Only the upper triangle of G is formed (G and S are symmetric), one block of rows at a
time, so a step costs 3 N^2 d floating-point operations (N^2 d for the half Gram matrix,
2 N^2 d for S V) and O(block x N) memory.

Geometry limits what any optimiser can reach. For N > d unit vectors in d dimensions:

- Welch bound: max_{i != j} |cos| >= sqrt((N - d) / (d (N - 1))).
- Frame bound: mean over pairs of cos^2 >= (N/d - 1) / (N - 1), with equality for a tight
  frame. Random directions already have E[cos^2] = 1/d, within a hair of it.

For N = 10,000 and d = 100 both give about 0.0995: some pair must be at least 5.7 degrees
from perpendicular, and the root-mean-square angle from 90 degrees is at least 5.7 degrees,
so "every pair between 89 and 91 degrees" (|cos| <= 0.0175) is impossible.

`capacity_curve` asks the converse: for a tolerance eps, how many directions can the
optimiser place with every |cos| <= eps, as d grows. model_angles.py measures the same
statistics for a real model's weight directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch._C._nn import softshrink  # the out= form: one in-place pass over the Gram block

from factscope.errors import FactscopeError
from factscope.progress import Steps

VIDEO_CUTOFF = 0.01  # the scene code's dot_diff_cutoff
VIDEO_LR = 0.01
VIDEO_STEPS = 250
BIN_DEGREES = 0.1  # histogram resolution: 1800 bins over 0..180 degrees
NEAR_LOW, NEAR_HIGH = 89.0, 91.0  # the video's "between 89 and 91 degrees"


# The penalty on each |dot product| past the cutoff: the scene code's, and a variant.
LOSSES: dict[str, int] = {"scene": 1, "squared": 2}  # name -> power of relu(|D| - c)
LOSS_MEANING = {
    "scene": "relu(|G - I| - c), summed: the scene code's loss (L1: for N > d it drives a "
    "few pairs parallel so that the rest can sit within c of perpendicular)",
    "squared": "relu(|G - I| - c)^2, summed: a variant that spreads the overlap evenly, "
    "towards the Welch bound",
}


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


def _unit_rows(vectors: Tensor) -> Tensor:
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
    u = _unit_rows(
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


# ---- the video's optimiser ----------------------------------------------------------------


def random_directions(
    n: int, dim: int, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """`n` random unit vectors in `dim` dimensions, (n, dim): Gaussian rows, normalised, as
    the scene code starts."""
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(n, dim, generator=generator, dtype=dtype)
    return v / v.norm(dim=1, keepdim=True)


def jl_step_flops(n: int, dim: int) -> float:
    """Floating-point operations of one optimiser step: the upper half of the Gram matrix
    (n^2 d) plus the gradient product S V over the full symmetric S (2 n^2 d). The Adam
    update and the elementwise work are O(n d) and O(n^2) and not counted."""
    return 3.0 * n * n * dim


def video_loss_and_grad(
    v: Tensor, cutoff: float = VIDEO_CUTOFF, block: int = 512, power: int = 1
) -> tuple[float, Tensor]:
    """The scene code's loss at `v` (N, d) and its gradient (N, d), without autograd and
    without ever holding the N x N Gram matrix.

    For the row block I = [a, b) and the columns j >= a it forms G = V_I V_{a:}^T, the
    soft-thresholded deviation T = D - clamp(D, -c, c) of D = G - I from the identity, and
    S = sign(T), the derivative of relu(|D| - c). Only pairs i <= j are kept: the part of
    the block left of the diagonal is zeroed and the diagonal of S halved, and each kept
    entry sends its gradient both ways (to row i from v_j and to row j from v_i).

    `power` 1 is the scene code. `power` 2 squares the penalty, relu(|D| - c)^2 (S = 2T): a
    variant, not the video's, that spreads the overlap over all pairs instead of piling it
    onto a few (see `LOSSES`).
    """
    if power not in (1, 2):
        raise FactscopeError(f"power must be 1 (the scene code) or 2 (got {power})")
    n = v.shape[0]
    grad = torch.zeros_like(v)
    squared_norms = (v * v).sum(dim=1)  # (N,) = diag G
    norm_error = squared_norms - 1.0
    loss = 0.0
    for a in range(0, n, block):
        b = min(a + block, n)
        rows = v[a:b]  # (B, d)
        tail = v[a:]  # (M, d), M = N - a
        t = rows @ tail.T  # (B, M): dot products of the block's rows with rows a..N-1
        softshrink(t, cutoff, out=t)  # type: ignore[call-arg]  # in place: t - clamp(t, -c, c)
        own = t[:, : b - a]  # (B, B) view: pairs inside the block
        diagonal = norm_error[a:b] - norm_error[a:b].clamp(-cutoff, cutoff)
        own.diagonal().copy_(diagonal)
        own.triu_()  # pairs j < i are counted from row j's block
        # Every pair i < j appears twice in the scene code's sum over (i, j); i = j once.
        norm = torch.linalg.vector_norm
        if power == 1:
            loss += 2.0 * float(norm(t, ord=1)) - float(norm(diagonal, ord=1))
            t.sign_()  # (B, M): S, the derivative of relu(|D| - c)
        else:
            loss += 2.0 * float(norm(t).square()) - float(norm(diagonal).square())
            t.mul_(2.0)  # (B, M): S = 2 T, the derivative of relu(|D| - c)^2
        own.diagonal().mul_(0.5)  # the diagonal is sent "both ways" below: halve it
        grad[a:b].addmm_(t, tail, alpha=2.0)  # (B, d): each row i gets S_ij v_j
        grad[a:].addmm_(t.T, rows, alpha=2.0)  # (M, d): each row j gets S_ij v_i
    loss += n * float(norm_error.square().sum())
    grad += (4.0 * n) * norm_error[:, None] * v  # d/dv_i of N (|v_i|^2 - 1)^2
    return loss, grad


def optimize_directions(
    start: Tensor,
    steps: int = VIDEO_STEPS,
    *,
    lr: float = VIDEO_LR,
    cutoff: float = VIDEO_CUTOFF,
    block: int = 512,
    power: int = 1,
    progress: Steps | None = None,
) -> tuple[Tensor, list[float]]:
    """Run the scene code's optimisation from `start` (N, d): Adam (PyTorch defaults,
    betas 0.9 and 0.999) at `lr` for `steps` steps on `video_loss_and_grad`. Returns the
    final vectors (N, d) and the loss before each step, as the scene code records it."""
    if steps < 0:
        raise FactscopeError(f"steps must be at least 0 (got {steps})")
    v = start.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([v], lr=lr)
    losses: list[float] = []
    for _ in range(steps):
        with torch.no_grad():
            loss, grad = video_loss_and_grad(v.detach(), cutoff, block, power)
        v.grad = grad
        optimizer.step()
        losses.append(loss)
        if progress is not None:
            progress(1)
    return v.detach(), losses


@dataclass(frozen=True)
class JLResult:
    """The video's experiment: angles between N directions in d dimensions, before and after
    the optimiser, next to the Welch and frame bounds."""

    n: int
    dim: int
    steps: int
    lr: float
    cutoff: float
    seed: int
    loss: str  # a key of LOSSES
    before: AngleStats
    after: AngleStats
    losses: list[float]
    welch_bound: float  # lower bound on max |cos|
    frame_bound: float  # lower bound on mean cos^2
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def rms_bound(self) -> float:
        """sqrt(frame bound): the lower bound on the RMS cosine."""
        return math.sqrt(self.frame_bound)

    @property
    def all_within_89_91(self) -> bool:
        """The video's claim, checked: every pair between 89 and 91 degrees after optimising."""
        return self.after.share_89_91 == 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "jl",
            "n": self.n,
            "dim": self.dim,
            "steps": self.steps,
            "lr": self.lr,
            "cutoff": self.cutoff,
            "seed": self.seed,
            "loss": self.loss,
            "loss_meaning": LOSS_MEANING[self.loss],
            "welch_bound": self.welch_bound,
            "frame_bound": self.frame_bound,
            "rms_bound": self.rms_bound,
            "all_within_89_91": self.all_within_89_91,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "losses": list(self.losses),
            "seconds": self.seconds,
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        from factscope.report.superposition_html import jl_fragment  # display only

        return jl_fragment(self.to_dict())


def jl_notes(result_before: AngleStats, result_after: AngleStats, n: int, dim: int) -> list[str]:
    """Plain sentences comparing the measurement with the bounds."""
    welch, rms = welch_bound(n, dim), math.sqrt(frame_bound(n, dim))
    near_cos = math.sin(math.radians(1.0))  # |cos| of an angle 1 degree from 90
    notes = [
        f"Welch bound: some pair must have |cos| >= {welch:.4f}, i.e. be at least "
        f"{math.degrees(math.asin(min(1.0, welch))):.2f} degrees from perpendicular; "
        f"'all between 89 and 91 degrees' needs max |cos| <= {near_cos:.4f}.",
        f"Frame bound: RMS cos >= {rms:.4f}; random directions have {result_before.rms_cos:.4f}, "
        f"the optimised ones {result_after.rms_cos:.4f}.",
        f"After optimising, {result_after.share_89_91:.1%} of pairs are within 89-91 degrees "
        f"(before: {result_before.share_89_91:.1%}); the worst pair is at "
        f"{result_after.max_deviation_degrees:.2f} degrees from 90 (before: "
        f"{result_before.max_deviation_degrees:.2f}).",
    ]
    return notes


def run_jl(
    n: int = 10_000,
    dim: int = 100,
    steps: int = VIDEO_STEPS,
    *,
    lr: float = VIDEO_LR,
    cutoff: float = VIDEO_CUTOFF,
    seed: int = 0,
    loss: str = "scene",
    block: int = 512,
    progress: Steps | None = None,
) -> JLResult:
    """The video's experiment end to end: random unit vectors, the optimiser, angle
    statistics before and after, and the bounds."""
    import time

    if n < 2 or dim < 1:
        raise FactscopeError(f"need at least 2 vectors and 1 dimension (got n={n}, dim={dim})")
    power = _power(loss)
    start = random_directions(n, dim, seed)
    before = angle_stats(start)
    began = time.perf_counter()
    final, losses = optimize_directions(
        start, steps, lr=lr, cutoff=cutoff, block=block, power=power, progress=progress
    )
    seconds = time.perf_counter() - began
    after = angle_stats(final)
    return JLResult(
        n=n, dim=dim, steps=steps, lr=lr, cutoff=cutoff, seed=seed, loss=loss, before=before,
        after=after, losses=losses, welch_bound=welch_bound(n, dim),
        frame_bound=frame_bound(n, dim), seconds=seconds,
        notes=jl_notes(before, after, n, dim),
    )  # fmt: skip


def _power(loss: str) -> int:
    if loss not in LOSSES:
        raise FactscopeError(f"--loss {loss!r} is not valid; use one of {', '.join(LOSSES)}")
    return LOSSES[loss]


# ---- capacity -----------------------------------------------------------------------------


def max_abs_cos(vectors: Tensor, block: int = 1024) -> float:
    """The largest |cos| over pairs of rows of `vectors` (N, d), a block of rows at a time."""
    u = _unit_rows(vectors.detach().float())
    n = u.shape[0]
    worst = 0.0
    for start in range(0, n - 1, block):
        stop = min(start + block, n)
        cos = (u[start:stop] @ u[start:].T).abs_()  # (b, n - start)
        cos[:, : stop - start].triu_(1)  # keep only pairs j > i
        worst = max(worst, float(cos.max()))
    return worst


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


def capacity_point(
    eps: float,
    dim: int,
    *,
    steps: int = VIDEO_STEPS,
    lr: float = VIDEO_LR,
    max_n: int = 2000,
    tolerance: float = 0.1,
    seed: int = 0,
    loss: str = "scene",
    progress: Callable[[str], None] | None = None,
) -> CapacityPoint:
    """The largest N (up to `max_n`) for which the optimiser gets every |cos| <= eps in
    `dim` dimensions: doubling from N = d, then bisection in log N until hi/lo <= 1 +
    tolerance."""
    limit = welch_capacity(eps, dim)
    ceiling = max_n if limit is None else min(max_n, limit + 1)
    trials: list[tuple[int, float]] = []

    def ok(n: int) -> bool:
        achieved = _fits(n, dim, eps, steps, lr, seed, _power(loss))
        trials.append((n, achieved))
        if progress is not None:
            progress(f"eps {eps}, d {dim}: N {n} -> max|cos| {achieved:.4f}")
        return achieved <= eps

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
    progress: Callable[[str], None] | None = None,
) -> CapacityResult:
    """`capacity_point` for every eps and dimension (see `CAPACITY_METHOD`)."""
    eps_list, dim_list = [float(e) for e in eps_values], [int(d) for d in dims]
    for e in eps_list:
        if not 0 < e < 1:
            raise FactscopeError(f"eps must be between 0 and 1 (got {e})")
    for d in dim_list:
        if d < 2:
            raise FactscopeError(f"dimensions must be at least 2 (got {d})")
    points = [
        capacity_point(
            e, d, steps=steps, lr=lr, max_n=max_n, tolerance=tolerance, seed=seed,
            loss=loss, progress=progress,
        )
        for e in eps_list
        for d in dim_list
    ]  # fmt: skip
    _power(loss)  # a known loss
    method = f"{CAPACITY_METHOD} Loss: {LOSS_MEANING[loss]}."
    return CapacityResult(
        eps_list, dim_list, steps, lr, max_n, tolerance, seed, points, method, loss
    )
