"""MEMIT and AlphaEdit: the closed forms against the authors' formulas, the null-space
guarantee, sequential state, and end-to-end edits of tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from factscope.edit import EditRequest, edit
from factscope.edit.memit import (
    AlphaEditState,
    MEMITHyperParams,
    alphaedit_update,
    apply_memit,
    edit_layers,
    memit_update,
    nullspace_projector,
)
from factscope.edit.stats import KeyStats
from test_rome import PROMPT, p_answer, tiny_lm, tiny_stats

TINY = MEMITHyperParams(
    v_weight_decay=1e-3, v_num_grad_steps=30, clamp_norm_factor=50, n_layers=2,
    mom2_update_weight=10.0,
)  # fmt: skip


def authors_memit(layer_ks: np.ndarray, targets: np.ndarray, cov: np.ndarray, w: float,
                  n_layers: int, i: int) -> np.ndarray:  # fmt: skip
    """memit_main.execute_memit's update for layer i of n_layers, written with numpy:
    adj_k = solve(w·cov + K Kᵀ, K); resid = targets / (n_layers − i); upd = resid adj_kᵀ."""
    adj_k = np.linalg.solve(w * cov + layer_ks @ layer_ks.T, layer_ks)
    resid = targets / (n_layers - i)
    return resid @ adj_k.T


def test_memit_update_equals_the_authors_closed_form_and_is_the_least_squares_optimum() -> None:
    g = torch.Generator().manual_seed(0)
    F, D, n = 24, 10, 5
    K = torch.randn(F, n, generator=g, dtype=torch.float64)
    R = torch.randn(D, n, generator=g, dtype=torch.float64)
    keys0 = torch.randn(F, 200, generator=g, dtype=torch.float64)
    C = keys0 @ keys0.T / 200
    ours = memit_update(K, R / 3, C, 15.0)
    theirs = authors_memit(K.numpy(), R.numpy(), C.numpy(), 15.0, n_layers=5, i=2)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-10, atol=1e-12)
    # it minimises ‖ΔW K − R'‖² + λ tr(ΔW C ΔWᵀ): the gradient vanishes
    grad = (ours @ K - R / 3) @ K.T + 15.0 * ours @ C
    assert float(grad.abs().max()) < 1e-9


def test_independent_facts_in_one_batch_each_get_their_own_value() -> None:
    """Orthogonal keys and C = I: the batch update writes each residual at its own key, as
    the closed form says when the facts do not interact."""
    F, D = 16, 6
    K = torch.eye(F, dtype=torch.float64)[:, :3] * 4.0  # three orthogonal keys
    R = torch.randn(D, 3, dtype=torch.float64)
    delta = memit_update(K, R, torch.eye(F, dtype=torch.float64), 1e-9)
    torch.testing.assert_close(delta @ K, R)
    one = memit_update(K[:, :1], R[:, :1], torch.eye(F, dtype=torch.float64), 1e-9)
    torch.testing.assert_close(one @ K[:, :1], R[:, :1])  # the same fact alone: same output


def test_alphaedit_update_leaves_the_preserved_keys_outputs_in_place() -> None:
    g = torch.Generator().manual_seed(1)
    F, D = 32, 8
    preserved = torch.randn(F, 20, generator=g, dtype=torch.float64)  # spans 20 of 32 dims
    C = preserved @ preserved.T / 20
    P, dim, energy = nullspace_projector(C, 2e-2)
    assert dim == F - 20
    assert energy < 1e-12  # the preserved keys have no energy in their null space
    _, dim_all, energy_all = nullspace_projector(C, float("inf"))
    assert dim_all == F and energy_all == pytest.approx(1.0)
    eigenvalues = torch.linalg.eigvalsh(C)  # ascending
    _, dim_e, energy_e = nullspace_projector(C, 2e-2, energy=0.1)  # per model: a share of tr C
    assert energy_e <= 0.1 < float(eigenvalues[: dim_e + 1].sum() / eigenvalues.sum())
    K = torch.randn(F, 4, generator=g, dtype=torch.float64)
    R = torch.randn(D, 4, generator=g, dtype=torch.float64)
    delta = alphaedit_update(K, R, P, torch.zeros(F, F, dtype=torch.float64), 10.0)
    W = torch.randn(D, F, generator=g, dtype=torch.float64)
    before, after = W @ preserved, (W + delta) @ preserved
    assert float((after - before).norm() / before.norm()) < 1e-4
    torch.testing.assert_close(delta, delta @ P)  # ΔW lies in the row space of P
    # the authors' solve: upd = solve(P (K Kᵀ + C_p) + α I, P K Rᵀ), ΔW = updᵀ
    upd = np.linalg.solve(P.numpy() @ (K.numpy() @ K.numpy().T) + 10.0 * np.eye(F),
                          P.numpy() @ K.numpy() @ R.numpy().T)  # fmt: skip
    np.testing.assert_allclose(delta.numpy(), upd.T, rtol=1e-8, atol=1e-10)


def test_edit_layers_end_at_the_given_layer() -> None:
    assert edit_layers(8, 5) == [4, 5, 6, 7, 8]
    assert edit_layers(2, 5) == [0, 1, 2]


def test_memit_batch_edit_of_a_tiny_model_raises_the_new_answers() -> None:
    lm = tiny_lm("llama", seed=1)
    prompts = [PROMPT, "Fact Jordan plays the sport of"]  # subject at the end (see test_rome)
    news = ["plays", "Michael"]
    requests = [EditRequest(p, "the sport of", n) for p, n in zip(prompts, news, strict=True)]
    before = [p_answer(lm, p, n) for p, n in zip(prompts, news, strict=True)]
    weights = {n: w.detach().clone() for n, w in lm.model.state_dict().items()}
    handle = edit(lm, requests, "memit", layer=2, hparams=TINY, stats=tiny_stats(lm, [1, 2]))
    after = [p_answer(lm, p, n) for p, n in zip(prompts, news, strict=True)]
    assert all(a > 3 * b for a, b in zip(after, before, strict=True)), (before, after)
    assert sorted(handle.weight_change()) == [1, 2]
    handle.undo()
    assert all(torch.equal(weights[n], w) for n, w in lm.model.state_dict().items())


def test_alphaedit_on_a_tiny_model_keeps_preserved_keys_and_runs_sequentially() -> None:
    lm = tiny_lm("gemma3", seed=3)
    layers = [1, 2]
    F = lm.cfg.d_mlp
    # preserved keys: 30 corpus keys per layer (fewer than d_mlp = 48, so C has a null space)
    stats_full = tiny_stats(lm, layers)
    preserved: dict[int, torch.Tensor] = {}
    stats: dict[int, KeyStats] = {}
    for l in layers:
        eigenvalues, vectors = torch.linalg.eigh(stats_full[l].moment)
        top = vectors[:, -30:] * eigenvalues[-30:].sqrt().clamp(min=1.0)  # (F, 30): C's top space
        preserved[l] = top
        stats[l] = KeyStats(l, top @ top.T, 1, "test")
    state = AlphaEditState.from_stats(stats, 2e-2)
    assert all(state.null_dims[l] == F - 30 for l in layers)
    W0 = {l: lm.model.blocks[l].mlp.down_proj.weight.detach().double().clone() for l in layers}
    first = apply_memit(lm, [EditRequest(PROMPT, "the sport of", "plays")], 2, TINY,
                        method="alphaedit", stats=stats, state=state)  # fmt: skip
    for l in layers:
        W = lm.model.blocks[l].mlp.down_proj.weight.detach().double()
        moved = float(((W - W0[l]) @ preserved[l]).norm() / (W0[l] @ preserved[l]).norm())
        assert moved < 1e-4, (l, moved)
    assert state.n_edits == 1 and float(state.previous[2].abs().sum()) > 0
    request = EditRequest("Fact Jordan plays the sport of", "the sport of", "Michael")
    second = apply_memit(lm, [request],
                         2, TINY, method="alphaedit", stats=stats, state=state)  # fmt: skip
    assert state.n_edits == 2
    second.undo()
    first.undo()
    for l in layers:
        assert torch.equal(lm.model.blocks[l].mlp.down_proj.weight.detach().double(), W0[l])


def test_alphaedit_with_no_null_space_is_an_error() -> None:
    import pytest

    from factscope.edit.stats import identity_stats
    from factscope.errors import FactscopeError

    lm = tiny_lm("llama", seed=1)
    stats = {l: identity_stats(lm.model, l) for l in (1, 2)}  # C = I: every eigenvalue is 1
    with pytest.raises(FactscopeError, match="null space is empty"):
        apply_memit(lm, [EditRequest(PROMPT, "the sport of", "plays")], 2, TINY,
                    method="alphaedit", stats=stats)  # fmt: skip


def _log_uniform_norm(D: int, seed: int) -> torch.Tensor:
    """Post-norm weights spread log-uniformly over 1e-2 … 1e3, as uneven as gemma-3-270m's."""
    u = torch.rand(D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return 10 ** (-2 + 5 * u)


def _normed(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return g * y / y.pow(2).mean(-1, keepdim=True).sqrt()


def _reachable_change(g: torch.Tensor, y: torch.Tensor, size: float, seed: int) -> torch.Tensor:
    """A change r of size `size`·‖o‖ with o + r on the norm's reach {g ⊙ v : ‖v‖² = D}."""
    gen = torch.Generator().manual_seed(seed)
    v0 = y / y.pow(2).mean(-1, keepdim=True).sqrt()
    o = g * v0
    w = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    w = w / (g * w).norm(dim=-1, keepdim=True) * size * o.norm(dim=-1, keepdim=True)
    v = v0 + w
    t = _normed(g, v)
    r = t - o
    return r * (size * o.norm(dim=-1, keepdim=True) / r.norm(dim=-1, keepdim=True))


def test_nearest_reachable_output_reaches_a_reachable_target_through_an_uneven_post_norm() -> None:
    """With norm weights log-uniform over 1e-2 … 1e3 and ‖r‖ = 0.02‖o‖: a reachable o + r is
    reached (the first inversion, y' ∝ (o + r)/g, divided the output by ρ = rms((o + r)/g)
    and missed random targets by ~48‖r‖); a random, unreachable o + r is never missed by
    more than ‖r‖ (o itself is that close) and no other reachable output is nearer."""
    from factscope.edit.postnorm import nearest_reachable

    D, n = 256, 6
    g = _log_uniform_norm(D, seed=0)
    y = torch.randn(n, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    o = _normed(g, y)
    for seed in range(3):  # reachable targets (re-scaled to ‖r‖ = 0.02‖o‖ along the sphere)
        r = _reachable_change(g, y, 0.02, seed)
        t = o + r
        target = nearest_reachable(g, y, t)
        achieved = _normed(g, target.y)
        miss = (achieved - t).norm(dim=-1) / r.norm(dim=-1)
        assert float(miss.max()) < 0.3, miss
        torch.testing.assert_close(target.error, miss, rtol=1e-6, atol=1e-9)
    # random targets: o + r mostly off the reach
    r = torch.randn(n, D, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    r = r * 0.02 * o.norm(dim=-1, keepdim=True) / r.norm(dim=-1, keepdim=True)
    t = o + r
    target = nearest_reachable(g, y, t)
    achieved = _normed(g, target.y)
    miss = (achieved - t).norm(dim=-1)
    assert bool((miss <= r.norm(dim=-1) * (1 + 1e-9)).all())
    assert float(target.rho.min()) > 10  # how far off the reach the first inversion's ρ was
    first = (o + r) / g
    old = _normed(
        g,
        y.pow(2).mean(-1, keepdim=True).sqrt() * first / first.pow(2).mean(-1, keepdim=True).sqrt(),
    )
    assert float(((old - t).norm(dim=-1) / r.norm(dim=-1)).min()) > 10  # the first inversion
    # optimality: projected gradient descent on the sphere from o finds nothing nearer
    v = (y / y.pow(2).mean(-1, keepdim=True).sqrt()).clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=1e-2)
    for _ in range(3000):
        opt.zero_grad()
        loss = (_normed(g, v) - t).pow(2).sum()
        loss.backward()
        opt.step()
    assert bool(((_normed(g, v.detach()) - t).norm(dim=-1) >= miss * (1 - 1e-6)).all())


def test_post_norm_target_keeps_zero_weight_coordinates_and_the_size_of_y() -> None:
    """Norm weights of exactly 0 (gemma-3-270m has them at layers 3 and 4) leave that output
    coordinate at 0 whatever y is: they must not divide by zero, nor move; no change asked
    for means no change; the asked-for y keeps rms(y) (the norm ignores the scale)."""
    from factscope.edit.handle import mlp_of
    from factscope.edit.memit import _down_proj_targets

    lm = tiny_lm("gemma3", seed=2)
    norm = mlp_of(lm.model, 1).post_norm
    assert norm is not None
    with torch.no_grad():
        norm.weight.copy_(_log_uniform_norm(norm.weight.shape[0], seed=3).float())
        norm.weight[:3] = 0.0
    g = norm.weight.detach().double()
    gen = torch.Generator().manual_seed(1)
    y = torch.randn(2, g.shape[0], generator=gen, dtype=torch.float64)
    o = _normed(g, y)
    unchanged, rho = _down_proj_targets(lm.model, 1, y, o, torch.zeros_like(o))
    torch.testing.assert_close(
        unchanged, torch.zeros_like(y), atol=1e-9 * float(y.abs().max()), rtol=0
    )
    torch.testing.assert_close(rho, torch.ones(2, dtype=torch.float64))
    r = (
        0.02
        * o.norm(dim=-1, keepdim=True)
        * torch.randn(2, g.shape[0], generator=gen, dtype=torch.float64)
    )
    r = r / r.norm(dim=-1, keepdim=True)
    change, _ = _down_proj_targets(lm.model, 1, y, o, r)
    assert torch.isfinite(change).all()
    torch.testing.assert_close(change[:, :3], torch.zeros(2, 3, dtype=torch.float64))
    new = y + change
    torch.testing.assert_close(new.pow(2).mean(-1), y.pow(2).mean(-1))
    assert bool(((_normed(g, new) - o - r).norm(dim=-1) <= r.norm(dim=-1)).all())


def test_memit_through_an_uneven_post_norm_raises_a_batch_and_records_its_reach() -> None:
    """End to end on a tiny Gemma-style model (post-norms) with uneven post-MLP weights
    (log-uniform over 0.1 … 10): MEMIT writes a batch of facts, every layer's update moves
    each fact's MLP output nearer to its wanted o + r, and the result records it. The first
    inversion (y' ∝ (o + r)/g) left p(new) where it was (×1.3 and ×0.6 on these facts) and
    moved the outputs no nearer (error 1.04, 1.02)."""
    from factscope.edit.handle import mlp_of

    lm = tiny_lm("gemma3", seed=1)
    with torch.no_grad():
        for l in (1, 2):
            norm = mlp_of(lm.model, l).post_norm
            assert norm is not None
            u = torch.rand(norm.weight.shape[0], generator=torch.Generator().manual_seed(l))
            norm.weight.copy_(10 ** (-1 + 2 * u))
    prompts = [PROMPT, "Fact Jordan plays the sport of"]
    news = ["plays", "Michael"]
    requests = [EditRequest(p, "the sport of", n) for p, n in zip(prompts, news, strict=True)]
    before = [p_answer(lm, p, n) for p, n in zip(prompts, news, strict=True)]
    hp = MEMITHyperParams(
        v_weight_decay=1e-3, v_num_grad_steps=30, clamp_norm_factor=50, n_layers=2,
        mom2_update_weight=0.1,
    )  # fmt: skip
    handle = edit(lm, requests, "memit", layer=2, hparams=hp, stats=tiny_stats(lm, [1, 2]))
    after = [p_answer(lm, p, n) for p, n in zip(prompts, news, strict=True)]
    assert all(a > 10 * b for a, b in zip(after, before, strict=True)), (before, after)
    result = handle.results[0]
    for i in range(len(requests)):
        report = result.fact_report(i)
        assert len(report["reached"]) == len(report["error"]) == len(report["rho"]) == 2
        assert all(e < 0.95 for e in report["error"]), report
        assert all(r > 1 for r in report["rho"])  # these targets lie off the norm's reach
    assert result.to_dict()["error"] == [sum(e) / len(e) for e in result.error]
    handle.undo()


def test_targets_are_reused_from_the_cache_and_never_across_edited_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second MEMIT of the same facts on the same weights reads every z from the disk
    cache (the same update, no optimisation run); after an edit the weights differ, so the
    targets are optimised again."""
    import factscope.edit.target as target

    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path))
    lm = tiny_lm("llama", seed=1)
    requests = [EditRequest(PROMPT, "the sport of", "plays")]
    stats = tiny_stats(lm, [1, 2])
    runs = []
    real = target.optimise_delta

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        runs.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(target, "optimise_delta", counted)
    first = edit(lm, requests, "memit", layer=2, hparams=TINY, stats=stats)
    change = first.weight_change()
    first.undo()
    second = edit(lm, requests, "memit", layer=2, hparams=TINY, stats=stats)
    assert len(runs) == 1  # the second run optimised nothing
    assert all(torch.equal(change[l], second.weight_change()[l]) for l in change)
    assert len(list((tmp_path / "edit-targets").glob("*.pt"))) == 1
    third = edit(lm, requests, "memit", layer=2, hparams=TINY, stats=stats)  # on edited weights
    assert len(runs) == 2
    third.undo()
    second.undo()
    nocache = apply_memit(lm, requests, 2, TINY, stats=stats, cache_targets=False)
    assert len(runs) == 3
    nocache.undo()
