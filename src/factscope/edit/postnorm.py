"""A wanted change of an MLP's output, mapped back through a post-norm (Gemma 2/3).

Gemma's MLP writes o = g ⊙ y / rms(y) into the residual stream, where y is down_proj's
output and g the post-norm's weight. A batch editor (MEMIT, AlphaEdit) decides on a wanted
output t = o + r, but it can only change y. Which y should it ask for?

**What the norm can produce.** Write v = y / rms(y), so ‖v‖² = D whatever y is, and the
output is g ⊙ v. The outputs reachable from *any* y are therefore the ellipsoid
{g ⊙ v : ‖v‖² = D}; a t off that set cannot be produced exactly.

**The nearest reachable output.** Minimise ‖g ⊙ v − t‖² subject to ‖v‖² = D. The
Lagrangian condition is g²v − g t + μ v = 0 for one scalar μ, so

    v_i = g_i t_i / (g_i² + μ),      with μ such that  Σ_i g_i² t_i² / (g_i² + μ)² = D.

The left side decreases monotonically in μ on (−min g², ∞), from +∞ to 0, so exactly one μ
there meets the constraint, and it is the global minimum (the trust-region condition
g² + μ ≥ 0); it is found by bisection, one μ per key. Coordinates where g = 0 produce 0
whatever v is: they cannot move, are left out of the distance, and keep their current
v_i (so the budget left to the live coordinates is D − Σ_dead v_i²). The down_proj output
asked for is y' = rms(y) · v: the same scale as y (the norm ignores the scale), and
norm(y') = g ⊙ v.

**What the first version did, and why it missed.** It asked for y' ∝ t / g, i.e.
v = (t/g) / ρ with ρ = rms(t/g). That output is t / ρ: the wanted vector divided by how far
off the ellipsoid it lies. On gemma-3-270m, whose post-MLP weights range from exactly 0 to
~790, r/g is huge in the few coordinates where g is small, ρ is 1.5–30, and the achieved
change pointed mostly away from r. The nearest-point map never moves farther from t than o
does: its error ‖g ⊙ v − t‖ is at most ‖r‖, and 0 when t is reachable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class NormTarget:
    """The down_proj outputs to ask for, and how well they reach the wanted outputs."""

    y: Tensor  # (n, D) down_proj outputs whose normed value is nearest to t
    output: Tensor  # (n, D) g ⊙ v: the output they produce (norm eps ignored)
    rho: Tensor  # (n,) rms(t/g) (dead coordinates at their v): 1 when t is on the ellipsoid
    error: Tensor  # (n,) ‖output − t‖ / ‖t − o‖: the part of the wanted change out of reach


def nearest_reachable(g: Tensor, y: Tensor, t: Tensor, iterations: int = 200) -> NormTarget:
    """The down_proj outputs y' (n, D) whose post-norm output g ⊙ y'/rms(y') is nearest to
    the wanted outputs t (n, D), for current down_proj outputs y (n, D) and norm weight g
    (D,); float64 throughout. See the module docstring for the derivation."""
    g64, y64, t64 = g.detach().double(), y.detach().double(), t.detach().double()
    D = g64.shape[0]
    rms_y = y64.pow(2).mean(-1, keepdim=True).sqrt()  # (n, 1)
    v0 = y64 / rms_y  # (n, D) current normed direction, ‖v0‖² = D
    o = g64 * v0  # (n, D) current output
    dead = g64.abs() <= 1e-9 * g64.abs().max()  # (D,) coordinates the norm always zeroes
    live_g = torch.where(dead, torch.zeros_like(g64), g64)
    budget = D - (v0.pow(2) * dead).sum(-1, keepdim=True)  # (n, 1) ‖v_live‖² allowed
    gt2 = (live_g * t64).pow(2)  # (n, D)
    g2 = live_g.pow(2)  # (D,)

    def norm2(mu: Tensor) -> Tensor:  # (n, 1) -> (n, 1): Σ g²t²/(g²+μ)² over live coords
        return (gt2 / (g2 + mu).pow(2)).where(~dead, torch.zeros_like(gt2)).sum(-1, keepdim=True)

    g2_min = g2[~dead].min()
    lo = torch.full_like(budget, -float(g2_min))  # norm2 -> inf here (unless t_i = 0 there)
    hi = (gt2.sum(-1, keepdim=True) / budget).sqrt().clamp(min=0.0) + 1e-300  # norm2(hi) <= budget
    for _ in range(iterations):
        mid = (lo + hi) / 2
        too_long = norm2(mid) > budget
        lo = torch.where(too_long, mid, lo)
        hi = torch.where(too_long, hi, mid)
    mu = hi
    v = torch.where(dead, v0, live_g * t64 / (g2 + mu))  # (n, D)
    output = g64 * v
    y_new = rms_y * v
    t_over_g = torch.where(dead, v0, t64 / torch.where(dead, torch.ones_like(g64), g64))
    rho = t_over_g.pow(2).mean(-1).sqrt()
    wanted = (t64 - o).norm(dim=-1).clamp(min=1e-300)
    error = (output - t64).norm(dim=-1) / wanted
    return NormTarget(y_new, output, rho, error)
