"""Toy Models of Superposition (Elhage et al., 2022): when does a model pack more features
than it has dimensions?

The toy model maps n features into m < n dimensions and back with one matrix W (m, n):

    h = W x,    x' = ReLU(W^T h + b) = ReLU(W^T W x + b)

trained to reconstruct x under the loss sum_i I_i (x_i - x'_i)^2, where feature i has
importance I_i. Each feature is zero with probability S (the sparsity) and otherwise
uniform on [0, 1]. With dense features the model keeps the m most important ones on
orthogonal directions, like PCA, and drops the rest. With sparse features it is worth
representing more than m features at the price of interference, which the ReLU and a
negative bias filter out: the columns of W overlap and W^T W gets off-diagonal terms.

Many models train at once, one per "instance" (a sparsity, an importance profile), with
one batched matrix product, as the paper's code does.

Measurements, each as the paper defines it:
- feature norm ||W_i||: how strongly feature i is represented (about 1 or about 0);
- superposition of feature i: sum_{j != i} (W_i/||W_i|| . W_j)^2, how much of feature i's
  direction other features share (0: a dedicated direction);
- feature dimensionality D_i = ||W_i||^2 / sum_j (W_i/||W_i|| . W_j)^2 (1 for a
  dedicated dimension, 1/2 for an antipodal pair, 2/5 for a pentagon, ...);
- dimensions per feature m / ||W||_F^2, which sticks at fractions as sparsity grows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.progress import Steps

PAPER_SPARSITIES = (0.0, 0.7, 0.9, 0.97, 0.99, 0.997, 0.999)  # the paper's n=20, m=5 figure
STICKY_FRACTIONS = (1.0, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8)  # plateaus of m / ||W||_F^2
REPRESENTED = 0.5  # a feature with ||W_i|| above this counts as represented


@dataclass(frozen=True)
class ToySetup:
    """How to train a batch of toy models (the paper's defaults where it gives them)."""

    n_features: int = 20
    n_hidden: int = 5
    steps: int = 10_000
    batch: int = 1024
    lr: float = 1e-3
    seed: int = 0


def train_toy_models(
    setup: ToySetup,
    density: Tensor,
    importance: Tensor,
    *,
    progress: Steps | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Train one toy model per instance; return W (I, m, n), b (I, n) and the final loss
    per instance (I,), averaged over the last 10% of steps.

    `density` (I, n) is each feature's probability of being nonzero (1 - S), `importance`
    (I, n) its weight in the loss. Adam at `setup.lr`, W initialised Xavier-normal and b at
    zero, a fresh batch of `setup.batch` samples per step, as in the paper's notebook.
    """
    instances, n = density.shape
    m = setup.n_hidden
    if importance.shape != density.shape or n != setup.n_features:
        raise FactscopeError("density and importance must both be (instances, n_features)")
    if m < 1 or n < 1:
        raise FactscopeError(f"need at least one feature and one dimension (got n={n}, m={m})")
    generator = torch.Generator().manual_seed(setup.seed)
    std = (2.0 / (m + n)) ** 0.5  # Xavier normal for an (m, n) matrix
    w = (torch.randn(instances, m, n, generator=generator) * std).requires_grad_(True)
    b = torch.zeros(instances, n, requires_grad=True)
    optimizer = torch.optim.Adam([w, b], lr=setup.lr)
    tail = max(1, setup.steps // 10)
    recent = torch.zeros(instances)
    for step in range(setup.steps):
        values = torch.rand(instances, setup.batch, n, generator=generator)
        on = torch.rand(instances, setup.batch, n, generator=generator) < density[:, None, :]
        x = values * on  # (I, batch, n): sparse features in [0, 1]
        h = torch.einsum("imn,ibn->ibm", w, x)  # (I, batch, m)
        out = torch.relu(torch.einsum("imn,ibm->ibn", w, h) + b[:, None, :])  # (I, batch, n)
        per_instance = (importance[:, None, :] * (x - out) ** 2).sum(-1).mean(-1)  # (I,)
        optimizer.zero_grad()
        per_instance.sum().backward()
        optimizer.step()
        if step >= setup.steps - tail:
            recent += per_instance.detach()
        if progress is not None:
            progress(1)
    return w.detach(), b.detach(), recent / tail


def feature_geometry(w: Tensor) -> dict[str, Tensor]:
    """The paper's per-feature measurements of one model's W (m, n): norms (n,),
    superposition (n,), dimensionality (n,) and W^T W (n, n)."""
    gram = w.T @ w  # (n, n): W_i . W_j
    norms = gram.diagonal().clamp_min(0).sqrt()  # (n,)
    unit_dots = gram / norms.clamp_min(1e-12)[:, None]  # row i: W_i/||W_i|| . W_j
    shared = unit_dots.square()  # (n, n)
    total = shared.sum(1)  # sum_j (W_i_hat . W_j)^2, including j = i (= ||W_i||^2)
    superposition = total - shared.diagonal()
    dimensionality = torch.where(norms > 1e-6, norms.square() / total.clamp_min(1e-12), 0.0)
    return {
        "gram": gram,
        "norms": norms,
        "superposition": superposition,
        "dimensionality": dimensionality,
    }


def _rounded(values: Tensor, digits: int = 5) -> list[Any]:
    return torch.round(values.double(), decimals=digits).tolist()


@dataclass(frozen=True)
class ToyModelSummary:
    """One trained toy model: its sparsity, W^T W, b and the per-feature measurements."""

    sparsity: float
    loss: float
    gram: list[list[float]]  # W^T W (n, n)
    bias: list[float]
    norms: list[float]
    superposition: list[float]
    dimensionality: list[float]
    represented: int  # features with ||W_i|| > 0.5
    dims_per_feature: float  # m / ||W||_F^2

    @classmethod
    def of(cls, w: Tensor, b: Tensor, sparsity: float, loss: float) -> ToyModelSummary:
        geometry = feature_geometry(w)
        frob = float(w.square().sum())
        return cls(
            sparsity=sparsity,
            loss=loss,
            gram=_rounded(geometry["gram"]),
            bias=_rounded(b),
            norms=_rounded(geometry["norms"]),
            superposition=_rounded(geometry["superposition"]),
            dimensionality=_rounded(geometry["dimensionality"]),
            represented=int((geometry["norms"] > REPRESENTED).sum()),
            dims_per_feature=w.shape[0] / frob if frob > 0 else float("inf"),
        )


@dataclass(frozen=True)
class PhaseDiagram:
    """n = 2 features into m = 1 dimension: which phase the trained model lands in, over a
    grid of feature density (both features) and the extra feature's relative importance.

    phase[i][j] for density[i] and importance[j]: 0 = only feature 1 represented (the extra
    feature is dropped), 1 = only the extra feature represented (it takes the dimension),
    2 = both, in superposition (antipodal: W = (w1, w2) with opposite signs), -1 = neither.
    """

    densities: list[float]
    importances: list[float]
    phase: list[list[int]]
    w: list[list[list[float]]]  # (densities, importances, 2)
    steps: int
    seeds: int

    PHASES = ("extra feature not represented", "extra feature gets the dimension",
              "superposition", "nothing represented")  # fmt: skip


@dataclass(frozen=True)
class ToyResult:
    """The toy-model experiments: the n=20, m=5 sparsity sweep, the dimensionality sweep and
    the n=2, m=1 phase diagram."""

    sweep_setup: ToySetup
    importance_decay: float
    sweep: list[ToyModelSummary]
    dim_setup: ToySetup | None
    dim_densities: list[float]
    dims: list[ToyModelSummary]
    phase: PhaseDiagram | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "kind": "toy",
            "sweep_setup": asdict(self.sweep_setup),
            "importance_decay": self.importance_decay,
            "sweep": [asdict(s) for s in self.sweep],
            "dim_setup": asdict(self.dim_setup) if self.dim_setup else None,
            "dim_densities": list(self.dim_densities),
            "dims": [
                {k: v for k, v in asdict(s).items() if k not in ("gram", "bias")} for s in self.dims
            ],
            "sticky_fractions": list(STICKY_FRACTIONS),
            "phase": asdict(self.phase) if self.phase else None,
            "phase_names": list(PhaseDiagram.PHASES),
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        from factscope.report.superposition_html import toy_fragment  # display only

        return toy_fragment(self.to_dict())


def sparsity_sweep(
    setup: ToySetup,
    sparsities: Sequence[float] = PAPER_SPARSITIES,
    importance_decay: float = 0.7,
    *,
    progress: Steps | None = None,
) -> list[ToyModelSummary]:
    """The paper's first figure: n features of importance decay^i into m dimensions, one
    model per sparsity."""
    for s in sparsities:
        if not 0.0 <= s < 1.0:
            raise FactscopeError(f"sparsity must be in [0, 1) (got {s})")
    n = setup.n_features
    density = torch.tensor([[1.0 - s] * n for s in sparsities])  # (I, n)
    importance = (importance_decay ** torch.arange(n, dtype=torch.float32)).expand(
        len(sparsities), n
    )
    w, b, loss = train_toy_models(setup, density, importance.contiguous(), progress=progress)
    return [
        ToyModelSummary.of(w[i], b[i], float(s), float(loss[i])) for i, s in enumerate(sparsities)
    ]


def dimensionality_sweep(
    setup: ToySetup, densities: Sequence[float], *, progress: Steps | None = None
) -> list[ToyModelSummary]:
    """Features of equal importance at many densities: m / ||W||_F^2 and each feature's
    dimensionality D_i, the paper's "feature dimensionality" figure."""
    n = setup.n_features
    density = torch.tensor([[float(p)] * n for p in densities])  # (I, n)
    importance = torch.ones_like(density)
    w, b, loss = train_toy_models(setup, density, importance, progress=progress)
    return [
        ToyModelSummary.of(w[i], b[i], 1.0 - float(p), float(loss[i]))
        for i, p in enumerate(densities)
    ]


def phase_diagram(
    densities: Sequence[float],
    importances: Sequence[float],
    *,
    steps: int = 4000,
    batch: int = 256,
    lr: float = 1e-2,
    seeds: int = 2,
    seed: int = 0,
    progress: Steps | None = None,
) -> PhaseDiagram:
    """Train n=2, m=1 models over the grid (feature density x relative importance of the
    second feature; the first has importance 1), `seeds` runs per cell keeping the one
    with the lowest loss, and classify each by which features have ||W_i|| > 0.5."""
    grid = [(p, r) for p in densities for r in importances]
    cells = len(grid)
    density = torch.tensor([[p, p] for p, _ in grid] * seeds)  # (seeds * cells, 2)
    importance = torch.tensor([[1.0, r] for _, r in grid] * seeds)
    setup = ToySetup(n_features=2, n_hidden=1, steps=steps, batch=batch, lr=lr, seed=seed)
    w, _, loss = train_toy_models(setup, density, importance, progress=progress)
    w = w.reshape(seeds, cells, 2)  # (seeds, cells, m * n) with m = 1
    best = loss.reshape(seeds, cells).argmin(0)  # (cells,)
    chosen = w[best, torch.arange(cells)]  # (cells, 2)
    on = chosen.abs() > REPRESENTED  # (cells, 2)
    phase = torch.full((cells,), -1, dtype=torch.long)
    phase[on[:, 0] & ~on[:, 1]] = 0
    phase[~on[:, 0] & on[:, 1]] = 1
    phase[on[:, 0] & on[:, 1]] = 2
    shape = (len(densities), len(importances))
    return PhaseDiagram(
        densities=[float(p) for p in densities],
        importances=[float(r) for r in importances],
        phase=phase.reshape(shape).tolist(),
        w=_rounded(chosen.reshape(*shape, 2), 4),
        steps=steps,
        seeds=seeds,
    )


def log_spaced(low: float, high: float, count: int) -> list[float]:
    """`count` values from `low` to `high`, evenly spaced in log."""
    return torch.logspace(
        torch.log10(torch.tensor(low)), torch.log10(torch.tensor(high)), count
    ).tolist()


def run_toy(
    sweep_setup: ToySetup = ToySetup(),
    *,
    sparsities: Sequence[float] = PAPER_SPARSITIES,
    importance_decay: float = 0.7,
    dim_setup: ToySetup | None = ToySetup(n_features=200, n_hidden=20, steps=5000, batch=256),
    dim_points: int = 24,
    min_density: float = 0.003,
    phase_points: int = 16,
    phase_steps: int = 4000,
    progress: Steps | None = None,
) -> ToyResult:
    """All three toy experiments with the given setups (see `ToyResult`)."""
    sweep = sparsity_sweep(sweep_setup, sparsities, importance_decay, progress=progress)
    densities = log_spaced(1.0, min_density, dim_points) if dim_setup else []
    dims = dimensionality_sweep(dim_setup, densities, progress=progress) if dim_setup else []
    phase = (
        phase_diagram(
            log_spaced(1.0, 0.01, phase_points), log_spaced(0.1, 10.0, phase_points),
            steps=phase_steps, seed=sweep_setup.seed, progress=progress,
        )
        if phase_points
        else None
    )  # fmt: skip
    m = sweep_setup.n_hidden
    dense, sparse = sweep[0], sweep[-1]
    notes = [
        f"Sparsity {dense.sparsity}: {dense.represented} of {sweep_setup.n_features} features "
        f"represented (||W_i|| > {REPRESENTED}) in {m} dimensions; sparsity "
        f"{sparse.sparsity}: {sparse.represented}.",
    ]
    return ToyResult(sweep_setup, importance_decay, sweep, dim_setup, densities, dims, phase, notes)
