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

Geometry limits what any optimiser can reach: angles.py has the Welch and frame bounds
(for N = 10,000 and d = 100 some pair must be at least 5.7 degrees from perpendicular, so
"every pair between 89 and 91 degrees" is impossible) and the angle statistics.
capacity.py asks the converse: for a tolerance eps, how many directions can the optimiser
place with every |cos| <= eps, as d grows. model_angles.py measures the same statistics
for a real model's weight directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch._C._nn import softshrink  # the out= form: one in-place pass over the Gram block

from factscope.errors import FactscopeError
from factscope.progress import Steps
from factscope.read.angles import (
    AngleStats,
    angle_stats,
    frame_bound,
    random_directions,
    welch_bound,
)

VIDEO_CUTOFF = 0.01  # the scene code's dot_diff_cutoff
VIDEO_LR = 0.01
VIDEO_STEPS = 250


# The penalty on each |dot product| past the cutoff: the scene code's, and a variant.
LOSSES: dict[str, int] = {"scene": 1, "squared": 2}  # name -> power of relu(|D| - c)
LOSS_MEANING = {
    "scene": "relu(|G - I| - c), summed: the scene code's loss (L1: for N > d it drives a "
    "few pairs parallel so that the rest can sit within c of perpendicular)",
    "squared": "relu(|G - I| - c)^2, summed: a variant that spreads the overlap evenly, "
    "towards the Welch bound",
}


# ---- the video's optimiser ----------------------------------------------------------------


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
    power = loss_power(loss)
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


def loss_power(loss: str) -> int:
    """The power of relu(|D| - c) that the loss named `loss` (a key of `LOSSES`) uses."""
    if loss not in LOSSES:
        raise FactscopeError(f"--loss {loss!r} is not valid; use one of {', '.join(LOSSES)}")
    return LOSSES[loss]
