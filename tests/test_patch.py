"""Activation patching on tiny random models against plain one-forward-per-cell references."""

from __future__ import annotations

import json

import pytest
import torch

from factscope.errors import FactscopeError
from factscope.hooks import ActivationCache, hooks, run_with_cache
from factscope.locate.patch import (
    PATCH_KINDS,
    PatchResult,
    patch_activations,
    patched_logit_diffs,
)
from factscope.model import Transformer
from factscope.registry import MODELS
from reference_models import random_model

FAMILIES = ["llama", "gemma3"]
ALL_KINDS = tuple(PATCH_KINDS)
CLEAN = torch.tensor([[1, 5, 6, 7, 8, 9]])
CORRUPT = torch.tensor([[1, 15, 16, 7, 8, 9]])  # differs at positions 1 and 2 (the "subject")
ANSWERS = (3, 4)


def full_logit_diff(model: Transformer, tokens: torch.Tensor, fns: dict | None = None) -> float:
    """The metric the plain way: a whole forward (hooks in `fns`), all logits, two entries."""
    with torch.no_grad(), hooks(model, fns or {}):
        logits = model(tokens)[0, -1]
    return float(logits[ANSWERS[0]] - logits[ANSWERS[1]])


def reference_cell(
    model: Transformer, clean: ActivationCache, kind: str, layer: int, cell: tuple[int, ...]
) -> float:
    """One full corrupt forward with a hook replacing one cell by its clean value."""
    site = PATCH_KINDS[kind][0].format(l=layer)

    def patch(x: torch.Tensor, _site: str) -> torch.Tensor:
        x = x.clone()
        if kind in ("resid", "attn", "mlp"):
            (t,) = cell
            x[:, t] = clean[site][:, t]
        elif kind == "heads":
            (h,) = cell
            x[:, :, h] = clean[site][:, :, h]
        else:
            h, t = cell
            x[:, t, h] = clean[site][:, t, h]
        return x

    return full_logit_diff(model, CORRUPT, {site: patch})


@pytest.fixture(scope="module", params=FAMILIES)
def model(request: pytest.FixtureRequest) -> Transformer:
    return random_model(request.param)


@pytest.fixture(scope="module")
def result(model: Transformer) -> PatchResult:
    return patch_activations(model, CLEAN, CORRUPT, ANSWERS, ALL_KINDS, batch_size=64)


def test_clean_and_corrupt_logit_diffs(model: Transformer, result: PatchResult) -> None:
    assert result.clean_logit_diff == pytest.approx(full_logit_diff(model, CLEAN), abs=1e-5)
    assert result.corrupt_logit_diff == pytest.approx(full_logit_diff(model, CORRUPT), abs=1e-5)
    assert abs(result.clean_logit_diff - result.corrupt_logit_diff) > 1e-3


def test_grid_shapes(model: Transformer, result: PatchResult) -> None:
    L, H, T = model.cfg.n_layers, model.cfg.n_heads, CLEAN.shape[1]
    expected = {"resid": (L, T), "attn": (L, T), "mlp": (L, T), "heads": (L, H)}
    expected["heads_pos"] = (L, H, T)
    for kind, shape in expected.items():
        assert tuple(torch.tensor(result.scores[kind]).shape) == shape
        assert tuple(torch.tensor(result.logit_diffs[kind]).shape) == shape


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_cell_equals_a_plain_reference(
    model: Transformer, result: PatchResult, kind: str
) -> None:
    fast = torch.tensor(result.logit_diffs[kind], dtype=torch.float64)
    _, clean = run_with_cache(model, CLEAN)
    for index in torch.cartesian_prod(*(torch.arange(n) for n in fast.shape)).tolist():
        layer, *cell = index
        ref = reference_cell(model, clean, kind, layer, tuple(cell))
        assert float(fast[tuple(index)]) == pytest.approx(ref, abs=1e-5), (kind, index)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_scores_are_normalised_logit_diffs(result: PatchResult, kind: str) -> None:
    ld = torch.tensor(result.logit_diffs[kind], dtype=torch.float64)
    expected = (ld - result.corrupt_logit_diff) / (
        result.clean_logit_diff - result.corrupt_logit_diff
    )
    torch.testing.assert_close(torch.tensor(result.scores[kind], dtype=torch.float64), expected)


def test_positions_where_prompts_agree_score_zero_at_layer_0(result: PatchResult) -> None:
    """Block 0's input at a position is that token's embedding: same token, nothing to patch."""
    resid0 = result.scores["resid"][0]
    for t in (0, 3, 4, 5):
        assert resid0[t] == pytest.approx(0.0, abs=1e-5)
    assert any(abs(resid0[t]) > 1e-3 for t in (1, 2))


def test_clean_into_clean_is_a_no_op(model: Transformer) -> None:
    same = patch_activations(model, CLEAN, CLEAN, ANSWERS, ALL_KINDS)
    assert same.clean_logit_diff == same.corrupt_logit_diff
    for kind in ALL_KINDS:
        ld = torch.tensor(same.logit_diffs[kind], dtype=torch.float64)
        torch.testing.assert_close(
            ld, torch.full_like(ld, same.clean_logit_diff), rtol=0, atol=1e-5
        )
    assert same.notes  # scores undefined: said so, and JSON writes null rather than NaN
    assert json.dumps(same.to_dict(), allow_nan=False)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_patching_all_positions_of_resid_pre_recovers_clean(model: Transformer, layer: int) -> None:
    site = f"blocks.{layer}.resid_pre"
    _, clean = run_with_cache(model, CLEAN, [site])
    _, corrupt = run_with_cache(model, CORRUPT, [site])
    every = torch.ones(1, CLEAN.shape[1], dtype=torch.bool)
    diff = patched_logit_diffs(model, layer, site, corrupt[site], clean[site], every, ANSWERS)
    assert float(diff[0]) == pytest.approx(full_logit_diff(model, CLEAN), abs=1e-5)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_all_heads_equal_attention_output(model: Transformer, layer: int) -> None:
    """Every head at every position clean == the whole attention output clean."""
    T, H = CLEAN.shape[1], model.cfg.n_heads
    z, out, pre = (f"blocks.{layer}.{s}" for s in ("attn.z", "attn.out", "resid_pre"))
    _, clean = run_with_cache(model, CLEAN, [z, out])
    _, corrupt = run_with_cache(model, CORRUPT, [pre])
    heads = patched_logit_diffs(
        model, layer, z, corrupt[pre], clean[z], torch.ones(1, T, H, dtype=torch.bool), ANSWERS
    )
    attn = patched_logit_diffs(
        model, layer, out, corrupt[pre], clean[out], torch.ones(1, T, dtype=torch.bool), ANSWERS
    )
    assert float(heads[0]) == pytest.approx(float(attn[0]), abs=1e-5)


@pytest.mark.parametrize(("batch_size", "kinds"), [(1, ("resid", "heads")), (5, ALL_KINDS)])
def test_batched_equals_unbatched(
    model: Transformer, result: PatchResult, batch_size: int, kinds: tuple[str, ...]
) -> None:
    """One patch per forward, or uneven chunks, give the numbers of 64-row batches."""
    other = patch_activations(model, CLEAN, CORRUPT, ANSWERS, kinds, batch_size=batch_size)
    for kind in kinds:
        torch.testing.assert_close(
            torch.tensor(other.logit_diffs[kind]),
            torch.tensor(result.logit_diffs[kind]),
            rtol=1e-5,
            atol=1e-5,
        )


def test_result_is_plain_data(result: PatchResult) -> None:
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["sites"]["resid"] == "blocks.{l}.resid_pre"
    assert data["clean_ids"] == CLEAN[0].tolist()
    assert [a["id"] for a in data["answers"]] == list(ANSWERS)
    (layer, position), score = result.top_cells("resid", k=3)[0]
    assert score == max(max(row) for row in result.scores["resid"])
    assert result.scores["resid"][layer][position] == score


def test_unequal_lengths_are_refused(model: Transformer) -> None:
    with pytest.raises(FactscopeError, match="equal token length"):
        patch_activations(model, CLEAN, CORRUPT[:, :-1], ANSWERS)


def test_unknown_kind_is_refused(model: Transformer) -> None:
    with pytest.raises(FactscopeError, match="unknown patch kind"):
        patch_activations(model, CLEAN, CORRUPT, ANSWERS, kinds=("neurons",))


@pytest.mark.realmodel
def test_gemma_michael_jordan_vs_tom_brady() -> None:
    if MODELS["gemma-3-270m"].installed_path() is None:
        pytest.skip("gemma-3-270m is not installed")
    from factscope.load import load_model
    from factscope.locate.patch import patch_prompts

    loaded = load_model("gemma-3-270m")
    result = patch_prompts(
        loaded,
        "Michael Jordan plays the sport of",
        "Tom Brady plays the sport of",
        (" basketball", " football"),
        kinds=("resid",),
    )
    assert result.clean_logit_diff > 0 > result.corrupt_logit_diff
    scores = torch.tensor(result.scores["resid"])  # (L, T)
    # block 0's input at the shared template tokens is the same embedding: nothing to patch
    assert scores[0, 3:].abs().max() < 1e-4
    # the fact sits on the last subject token (" Jordan") through the early and middle
    # layers, then moves to the last token: in both bands one patched state restores it
    assert float(scores[2:13, 2].min()) > 0.9
    assert float(scores[16:, -1].min()) > 0.9
