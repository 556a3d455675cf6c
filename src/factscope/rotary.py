"""Rotary position embeddings (RoFormer, Su et al. 2021): each query and key head is
turned by an angle that grows with its position, so their dot product depends only on
the distance between the two tokens.

`rotary_cos_sin` computes the tables, `RotaryTables` shares them between the layers of
one pass, and `apply_rotary` turns a head by them. Shapes: T tokens, dh d_head, d_rot the
rotated dims (d_rot <= dh).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor


def rotary_cos_sin(
    positions: Tensor,
    d_rot: int,
    theta: float,
    scaling: float = 1.0,
    factors: tuple[float, ...] | None = None,
) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotation angles, (T, d_rot), in float32.

    Dimension i of the first half of the rotated dims is paired with dimension i + d_rot/2
    and turned by the angle position * theta^(-2i/d_rot) / scaling (the "rotate half"
    convention); with per-frequency `factors` (Llama 3), frequency i is divided by its own.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, d_rot, 2, dtype=torch.int64).float() / d_rot))
    inv_freq = inv_freq / (torch.tensor(factors) if factors is not None else scaling)
    angles = positions.float()[:, None] * inv_freq.to(positions.device)[None, :]  # (T, d_rot/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, d_rot)
    return angles.cos(), angles.sin()


RopeKey = tuple[int, float, float, tuple[float, ...] | None]


class RotaryTables:
    """`rotary_cos_sin` once per pass through the blocks instead of once per layer.

    Inside `one_pass()` (which `Transformer.run_blocks` opens) every block gets the same
    positions, so the tables are computed by the first layer of each base (local, global)
    and reused by the others. Outside a pass they are computed on every call. Per thread,
    so concurrent passes never see each other's tables.
    """

    def __init__(self) -> None:
        self.local = threading.local()

    @contextmanager
    def one_pass(self) -> Iterator[None]:
        outer = getattr(self.local, "tables", None)
        self.local.tables = {}
        try:
            yield
        finally:
            self.local.tables = outer

    def get(
        self,
        positions: Tensor,
        d_rot: int,
        theta: float,
        scaling: float,
        factors: tuple[float, ...] | None = None,
    ) -> tuple[Tensor, Tensor]:
        tables: dict[RopeKey, tuple[Tensor, Tensor]] | None = getattr(self.local, "tables", None)
        if tables is None:
            return rotary_cos_sin(positions, d_rot, theta, scaling, factors)
        key = (d_rot, theta, scaling, factors)
        if key not in tables:
            tables[key] = rotary_cos_sin(positions, d_rot, theta, scaling, factors)
        return tables[key]


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each head of x (B, T, n, dh) by the angles of its position; when the tables
    cover fewer dims than a head (d_rot < dh, Pythia), only the first d_rot dims turn.

    The halves (x1, x2) become (x1 cos - x2 sin, x2 cos + x1 sin), computed as
    x * cos + roll(x, dh/2) * (-sin, sin): the same products as x * cos + (-x2, x1) * sin,
    bit for bit, with one roll in place of a negation and a concatenation (whose backward
    in training allocated and zero-filled two tensors).
    """
    d_rot = cos.shape[-1]
    if d_rot < x.shape[-1]:
        return torch.cat([apply_rotary(x[..., :d_rot], cos, sin), x[..., d_rot:]], dim=-1)
    half = d_rot // 2
    signed_sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)  # (T, dh)
    cos, signed_sin = cos[None, :, None, :].to(x.dtype), signed_sin[None, :, None, :].to(x.dtype)
    return x * cos + x.roll(half, dims=-1) * signed_sin
