"""Superposition: the video's JL optimiser against autograd on the scene code's loss, angle
statistics against brute force and the closed-form bounds, the capacity search, the toy
models of superposition, a model's direction angles, reports and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from factscope.cli import main
from factscope.errors import FactscopeError
from factscope.read.angles import (
    angle_stats,
    frame_bound,
    max_abs_cos,
    random_directions,
    welch_bound,
    welch_capacity,
)
from factscope.read.capacity import capacity_point
from factscope.read.model_angles import direction_angles
from factscope.read.superposition import optimize_directions, run_jl, video_loss_and_grad
from factscope.read.toy import (
    ToyModelSummary,
    ToySetup,
    feature_geometry,
    phase_diagram,
    sparsity_sweep,
)
from factscope.report.html import read_report_data
from factscope.report.superposition_html import jl_report, model_report, toy_report


def scene_loss(v: torch.Tensor, cutoff: float = 0.01, power: int = 1) -> torch.Tensor:
    """3b1b/videos _2024/transformers/almost_orthogonal.py's loss, written with autograd."""
    n = v.shape[0]
    diff = v @ v.T - torch.eye(n, dtype=v.dtype)
    return (diff.abs() - cutoff).relu().pow(power).sum() + n * diff.diag().pow(2).sum()


def simplex(d: int) -> torch.Tensor:
    """d + 1 unit vectors in d dimensions with every pairwise cos = -1/d (a regular
    simplex): it meets the Welch bound and the frame bound with equality."""
    e = torch.eye(d + 1, dtype=torch.float64) - 1.0 / (d + 1)  # centred basis, rank d
    q, _ = torch.linalg.qr(e)  # q[:, :d] spans the centred vectors' d-dim subspace
    v = e @ q[:, :d]  # (d + 1, d): coordinates in that subspace
    return v / v.norm(dim=1, keepdim=True)


# ---- the optimiser ------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "dim", "block"), [(50, 8, 16), (257, 10, 64), (300, 20, 512)])
@pytest.mark.parametrize("power", [1, 2])
def test_loss_and_gradient_match_autograd_on_the_scene_loss(
    n: int, dim: int, block: int, power: int
) -> None:
    g = torch.Generator().manual_seed(n)
    v = torch.randn(n, dim, generator=g, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True) * (1 + 0.05 * torch.randn(n, 1, generator=g, dtype=v.dtype))
    ref = v.clone().requires_grad_(True)
    expected = scene_loss(ref, power=power)
    expected.backward()
    loss, grad = video_loss_and_grad(v, 0.01, block, power)
    assert loss == pytest.approx(float(expected.detach()), rel=1e-12)
    assert ref.grad is not None
    torch.testing.assert_close(grad, ref.grad, rtol=1e-10, atol=1e-10)


def test_optimizer_follows_autograd_adam() -> None:
    start = random_directions(60, 8, seed=1, dtype=torch.float64)
    v = start.clone().requires_grad_(True)
    adam = torch.optim.Adam([v], lr=0.01)
    for _ in range(20):
        adam.zero_grad()
        scene_loss(v).backward()
        adam.step()
    ours, losses = optimize_directions(start, 20, block=16)
    assert len(losses) == 20
    torch.testing.assert_close(ours, v.detach(), rtol=0, atol=1e-9)


def test_jl_small_case_improves_on_random_and_respects_welch() -> None:
    # The squared variant spreads the overlap: max |cos| falls well below the random
    # start, and neither statistic can beat geometry.
    result = run_jl(20, 10, 250, seed=0, loss="squared")
    assert result.after.max_abs_cos < 0.8 * result.before.max_abs_cos
    assert result.after.max_abs_cos >= result.welch_bound - 1e-6
    assert result.after.rms_cos >= math.sqrt(frame_bound(20, 10)) - 1e-6
    assert result.after.rms_cos == pytest.approx(result.rms_bound, rel=0.01)  # a tight frame


def test_scene_loss_orthogonalises_when_n_equals_d_and_piles_up_pairs_when_n_exceeds_d() -> None:
    square = run_jl(10, 10, 250, seed=0)
    assert square.before.max_abs_cos > 0.3
    assert square.after.max_abs_cos < 0.03  # an orthonormal basis, up to the cutoff
    # One vector more and the L1 loss prefers two parallel vectors to spreading overlap.
    crowded = run_jl(40, 20, 250, seed=0)
    assert crowded.after.max_abs_cos > crowded.before.max_abs_cos
    assert crowded.after.max_abs_cos >= crowded.welch_bound
    assert crowded.after.share_89_91 > 0.9 > crowded.before.share_89_91
    assert not crowded.all_within_89_91


# ---- bounds and statistics ----------------------------------------------------------------


def test_bounds_closed_form_and_met_by_a_simplex() -> None:
    assert welch_bound(10_000, 100) == pytest.approx(math.sqrt(9900 / (100 * 9999)))
    assert frame_bound(10_000, 100) == pytest.approx(99 / 9999)
    assert welch_bound(5, 5) == 0.0 and frame_bound(3, 5) == 0.0
    for d in (3, 7):
        stats = angle_stats(simplex(d))
        assert stats.max_abs_cos == pytest.approx(welch_bound(d + 1, d), rel=1e-6)
        assert stats.rms_cos**2 == pytest.approx(frame_bound(d + 1, d), rel=1e-6)
    assert welch_capacity(0.1, 50) == 99  # 50 * 0.99 / 0.5
    assert welch_bound(99, 50) <= 0.1 + 1e-12 < welch_bound(100, 50)
    assert welch_capacity(0.2, 200) is None


def test_angle_stats_match_brute_force() -> None:
    v = torch.randn(300, 12, generator=torch.Generator().manual_seed(0))
    stats = angle_stats(v.double(), block=64)
    u = (v / v.norm(dim=1, keepdim=True)).double().numpy()
    cos = (u @ u.T)[np.triu_indices(300, 1)]
    angles = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    assert stats.pairs == cos.size == sum(stats.histogram)
    assert stats.max_abs_cos == pytest.approx(np.abs(cos).max(), rel=1e-5)
    assert max_abs_cos(v, block=50) == pytest.approx(np.abs(cos).max(), rel=1e-5)
    assert stats.rms_cos == pytest.approx(np.sqrt((cos**2).mean()), rel=1e-5)
    assert stats.mean_cos == pytest.approx(cos.mean(), abs=1e-6)
    assert stats.share_89_91 == pytest.approx(((angles >= 89) & (angles <= 91)).mean(), abs=1e-3)
    expected, _ = np.histogram(angles, bins=1800, range=(0, 180))
    assert np.abs(np.asarray(stats.histogram) - expected).sum() <= 2  # edges: rounding
    with pytest.raises(FactscopeError, match="zero vector"):
        angle_stats(torch.zeros(3, 2))


def test_capacity_point_brackets_a_feasible_n() -> None:
    point = capacity_point(0.3, 6, steps=150, max_n=40, loss="squared")
    assert point.largest_n >= 6
    limit = welch_capacity(0.3, 6)
    assert limit is not None and point.largest_n <= limit
    tried = dict(point.trials)
    if point.largest_n > 6:
        assert tried[point.largest_n] <= 0.3
    if point.first_failure is not None:
        assert tried[point.first_failure] > 0.3
        assert point.first_failure > point.largest_n


# ---- toy models ---------------------------------------------------------------------------


def test_feature_geometry_of_known_arrangements() -> None:
    angles = torch.arange(5) * 2 * math.pi / 5
    pentagon = torch.stack([angles.cos(), angles.sin()])  # (2, 5): five features in 2 dims
    geometry = feature_geometry(pentagon)
    torch.testing.assert_close(geometry["dimensionality"], torch.full((5,), 0.4))
    antipodal = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])  # two share, one alone
    geometry = feature_geometry(antipodal)
    torch.testing.assert_close(geometry["dimensionality"], torch.tensor([0.5, 0.5, 1.0]))
    torch.testing.assert_close(geometry["superposition"], torch.tensor([1.0, 1.0, 0.0]))


def test_toy_model_uses_superposition_only_when_sparse() -> None:
    setup = ToySetup(n_features=8, n_hidden=3, steps=2500, batch=256, lr=3e-3, seed=0)
    dense, sparse = sparsity_sweep(setup, (0.0, 0.97))
    assert dense.represented <= 3  # like PCA: the m most important features
    assert dense.norms[:3] == pytest.approx([1.0] * 3, abs=0.05)

    def shared(model: ToyModelSummary) -> float:  # the most-shared represented feature
        return max(s for s, w in zip(model.superposition, model.norms, strict=True) if w > 0.5)

    assert shared(dense) < 0.05  # orthogonal directions
    assert sparse.represented > 3
    assert shared(sparse) > 0.2
    assert sparse.dims_per_feature < dense.dims_per_feature


def test_phase_diagram_corners() -> None:
    phase = phase_diagram([1.0, 0.02], [0.2, 5.0], steps=1500, batch=256, seeds=2)
    grid = phase.phase  # rows: density, columns: relative importance
    assert grid[0][0] == 0  # dense, extra feature unimportant: dropped
    assert grid[0][1] == 1  # dense, extra feature more important: it takes the dimension
    # sparse, extra feature more important: both share the one dimension (seeds 0, 1, 2 all
    # give it; the sparse, unimportant cell sits near the boundary and is left unasserted)
    assert grid[1][1] == 2


# ---- a model's directions -----------------------------------------------------------------


class _TinyLM:
    def __init__(self) -> None:
        from reference_models import random_model

        self.model = random_model("gemma3", seed=0)
        self.cfg = self.model.cfg
        self.name = "tiny"


def test_direction_angles_on_a_tiny_model() -> None:
    lm = _TinyLM()
    with torch.no_grad():  # layer 0's up rows: a harmonic frame, an equal-norm tight frame
        w = lm.model.blocks[0].mlp.up_proj.weight  # (d_mlp, d) = (48, 32)
        phase = 2 * math.pi * torch.outer(torch.arange(48.0), torch.arange(1.0, 17.0)) / 48
        w.copy_(torch.cat([phase.cos(), phase.sin()], dim=1))  # (48, 16 + 16)
    result = direction_angles(lm, layers=[0, 2], unembed_sample=50)
    kinds = [(s.kind, s.layer) for s in result.sets]
    assert kinds == [("gate", 0), ("gate", 2), ("up", 0), ("up", 2), ("down", 0), ("down", 2),
                     ("unembed", None)]  # fmt: skip
    up0 = result.sets[2].stats
    rms_bound = result.bounds("up")["rms"]
    assert up0.rms_cos == pytest.approx(rms_bound, rel=1e-4)  # orthonormal columns: tight
    assert result.random["unembed"].n == 50
    data = result.to_dict()
    assert sum(data["histograms"]["up"]) == 2 * 48 * 47 // 2
    assert read_report_data(model_report(data))["model"] == "tiny"
    with pytest.raises(FactscopeError, match="unknown layer 9"):
        direction_angles(lm, layers=[9])


# ---- reports and the command line ---------------------------------------------------------


def test_jl_report_round_trip_and_repr() -> None:
    result = run_jl(30, 6, 5, seed=1)
    data = json.loads(json.dumps(result.to_dict()))
    page = jl_report(data)
    assert read_report_data(page)["jl"]["n"] == 30
    assert "<svg" in result._repr_html_()


def test_toy_report_round_trip() -> None:
    from factscope.read.toy import run_toy

    result = run_toy(
        ToySetup(n_features=6, n_hidden=2, steps=20, batch=32),
        sparsities=(0.0, 0.9),
        dim_setup=ToySetup(n_features=10, n_hidden=3, steps=20, batch=32),
        dim_points=3,
        phase_points=2,
        phase_steps=10,
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert len(data["sweep"][0]["gram"]) == 6
    assert read_report_data(toy_report(data))["phase"]["phase"]


def test_cli_jl_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "jl"
    args = ["superposition", "jl", "--n", "40", "--dim", "8", "--steps", "5", "--out", str(out)]
    assert main(args) == 0
    data = json.loads((out / "jl.json").read_text())
    assert data["n"] == 40 and data["steps"] == 5 and len(data["losses"]) == 5
    assert {p.name for p in out.iterdir()} == {"jl.json", "report.html", "jl_angles.png",
                                               "jl_loss.png"}  # fmt: skip
    assert main(args) == 2  # no overwrite without --force
    assert "already exists" in capsys.readouterr().err


def test_cli_params_video_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", "gpt3", "--video", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == 175_181_291_520
    assert data["rows"]["up-projection"] == 57_982_058_496
