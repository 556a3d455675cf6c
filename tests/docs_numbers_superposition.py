"""The numbers of docs/superposition.md and the result files they come from (see
docs_numbers.py)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from docs_numbers import Claim, result, span

PAGE = "superposition.md"
MODEL_KINDS = {"gate": "gate rows", "up": "up rows", "down": "down columns"}


def _jl(run: str = "superposition-jl") -> dict[str, Any]:
    return result(f"{run}/jl.json")


def _share(stats: dict[str, Any], low: float, high: float, inside: bool = True) -> float:
    """The share of pairs whose angle is within [low, high) degrees (or outside it)."""
    hist = np.asarray(stats["histogram"])
    edges = np.arange(len(hist)) * stats["bin_degrees"]
    within = (edges >= low - 1e-9) & (edges < high - 1e-9)
    return float(hist[within if inside else ~within].sum() / hist.sum())


def _near_parallel(stats: dict[str, Any]) -> int:
    hist = np.asarray(stats["histogram"])
    per_ten = round(10 / stats["bin_degrees"])
    return int(hist[:per_ten].sum() + hist[-per_ten:].sum())


def _jl_values() -> dict[str, Any]:
    jl = _jl()
    before, after = jl["before"], jl["after"]
    return {
        "b_max": f"{before['max_abs_cos']:.3f}",
        "a_max": f"{after['max_abs_cos']:.4f}",
        "welch": f"{jl['welch_bound']:.4f}",
        "b_dev": f"{before['max_deviation_degrees']:.1f}",
        "a_dev": f"{after['max_deviation_degrees']:.1f}",
        "welch_deg": f"{math.degrees(math.asin(jl['welch_bound'])):.1f}",
        "b_rms": f"{before['rms_cos']:.4f}",
        "a_rms": f"{after['rms_cos']:.4f}",
        "rms": f"{jl['rms_bound']:.4f}",
        "b_abs": f"{before['mean_abs_cos']:.4f}",
        "a_abs": f"{after['mean_abs_cos']:.4f}",
        "b_in": f"{100 * before['share_89_91']:.1f}",
        "a_in": f"{100 * after['share_89_91']:.1f}",
        "b_out": f"{100 * _share(before, 80, 100, inside=False):.1f}",
        "a_out": f"{100 * _share(after, 80, 100, inside=False):.1f}",
        "b_par": f"{_near_parallel(before):,}",
        "a_par": f"{_near_parallel(after):,}",
        "a_par_pct": f"{100 * _near_parallel(after) / after['pairs']:.1f}",
        "a_par_round": f"{round(_near_parallel(after), -4):,}",
        "worst": f"{after['min_angle']:.1f}",
        "b_rms3": f"{before['rms_cos']:.3f}",
        "a_rms3": f"{after['rms_cos']:.3f}",
        "pairs": f"{round(after['pairs'] / 1e6)}",
    }


def _squared() -> dict[str, Any]:
    jl = _jl("superposition-jl-squared-2000")
    return {
        "seconds": f"{jl['seconds']:.1f}",
        "rms": f"{jl['after']['rms_cos']:.4f}",
        "bound": f"{jl['rms_bound']:.4f}",
        "b_max": f"{jl['before']['max_abs_cos']:.3f}",
        "a_max": f"{jl['after']['max_abs_cos']:.3f}",
        "welch": f"{jl['welch_bound']:.4f}",
        "b_in": f"{100 * jl['before']['share_89_91']:.1f}",
        "a_in": f"{100 * jl['after']['share_89_91']:.1f}",
    }


def _capacity() -> dict[str, Any]:
    return result("superposition-capacity/capacity.json")


def _capacity_row(dim: int) -> Claim:
    def values() -> dict[str, Any]:
        points = {p["eps"]: p for p in _capacity()["points"] if p["dim"] == dim}
        cells = [
            f"{points[e]['largest_n']:,}{'+' if points[e]['capped'] else ''}"
            for e in _capacity()["eps"]
        ]
        welch = [
            "none" if points[e]["welch_capacity"] is None else str(points[e]["welch_capacity"])
            for e in _capacity()["eps"]
        ]
        return {"cells": " | ".join(cells), "welch": " / ".join(welch)}

    return Claim(f"| {dim} | {{cells}} | {{welch}} |", values)


def _welch_capacity(n_dim: int, eps: float) -> int:
    """The most unit vectors in `n_dim` dimensions with every |cos| <= eps (Welch)."""
    return math.floor(n_dim * (1 - eps**2) / (1 - n_dim * eps**2))


def _failures() -> dict[str, Any]:
    cap = _capacity()
    trials = [t for p in cap["points"] for t in p["trials"]]
    failed = [c for p in cap["points"] for _, c in p["trials"] if c > p["eps"]]
    return {"runs": len(trials), "failed": span(failed), "n_failed": len(failed)}


def _toy() -> dict[str, Any]:
    return result("superposition-toy/toy.json")


def _toy_rows() -> dict[str, Any]:
    sweep = _toy()["sweep"]
    return {
        "sparsity": " | ".join(f"{s['sparsity']:g}" for s in sweep),
        "represented": " | ".join(str(s["represented"]) for s in sweep),
        "dims": " | ".join(f"{s['dims_per_feature']:.3f}" for s in sweep),
        "last": sweep[-1]["represented"],
    }


def _dims() -> dict[str, Any]:
    dims = _toy()["dims"]
    x = [1 / (1 - d["sparsity"]) for d in dims]
    y = [d["dims_per_feature"] for d in dims]

    def at(target: float) -> int:
        return min(range(len(y)), key=lambda i: abs(y[i] - target))

    half, second, fifth, third = (
        at(0.5),
        sorted(range(len(y)), key=lambda i: abs(y[i] - 0.5))[1],
        at(0.4),
        at(2 / 3),
    )
    a, b = sorted((half, second))
    return {
        "last": f"{y[-1]:.2f}",
        "h1": f"{y[a]:.3f}",
        "h2": f"{y[b]:.3f}",
        "x1": f"{x[a]:.1f}",
        "x2": f"{x[b]:.1f}",
        "fifth": f"{y[fifth]:.3f}",
        "xf": f"{x[fifth]:.1f}",
        "third": f"{y[third]:.3f}",
        "all": sum(d["represented"] == _toy()["dim_setup"]["n_features"] for d in dims),
        "n": _toy()["dim_setup"]["n_features"],
        "points": len(dims),
    }


def _phase() -> dict[str, Any]:
    phase = _toy()["phase"]
    grid = np.asarray(phase["phase"])  # (densities, importances): 2 = superposition
    dens, imps = np.asarray(phase["densities"]), np.asarray(phase["importances"])
    rows = [i for i in range(len(dens)) if (grid[i] == 2).any()]
    first, wide = rows[0], next(i for i in rows if (grid[i] == 2).sum() > 1)
    dense_rows = grid[dens <= 0.16 + 1e-9]
    return {
        "first": f"{dens[first]:.2f}",
        "first_cells": int((grid[first] == 2).sum()),
        "wide": f"{dens[wide]:.2f}",
        "imps": span(imps[grid[wide] == 2]),
        "sparse_share": f"{int((dense_rows == 2).sum())} of {dense_rows.size}",
    }


def _model() -> dict[str, Any]:
    return result("superposition-model-gemma-3-270m/angles.json")


def _model_sets(kind: str) -> list[dict[str, Any]]:
    return [s for s in _model()["sets"] if s["kind"] == kind]


def _model_row(kind: str, name: str) -> Claim:
    def values() -> dict[str, Any]:
        sets, rand, bound = _model_sets(kind), _model()["random"][kind], _model()["bounds"][kind]
        rms = [s["rms_cos"] for s in sets]
        shown = f"{np.mean(rms):.4f}"
        if len(sets) > 1:
            shown += f" ({span(rms, 3)})"
        return {
            "rms": shown,
            "r_rms": f"{rand['rms_cos']:.4f}",
            "bound": f"{bound['rms']:.4f}",
            "within": f"{100 * np.mean([s['share_89_91'] for s in sets]):.1f}",
            "r_within": f"{100 * rand['share_89_91']:.1f}",
            "max": f"{max(s['max_abs_cos'] for s in sets):.3f}",
            "r_max": f"{rand['max_abs_cos']:.3f}",
        }

    return Claim(
        f"| {name} | {{rms}} | {{r_rms}} | {{bound}} | {{within}}% | {{r_within}}% | {{max}} | "
        "{r_max} |",
        values,
    )


def _model_text() -> dict[str, Any]:
    mlp = [np.mean([s["rms_cos"] for s in _model_sets(k)]) for k in MODEL_KINDS]
    within = [np.mean([s["share_89_91"] for s in _model_sets(k)]) for k in MODEL_KINDS]
    rand = _model()["random"]["gate"]
    down = _model_sets("down")
    worst = max(down, key=lambda s: s["rms_cos"])
    unembed = _model_sets("unembed")[0]
    return {
        "above": f"{round(100 * (min(mlp) / rand['rms_cos'] - 1))}-"
        f"{round(100 * (max(mlp) / rand['rms_cos'] - 1))}",
        "mlp": f"{min(mlp):.3f}-{max(mlp):.3f}",
        "random": f"{rand['rms_cos']:.3f}",
        "within": f"{round(100 * min(within))}-{round(100 * max(within))}",
        "r_within": f"{round(100 * rand['share_89_91'])}",
        "bound": f"{_model()['bounds']['gate']['rms']:.3f}",
        "max": f"{min(max(s['max_abs_cos'] for s in _model_sets(k)) for k in MODEL_KINDS):.2f}-"
        f"{max(max(s['max_abs_cos'] for s in _model_sets(k)) for k in MODEL_KINDS):.2f}",
        "worst": f"{worst['rms_cos']:.3f}",
        "worst_layer": worst["layer"],
        "mean_cos": f"{unembed['mean_cos']:.1f}",
        "u_within": f"{100 * unembed['share_89_91']:.1f}",
        "u_max": f"{unembed['max_abs_cos']:.3f}",
    }


def _params(model: str) -> dict[str, Any]:
    return result(f"superposition-params-{model}/params.json")


PARAM_ROWS = {
    "embedding": "embedding",
    "query": "query",
    "key": "key",
    "value": "value",
    "output": "output",
    "gate projection": "gate-projection",
    "up projection": "up-projection",
    "down projection": "down-projection",
}


def _params_row(name: str, key: str) -> Claim:
    def values() -> dict[str, Any]:
        cells = [
            f"{_params(m)['rows'][key]:,}" if key in _params(m)["rows"] else "-"
            for m in ("gpt3", "gemma-3-270m", "smollm2-135m")
        ]
        return {"cells": " | ".join(cells)}

    return Claim(f"| {name} | {{cells}} |", values)


def _params_totals() -> dict[str, Any]:
    g, gemma, smol = (_params(m) for m in ("gpt3", "gemma-3-270m", "smollm2-135m"))
    stored = gemma["total"] - gemma["rows"]["unembedding"]
    outside = gemma["total"] - gemma["rows"]["embedding"] - gemma["rows"]["unembedding"]
    return {
        "g_unembed": f"{g['rows']['unembedding']:,}",
        "gemma_unembed": f"{gemma['rows']['unembedding']:,}",
        "smol_unembed": f"{smol['rows']['unembedding']:,}",
        "g_total": f"{g['total']:,}",
        "gemma_total": f"{gemma['total']:,}",
        "smol_total": f"{smol['total']:,}",
        "g_mlp": f"{g['mlp']:,} ({round(100 * g['mlp_fraction'])}%)",
        "gemma_mlp": f"{gemma['mlp']:,} ({round(100 * gemma['mlp_fraction'])}%)",
        "smol_mlp": f"{smol['mlp']:,} ({round(100 * smol['mlp_fraction'])}%)",
        "g_left": f"biases {g['left_out']['biases'] / 1e6:.1f}M, norms "
        f"{g['left_out']['norms'] / 1e6:.1f}M, positions {g['left_out']['positional'] / 1e6:.1f}M",
        "gemma_norms": f"{gemma['left_out']['norms']:,}",
        "smol_norms": f"{smol['left_out']['norms']:,}",
        "stored": f"{stored:,}",
        "exact": f"{stored + gemma['left_out']['norms']:,}",
        "outside": f"{round(100 * gemma['mlp'] / outside)}%",
        "mlp_pct": f"{round(100 * gemma['mlp_fraction'])}%",
    }


CLAIMS: list[Claim] = [
    # 1. the video's experiment
    Claim(
        "For N = 10,000 and d = 100 both are {welch}: **some pair must be at least {deg} degrees",
        lambda: {
            "welch": f"{_jl()['welch_bound']:.4f}",
            "deg": f"{math.degrees(math.asin(_jl()['welch_bound'])):.1f}",
        },
    ),
    Claim(
        "Measured (seed 0; `docs/results/superposition-jl/jl.json`; {pairs} million pairs):",
        _jl_values,
    ),
    Claim("| max \\|cos\\| | {b_max} | **{a_max}** | {welch} (Welch) |", _jl_values),
    Claim("| worst pair, degrees from 90 | {b_dev} | **{a_dev}** | {welch_deg} |", _jl_values),
    Claim("| RMS cos | {b_rms} | **{a_rms}** | {rms} (frame) |", _jl_values),
    Claim("| mean \\|cos\\| | {b_abs} | {a_abs} | |", _jl_values),
    Claim("| pairs within 89°-91° | {b_in}% | **{a_in}%** | |", _jl_values),
    Claim("| pairs outside 80°-100° | {b_out}% | {a_out}% | |", _jl_values),
    Claim(
        "| pairs within 10° of parallel or antiparallel | {b_par} | {a_par} ({a_par_pct}%) | |",
        _jl_values,
    ),
    Claim("But that window hides {a_out}% of the\npairs", _jl_values),
    Claim("shows about {a_par_round} pairs that the", _jl_values),
    Claim("(the worst at\n{worst} degrees)", _jl_values),
    Claim("even rises from {b_rms3} to {a_rms3}.", _jl_values),
    Claim(
        "On 2,000 vectors in 100 dimensions (`docs/results/superposition-jl-squared-2000`,\n"
        "{seconds} s) it reaches the frame bound exactly (RMS cos {rms} = bound {bound}: a tight\n"
        "frame), lowers the worst pair only a little (max |cos| {b_max} -> {a_max}, Welch "
        "{welch}), and\nleaves fewer pairs within 89-91 degrees ({b_in}% -> {a_in}%)",
        _squared,
    ),
    # 2. capacity
    *[_capacity_row(d) for d in (10, 20, 50, 100)],
    Claim("{runs} optimiser runs in all.", _failures),
    Claim(
        "the Welch bound\nallows at most {n}.",
        lambda: {"n": _welch_capacity(100, math.sin(math.radians(1)))},
    ),
    Claim(
        "(achieved max |cos| of {failed} in the {n_failed} failed trials listed in\n"
        "`capacity.json`)",
        _failures,
    ),
    # 3. toy models
    Claim("| sparsity S | {sparsity} |", _toy_rows),
    Claim("| features with \\|\\|W_i\\|\\| > 0.5 | {represented} |", _toy_rows),
    Claim("| m / \\|\\|W\\|\\|_F^2 | {dims} |", _toy_rows),
    Claim("and by S = 0.999 {last} of the 20 features", _toy_rows),
    Claim(
        "The curve falls from 1 to {last} (at the {all} sparsest densities all {n} features are\n"
        "represented, sharing the 20 dimensions). It sits on the 1/2 plateau ({h1} and {h2} at\n"
        "1/(1-S) = {x1} and {x2}) and passes 2/5 ({fifth} at {xf}); with {points} densities",
        _dims,
    ),
    Claim("(one point at {third} is near 2/3)", _dims),
    Claim(
        "superposition appears at a density of {first} (in {first_cells} cell) and at {wide} "
        "takes the\ncells whose extra feature has a relative importance of {imps}; at densities "
        "of 0.16 and below\nit holds {sparse_share} cells",
        _phase,
    ),
    # 4. gemma-3-270m
    *[_model_row(k, n) for k, n in MODEL_KINDS.items()],
    _model_row("unembed", "unembedding rows (4,096)"),
    Claim(
        "Their RMS cos is\n  {above}% *above* random directions' ({mlp} vs {random}), and fewer "
        "of their pairs are\n  within 89-91 degrees ({within}% vs {r_within}%). Neither is near "
        "the frame bound ({bound}):",
        _model_text,
    ),
    Claim("(|cos| up to {max})", _model_text),
    Claim("(RMS cos up to {worst} at layer {worst_layer})", _model_text),
    Claim("mean cos ≈ {mean_cos}, in `angles.json`), only {u_within}% of pairs", _model_text),
    Claim("(|cos| = {u_max}: tokens with identical", _model_text),
    # 5. parameters
    *[_params_row(name, key) for name, key in PARAM_ROWS.items()],
    Claim(
        "| unembedding | {g_unembed} | {gemma_unembed} (tied) | {smol_unembed} (tied) |",
        _params_totals,
    ),
    Claim("| **total** | **{g_total}** | {gemma_total} | {smol_total} |", _params_totals),
    Claim("| of which MLP | {g_mlp} | {gemma_mlp} | {smol_mlp} |", _params_totals),
    Claim("| left out | {g_left} | norms {gemma_norms} | norms {smol_norms} |", _params_totals),
    Claim(
        "the unembedding: {stored} + {gemma_norms} norm weights = {exact} for gemma-3-270m",
        _params_totals,
    ),
    Claim(
        "the MLPs are {mlp_pct} of the video-style total but {outside} of the weights\noutside "
        "the embeddings",
        _params_totals,
    ),
    # benchmark
    Claim(
        "The\nfull 250-step run for section 1 took {s} s of optimiser time",
        lambda: {"s": f"{_jl()['seconds']:,.0f}"},
    ),
]
