"""Figures of read results (neurons, directions, knockout): pure functions of plain data.

Like `report/plots.py`, nothing here touches a model or a result class; every function takes
numbers from a result's JSON (`NeuronsResult.to_dict()`, ...), so figures can be redrawn
from saved files.

- `neuron_scores_plot`: every neuron's score per layer at the last subject token and the
  final token, the top ones labelled "L3.N1627".
- `ablation_plot`: p(answer) as the top-k neurons are ablated, against random neurons of
  the same layers (mean, +-1 std band, min-max range).
- `and_test_plot`: each top neuron's activation on the prompt and on the name variants.
- `projection_heatmap`: the residual stream's projection on the answer's unembedding
  direction, per layer and token.
- `cosine_heatmap`: cosine similarities between directions.
- `knockout_plot`: p(answer) when the final token may not attend to the subject (or other
  tokens) over a window of layers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from factscope.report.plots import text_label, token_label

KIND_COLOURS = {"both": "black", "first": "tab:blue", "last": "tab:orange", "neither": "tab:gray"}


def neuron_scores_plot(
    scores: Mapping[str, Sequence[Sequence[float]]],
    methods: Mapping[str, str],
    top: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    answer: str = "",
    label_top: int = 5,
) -> Figure:
    """One panel per position: each neuron's score (dot) at its layer, top ones labelled."""
    positions = list(scores)
    fig = Figure(figsize=(6.0 * len(positions), 4.2), layout="constrained")
    rng = np.random.default_rng(0)  # horizontal jitter only, for legibility
    for i, pos in enumerate(positions):
        ax = fig.add_subplot(1, len(positions), i + 1)
        grid = np.asarray(scores[pos], dtype=np.float64)  # (L, F)
        L, F = grid.shape
        x = np.repeat(np.arange(L), F) + rng.uniform(-0.3, 0.3, L * F)
        ax.scatter(x, grid.ravel(), s=2, alpha=0.4, color="tab:gray", rasterized=True)
        for n in list(top.get(pos, []))[:label_top]:
            layer, index, score = int(n["layer"]), int(n["index"]), float(n["score"])
            ax.scatter([layer], [score], s=18, color="tab:red")
            ax.annotate(
                f"L{layer}.N{index}",
                (layer, score),
                fontsize=7,
                xytext=(3, 2),
                textcoords="offset points",
            )
        ax.axhline(0.0, color="black", linewidth=0.5)
        ax.set_xlabel("layer")
        ax.set_ylabel("score")
        title = "last subject token" if pos == "subject" else "final token"
        method = textwrap.fill(text_label(methods.get(pos, "")), 60)
        ax.set_title(f"{title}\n{method}", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if answer:
        fig.suptitle(f"MLP neurons for {text_label(repr(answer))}", fontsize=10)
    return fig


def ablation_plot(curves: Sequence[Mapping[str, Any]], *, answer: str = "") -> Figure:
    """p(answer) vs k: top-k neurons ablated (solid) against random neurons (dashed, band)."""
    positions = list(dict.fromkeys(str(c["position"]) for c in curves))
    fig = Figure(figsize=(5.5 * max(1, len(positions)), 4.0), layout="constrained")
    colours = {"zero": "tab:red", "mean": "tab:blue"}
    for i, pos in enumerate(positions):
        ax = fig.add_subplot(1, len(positions), i + 1)
        for c in (c for c in curves if c["position"] == pos):
            ks = np.asarray(c["ks"], dtype=np.float64)
            colour = colours.get(str(c["mode"]), "tab:green")
            mean = np.asarray(c["random_mean"], dtype=np.float64)
            std = np.asarray(c["random_std"], dtype=np.float64)
            ax.plot(ks, c["top_p"], color=colour, marker=".", label=f"top-k, {c['mode']}")
            ax.plot(ks, mean, color=colour, linestyle="--", label=f"random, {c['mode']}")
            ax.fill_between(ks, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
            ax.fill_between(
                ks, c["random_min"], c["random_max"], color=colour, alpha=0.07, linewidth=0
            )
            clean = float(c["clean_p"])
        ax.axhline(clean, color="black", linewidth=0.7, linestyle=":", label="clean")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("k neurons ablated")
        ax.set_ylabel(f"p({text_label(repr(answer))})" if answer else "p(answer)")
        ax.set_title("at the last subject token" if pos == "subject" else "at the final token")
        ax.legend(fontsize=7)
    return fig


def and_test_plot(neurons: Sequence[Mapping[str, Any]], *, title: str = "") -> Figure:
    """Per neuron: activation on the prompt (both names) and mean per variant kind, with each
    variant as a dot; one row of panels per position. Neurons without an AND test are
    skipped."""
    tested = [n for n in neurons if n.get("and_test")]
    positions = list(dict.fromkeys(str(n.get("position", "")) for n in tested)) or [""]
    widest = (
        max(sum(1 for n in tested if n.get("position", "") == p) for p in positions)
        if tested
        else 1
    )
    fig = Figure(
        figsize=(max(6.0, min(16.0, 0.8 * widest + 2)), 3.2 * len(positions)),
        layout="constrained",
    )
    kinds = ["both", "first", "last", "neither"]
    names = {
        "both": "both names (prompt)",
        "first": "first name only",
        "last": "last name only",
        "neither": "neither",
    }
    width = 0.8 / len(kinds)
    for row, pos in enumerate(positions):
        ax = fig.add_subplot(len(positions), 1, row + 1)
        group = [n for n in tested if n.get("position", "") == pos]
        for j, n in enumerate(group):
            test = n["and_test"]
            for k, kind in enumerate(kinds):
                x = j + (k - 1.5) * width
                if kind == "both":
                    ax.bar(x, test["both"], width, color=KIND_COLOURS[kind])
                    continue
                values = test["by_kind"].get(kind) or []
                if values:
                    ax.bar(x, test["mean"][kind], width, color=KIND_COLOURS[kind], alpha=0.8)
                    ax.scatter([x] * len(values), values, s=5, color="black", zorder=3)
        ax.set_xticks(
            range(len(group)),
            [
                f"L{n['layer']}.N{n['index']}\n{_short_verdict(n['and_test']['verdict'])}"
                for n in group
            ],
            fontsize=7,
        )
        ax.axhline(0.0, color="black", linewidth=0.5)
        ax.set_ylabel("activation")
        where = {"subject": "last subject token", "final": "final token"}.get(pos, pos)
        ax.set_title(
            f"{text_label(title) or 'AND test'}{', ' + where if where else ''}", fontsize=9
        )
        if row == 0:
            handles = [Patch(color=KIND_COLOURS[k], label=names[k]) for k in kinds]
            ax.legend(handles=handles, fontsize=7)
    return fig


def _short_verdict(verdict: str) -> str:
    return (
        verdict.split(":")[0].split(" ")[0]
        if verdict.startswith(("AND", "OR"))
        else (verdict.split(" ")[0])
    )


def projection_heatmap(
    values: Sequence[Sequence[float]],
    tokens: Sequence[str],
    layers: Sequence[str],
    *,
    answer: str = "",
    label: str = "projection on W_U[answer]",
) -> Figure:
    """Rows: residual streams (layers), columns: tokens; colour: the projection."""
    grid = np.asarray(values, dtype=np.float64)  # (R, T)
    fig = Figure(
        figsize=(max(5.0, 0.7 * len(tokens) + 2.5), 0.25 * len(layers) + 2.0), layout="constrained"
    )
    ax = fig.add_subplot()
    limit = float(np.nanmax(np.abs(grid))) or 1.0
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(tokens)), [token_label(t) for t in tokens], rotation=45, ha="right")
    ax.set_yticks(range(len(layers)), list(layers), fontsize=7)
    ax.set_title(f"{label}, {text_label(repr(answer))}" if answer else label, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def cosine_heatmap(
    matrix: Sequence[Sequence[float]], labels: Sequence[str], *, title: str = ""
) -> Figure:
    """A symmetric matrix of cosines with the values written in the cells."""
    grid = np.asarray(matrix, dtype=np.float64)
    size = 0.6 * len(labels) + 2.5
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(labels)), [token_label(x) for x in labels], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [token_label(x) for x in labels])
    for (r, c), v in np.ndenumerate(grid):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(text_label(title), fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def knockout_plot(
    starts: Sequence[int],
    probs: Mapping[str, Sequence[float]],
    clean_p: float,
    *,
    window: int,
    answer: str = "",
) -> Figure:
    """p(answer) per window (by centre layer), one line per blocked source of the final token."""
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.add_subplot()
    colours = {"subject": "tab:red", "non-subject": "tab:blue", "last": "tab:green"}
    for source, p in probs.items():
        what = "the final token itself" if source == "last" else f"{source} tokens"
        ax.plot(starts, p, marker=".", color=colours.get(source), label=f"block {what}")
    ax.axhline(clean_p, color="black", linestyle=":", linewidth=0.8, label="clean")
    ax.set_xlabel(f"centre layer of the {window}-layer window (clipped at the ends)")
    ax.set_ylabel(f"p({text_label(repr(answer))})" if answer else "p(answer)")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Attention knockout from the final token", fontsize=10)
    ax.legend(fontsize=7)
    return fig
