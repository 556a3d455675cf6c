"""Figures of study results (know, probe, trace-many): pure functions of their JSON data.

- `know_funnel`: how many facts survive each step (candidates -> well-formed -> single-token
  answer -> known), one group of bars per answer class;
- `p_correct_histogram`: the distribution of p(correct answer), with the "known" threshold;
- `probe_curves`: probe accuracy vs layer per position and control, with the spread across
  folds and the chance level (DeepMind's "Fact Finding" figure);
- `average_trace_heatmaps`: ROME's Figure 2, the indirect effect averaged over facts on the
  six token groups (first/middle/last subject token, first/further tokens after, last).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from factscope.report.plots import KIND_NAMES, TRACE_CMAPS, text_label

STEP_LABELS = {
    "candidates": "candidates",
    "well_formed": "well-formed",
    "single_token": "single-token answer",
    "known": "known (p > 0.5)",
}


def know_funnel(summary: Mapping[str, Any]) -> Figure:
    """Bars: facts surviving each step, per answer class (log scale: known is a small part)."""
    counts: Mapping[str, Mapping[str, int]] = summary["counts"]
    steps = list(counts)
    classes = [c for c in counts[steps[0]] if c != "all"]
    fig = Figure(figsize=(1.6 + 1.4 * len(classes), 3.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(steps)
    x = np.arange(len(classes))
    for i, step in enumerate(steps):
        values = [counts[step][c] for c in classes]
        bars = ax.bar(x + (i - (len(steps) - 1) / 2) * width, values, width,
                      label=STEP_LABELS.get(step, step))  # fmt: skip
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(x, [text_label(c) for c in classes])
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylabel("facts")
    ax.set_title(f"{summary['model']}: what it knows of {summary['dataset']}")
    ax.set_ylim(0, 30 * max(counts[steps[0]][c] for c in classes))  # room for the legend
    ax.legend(fontsize=8, ncols=2, loc="upper center")
    return fig


def p_correct_histogram(
    p_correct: Mapping[str, Sequence[float]], threshold: float = 0.5, model: str = ""
) -> Figure:
    """Histogram of p(correct answer) per answer class, the threshold as a dashed line."""
    fig = Figure(figsize=(5.5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    bins = [i / 20 for i in range(21)]
    ax.hist([list(v) for v in p_correct.values()], bins=bins, stacked=True,
            label=[text_label(k) for k in p_correct])  # fmt: skip
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("p(correct answer) over the full vocabulary")
    ax.set_ylabel("facts")
    ax.set_title(f"{model}: p(correct) with the few-shot prompt" if model else "p(correct)")
    ax.legend(fontsize=8)
    return fig


def probe_curves(result: Mapping[str, Any]) -> Figure:
    """Accuracy vs layer for every probed condition: mean over folds, min-max band, chance."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for name, curve in result["curves"].items():
        layers = np.arange(len(curve["mean"]))
        line = ax.plot(layers, curve["mean"], marker=".", label=curve.get("label", name))[0]
        ax.fill_between(layers, curve["min"], curve["max"], color=line.get_color(), alpha=0.2)
    ax.axhline(result["chance"], color="grey", linestyle=":", label="chance (majority class)")
    ax.axhline(0.9, color="k", linewidth=0.5, linestyle="--")
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (0 = embeddings; l = residual after block l)")
    ax.set_ylabel(f"{result['folds']}-fold CV accuracy")
    ax.set_title(f"{result['model']}: linear probe for the {result['relation']} answer "
                 f"({result['n_facts']} facts)")  # fmt: skip
    ax.legend(fontsize=7, loc="lower right")
    return fig


def average_trace_heatmaps(result: Mapping[str, Any]) -> Figure:
    """ROME's Figure 2: average indirect effect per token group (rows) and layer (columns),
    one panel per kind (hidden state, MLP, attention)."""
    kinds = [k for k in ("hidden", "mlp", "attn") if k in result["aie"]]
    groups: list[str] = result["groups"]
    fig = Figure(figsize=(4.2 * len(kinds), 0.45 * len(groups) + 1.6), layout="constrained")
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, kind in zip(axes, kinds, strict=True):
        grid = np.array(result["aie"][kind], dtype=float)  # (groups, layers)
        image = ax.imshow(grid, cmap=TRACE_CMAPS[kind], vmin=min(0.0, float(np.nanmin(grid))),
                          aspect="auto", interpolation="none")  # fmt: skip
        ax.set_yticks(range(len(groups)), groups)
        n_layers = grid.shape[1]
        ticks = list(range(0, n_layers, max(1, n_layers // 6)))
        ax.set_xticks(ticks, [str(t) for t in ticks])
        what = "single restored layer" if kind == "hidden" else (
            f"center of {result['window']} restored {KIND_NAMES[kind]} layers")  # fmt: skip
        ax.set_xlabel(what)
        ax.set_title(f"Average indirect effect, {KIND_NAMES[kind]}")
        fig.colorbar(image, ax=ax).set_label("AIE on p(answer)")
    method = " (attribution patching)" if result.get("method") == "approx" else ""
    fig.suptitle(
        f"{result['model']}: {result['n_facts']} known facts of {result['dataset']}{method}"
    )
    return fig
