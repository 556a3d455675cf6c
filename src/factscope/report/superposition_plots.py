"""Figures for superposition and the parameter tally, each a pure function of a result dict
(the `to_dict()` form of the classes in `factscope.read.superposition`, `read.toy` and
`read.params`). Nothing here touches a model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.colors import ListedColormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

BEFORE, AFTER, MODEL, RANDOM = "#888888", "#1f77b4", "#d62728", "#888888"
GROUP_COLOURS = {
    "embedding": "#9467bd",
    "attention": "#ff7f0e",
    "mlp": "#1f77b4",
    "unembedding": "#8c564b",
}
PHASE_COLOURS = ("#d9d9d9", "#fdae61", "#2c7bb6", "#ffffff")  # dropped, dedicated, sup., none


def _centres(bins: int, width: float) -> np.ndarray:
    return (np.arange(bins) + 0.5) * width


def _visible_range(
    *histograms: Sequence[float] | np.ndarray, width: float, pad: float = 1.0
) -> tuple[float, float]:
    """The angle range (degrees) that holds every nonzero bin of the histograms, symmetric
    about 90 so before and after are drawn on the same axis."""
    spread = 1.0
    for h in histograms:
        nonzero = np.nonzero(np.asarray(h))[0]
        if nonzero.size:
            lo, hi = nonzero[0] * width, (nonzero[-1] + 1) * width
            spread = max(spread, 90 - lo, hi - 90)
    spread = min(90.0, spread + pad)
    return 90 - spread, 90 + spread


def _near_band(ax: Any) -> None:
    ax.axvspan(89, 91, color="#2ca02c", alpha=0.15, lw=0, label="89°–91°")


def jl_histograms(jl: Mapping[str, Any]) -> Figure:
    """Angle histograms before and after the optimiser, with the 89-91 degree band and the
    Welch bound's limit on the worst pair (90 +- asin(bound)): on the left the scene code's
    view (80-100 degrees, linear), on the right every angle on a log scale, where pairs
    the optimiser pushed together show up."""
    before, after = jl["before"], jl["after"]
    width = float(after["bin_degrees"])
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    x = _centres(len(after["histogram"]), width)
    welch = math.degrees(math.asin(min(1.0, float(jl["welch_bound"]))))
    for ax, log in zip(axes, (False, True), strict=True):
        ax.plot(x, before["histogram"], drawstyle="steps-mid", color=BEFORE, label="random start")
        ax.plot(x, after["histogram"], drawstyle="steps-mid", color=AFTER,
                label=f"after {jl['steps']} Adam steps")  # fmt: skip
        _near_band(ax)
        ax.axvline(90 - welch, color="k", ls="--", lw=0.8, label="Welch: some pair this far")
        ax.axvline(90 + welch, color="k", ls="--", lw=0.8)
        ax.set_xlabel("angle between a pair of vectors (degrees)")
        if log:
            ax.set_yscale("log")
            ax.set_xlim(*_visible_range(before["histogram"], after["histogram"], width=width))
            ax.set_title("every pair, log scale", fontsize=9)
        else:
            ax.set_xlim(80, 100)
            ax.set_ylabel(f"pairs per {width:g}° bin")
            ax.set_title(f"{jl['n']:,} unit vectors in {jl['dim']} dimensions (80°–100°)",
                         fontsize=9)  # fmt: skip
            ax.legend(fontsize=7, loc="upper left")
    return fig


def jl_loss(jl: Mapping[str, Any]) -> Figure:
    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(len(jl["losses"])), jl["losses"], color=AFTER)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (scene code)")
    ax.set_title("loss curve")
    return fig


def jl_summary_bars(jl: Mapping[str, Any]) -> Figure:
    """max |cos| and RMS cos before and after, next to their lower bounds."""
    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.subplots()
    labels = ["max |cos|", "RMS cos"]
    before = [jl["before"]["max_abs_cos"], jl["before"]["rms_cos"]]
    after = [jl["after"]["max_abs_cos"], jl["after"]["rms_cos"]]
    bound = [jl["welch_bound"], jl["rms_bound"]]
    x = np.arange(2)
    ax.bar(x - 0.27, before, 0.27, color=BEFORE, label="random")
    ax.bar(x, after, 0.27, color=AFTER, label="optimised")
    ax.bar(x + 0.27, bound, 0.27, color="k", label="lower bound")
    ax.axhline(math.sin(math.radians(1)), color="#2ca02c", ls=":", label="|cos 89°|")
    ax.set_xticks(x, labels)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return fig


def capacity_plot(capacity: Mapping[str, Any]) -> Figure:
    """Largest N with every |cos| <= eps against the dimension, one line per eps; the
    Welch bound's limit dashed where it exists; an upward triangle where the search hit
    its cap."""
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    colours = matplotlib.colormaps["viridis"](np.linspace(0.1, 0.85, len(capacity["eps"])))
    for colour, eps in zip(colours, capacity["eps"], strict=True):
        points = sorted((p for p in capacity["points"] if p["eps"] == eps), key=lambda p: p["dim"])
        dims = [p["dim"] for p in points]
        ax.plot(dims, [p["largest_n"] for p in points], "o-", color=colour, label=f"ε = {eps:g}")
        capped = [p for p in points if p["capped"]]
        ax.plot([p["dim"] for p in capped], [p["largest_n"] for p in capped], "^",
                color=colour, ms=10)  # fmt: skip
        welch = [(p["dim"], p["welch_capacity"]) for p in points if p["welch_capacity"]]
        if welch:
            ax.plot(*zip(*welch, strict=True), "--", color=colour, lw=0.9)
    ax.plot([], [], "k--", lw=0.9, label="Welch bound's limit")
    ax.plot([], [], "k^", label=f"cap reached ({capacity['max_n']:,})")
    ax.set_yscale("log")
    ax.set_xlabel("dimension d")
    ax.set_ylabel("largest N with every |cos| ≤ ε")
    ax.set_title(f"capacity ({capacity['steps']} Adam steps per trial)")
    ax.legend(fontsize=8)
    return fig


# ---- toy models ---------------------------------------------------------------------------


def toy_grams(sweep: Sequence[Mapping[str, Any]]) -> Figure:
    """W^T W for each sparsity: the diagonal is how strongly each feature is represented,
    off-diagonal terms are interference between features sharing directions."""
    fig = Figure(figsize=(2.1 * len(sweep), 2.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(sweep)))
    image = None
    for ax, model in zip(axes, sweep, strict=True):
        gram = np.asarray(model["gram"])
        image = ax.imshow(gram, cmap="RdBu_r", norm=TwoSlopeNorm(0, -1, 1))
        ax.set_title(f"S = {model['sparsity']:g}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="W^T W")
    return fig


def toy_feature_norms(sweep: Sequence[Mapping[str, Any]]) -> Figure:
    """||W_i|| per feature (most important at the top), coloured by how much of its
    direction other features share: dark = a direction of its own."""
    fig = Figure(figsize=(2.1 * len(sweep), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(sweep), sharey=True))
    cmap = matplotlib.colormaps["viridis"]
    for ax, model in zip(axes, sweep, strict=True):
        norms = np.asarray(model["norms"])
        share = np.clip(np.asarray(model["superposition"]), 0, 1)
        y = np.arange(len(norms))
        ax.barh(y, norms, color=cmap(share))
        ax.set_ylim(len(norms) - 0.5, -0.5)
        ax.set_xlim(0, max(1.2, float(norms.max()) * 1.05))
        ax.set_title(f"S = {model['sparsity']:g}\n{model['represented']} represented", fontsize=9)
        ax.set_xlabel("||W_i||", fontsize=8)
    axes[0].set_ylabel("feature (importance 0.7^i)")
    mappable = matplotlib.cm.ScalarMappable(cmap=cmap, norm=matplotlib.colors.Normalize(0, 1))
    fig.colorbar(mappable, ax=list(axes), shrink=0.8,
                 label="superposition Σ_{j≠i} (Ŵ_i·W_j)²")  # fmt: skip
    return fig


def dims_per_feature(
    dims: Sequence[Mapping[str, Any]], sticky: Sequence[float], title: str = ""
) -> Figure:
    """m / ||W||_F^2 against 1 / (1 - S), with each represented feature's dimensionality
    D_i as a dot, and the fractions where the paper finds plateaus."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    inverse_density = np.array([1 / (1 - d["sparsity"]) for d in dims])
    for x, model in zip(inverse_density, dims, strict=True):
        on = np.asarray(model["norms"]) > 0.5
        values = np.asarray(model["dimensionality"])[on]
        ax.scatter(np.full(values.shape, x), values, s=4, color="#1f77b4", alpha=0.25, lw=0)
    ax.plot(inverse_density, [d["dims_per_feature"] for d in dims], "k-o", ms=3,
            label="m / ||W||²_F (dimensions per feature)")  # fmt: skip
    for fraction in sticky:
        ax.axhline(fraction, color="#d62728", lw=0.6, ls=":")
        ax.text(inverse_density.max() * 1.05, fraction, _fraction_label(fraction),
                va="center", fontsize=8, color="#d62728")  # fmt: skip
    ax.scatter([], [], s=8, color="#1f77b4", label="feature dimensionality D_i")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("1 / (1 − S)  (one over feature density)")
    ax.set_ylabel("dimensions per feature")
    ax.set_title(title or "feature dimensionality")
    ax.legend(fontsize=8, loc="center right")
    return fig


def _fraction_label(value: float) -> str:
    for den in range(1, 10):
        num = round(value * den)
        if abs(num / den - value) < 1e-9:
            return f"{num}/{den}" if den > 1 else str(num)
    return f"{value:.3g}"


def phase_plot(phase: Mapping[str, Any], names: Sequence[str]) -> Figure:
    """Which phase an n=2, m=1 model lands in over (relative importance, density)."""
    fig = Figure(figsize=(5.8, 4.4), layout="constrained")
    ax = fig.subplots()
    grid = np.asarray(phase["phase"])  # (densities, importances), -1 = none
    codes = np.where(grid < 0, 3, grid)
    cmap = ListedColormap(PHASE_COLOURS)
    ax.pcolormesh(_edges(phase["importances"]), _edges(phase["densities"]), codes,
                  cmap=cmap, vmin=-0.5, vmax=3.5, shading="flat")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_yaxis()  # dense at the top, as in the paper
    ax.set_xlabel("relative importance of the extra feature")
    ax.set_ylabel("feature density (1 − S)")
    ax.set_title("n = 2 features, m = 1 dimension")
    used = sorted(set(codes.ravel().tolist()))
    ax.legend(handles=[Patch(color=PHASE_COLOURS[c], label=names[c], ec="k") for c in used],
              fontsize=7, loc="lower left")  # fmt: skip
    return fig


def _edges(values: Sequence[float]) -> np.ndarray:
    """Cell edges around log-spaced centres."""
    logs = np.log10(np.asarray(values, dtype=float))
    mids = (logs[1:] + logs[:-1]) / 2
    first, last = 2 * logs[0] - mids[0], 2 * logs[-1] - mids[-1]
    return 10 ** np.concatenate([[first], mids, [last]])


# ---- a real model's directions ------------------------------------------------------------


def model_histograms(angles: Mapping[str, Any]) -> Figure:
    """For each kind of direction, the share of pairs per angle bin (all layers pooled)
    against random unit vectors with the same count and dimension."""
    kinds = list(angles["kinds"])
    width = float(angles["bin_degrees"])
    fig = Figure(figsize=(3.4 * len(kinds), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(kinds)))
    for ax, kind in zip(axes, kinds, strict=True):
        mine = np.asarray(angles["histograms"][kind], dtype=float)
        rand = np.asarray(angles["random"][kind]["histogram"], dtype=float)
        x = _centres(len(mine), width)
        ax.plot(x, rand / rand.sum(), drawstyle="steps-mid", color=RANDOM, label="random")
        ax.plot(x, mine / mine.sum(), drawstyle="steps-mid", color=MODEL, label=kind)
        _near_band(ax)
        ax.set_xlim(*_visible_range(mine, rand, width=width, pad=2.0))
        ax.set_title(f"{kind} ({angles['random'][kind]['n']:,} in {angles['d_model']} dims)",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("angle (degrees)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("share of pairs per bin")
    return fig


def model_layer_stats(angles: Mapping[str, Any]) -> Figure:
    """Per layer: RMS cos and the share of pairs within 89-91 degrees for each MLP kind,
    with the random baseline and the frame bound as lines."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    colours = {"gate": "#ff7f0e", "up": "#1f77b4", "down": "#2ca02c", "unembed": "#8c564b"}
    for kind in angles["kinds"]:
        rows = [s for s in angles["sets"] if s["kind"] == kind and s["layer"] is not None]
        if not rows:
            continue
        layers = [s["layer"] for s in rows]
        left.plot(layers, [s["rms_cos"] for s in rows], "o-", ms=3, color=colours[kind], label=kind)
        right.plot(layers, [s["share_89_91"] for s in rows], "o-", ms=3, color=colours[kind],
                   label=kind)  # fmt: skip
        left.axhline(angles["random"][kind]["rms_cos"], color=colours[kind], ls=":", lw=0.8)
        right.axhline(angles["random"][kind]["share_89_91"], color=colours[kind], ls=":", lw=0.8)
    bounds = [b["rms"] for k, b in angles["bounds"].items() if k != "unembed"]
    if bounds:
        left.axhline(bounds[0], color="k", ls="--", lw=0.8, label="frame bound")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("layer")
    left.set_ylabel("RMS cos between neurons' directions")
    right.set_xlabel("layer")
    right.set_ylabel("share of pairs within 89°–91°")
    left.set_title("dotted: random unit vectors, same count and dimension", fontsize=9)
    left.legend(fontsize=7)
    return fig


# ---- parameters ---------------------------------------------------------------------------


def params_bar(tally: Mapping[str, Any]) -> Figure:
    """The video's tally as horizontal bars, coloured by part of the network."""
    rows = list(tally["rows"].items())
    fig = Figure(figsize=(7.5, 0.35 * len(rows) + 1.2), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))
    colours = [GROUP_COLOURS[tally["groups"][k]] for k, _ in rows]
    ax.barh(y, [n for _, n in rows], color=colours)
    ax.set_yticks(y, [k for k, _ in rows])
    ax.invert_yaxis()
    for i, (_, n) in enumerate(rows):
        ax.text(n, i, f" {n:,}", va="center", fontsize=7)
    ax.set_xlim(0, max(n for _, n in rows) * 1.35)
    ax.set_xlabel("weights")
    title = f"{tally['name']}: {tally['total']:,} weights, {tally['mlp_fraction']:.0%} in MLPs"
    ax.set_title(title, fontsize=10)
    groups = list(dict.fromkeys(tally["groups"].values()))
    ax.legend(handles=[Patch(color=GROUP_COLOURS[g], label=g) for g in groups], fontsize=8,
              loc="upper right")  # fmt: skip
    return fig
