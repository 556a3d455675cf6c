"""Figures of the build-from-scratch results, from plain data (a run's history.json, a
knowledge check's accuracies): nothing here touches a model.

- `loss_curve`: training loss per step (and its running mean), evaluation loss, and the
  learning-rate schedule on a second axis.
- `arms_bar`: held-out and trained-people accuracy of the two data regimes, next to the
  paper's numbers.
- `neuron_and_plot`: for a set of neurons, how often each fires for (A and B), A only,
  B only and neither — AND-like neurons fire for the conjunction only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure


def loss_curve(history: Mapping[str, Any], title: str = "") -> Figure:
    """Loss against step from a `History.to_dict()`; eval loss as dots; lr on the right."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    steps = np.asarray(history["step"])
    loss = np.asarray(history["loss"], dtype=float)
    if len(loss):
        ax.plot(steps, loss, color="#9ecae1", lw=0.8, label="train loss (per step)")
        k = max(1, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, color="#08519c", lw=1.6, label=f"train, mean of {k}")
    if history.get("eval_step"):
        ax.plot(
            history["eval_step"], history["eval_loss"], "o-", color="#d94801", ms=3,
            label="eval loss",
        )  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title or "training loss")
    ax.grid(alpha=0.3)
    if history.get("lr"):
        ax2 = ax.twinx()
        ax2.plot(steps[: len(history["lr"])], history["lr"], color="#888888", lw=0.8, ls="--")
        ax2.set_ylabel("learning rate", color="#888888")
        ax2.tick_params(axis="y", colors="#888888")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def arms_bar(arms: Mapping[str, Mapping[str, float]], paper: Mapping[str, float]) -> Figure:
    """Bars per regime: held-out accuracy (ours), trained-people accuracy (ours), and the
    paper's held-out accuracy. `arms` maps regime -> {"heldout": acc, "train": acc}."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    names = list(arms)
    x = np.arange(len(names))
    width = 0.27
    ours_h = [100 * arms[n].get("heldout", 0.0) for n in names]
    ours_t = [100 * arms[n].get("train", 0.0) for n in names]
    theirs = [100 * paper.get(n, float("nan")) for n in names]
    ax.bar(x - width, ours_t, width, color="#bdd7e7", label="ours: trained people")
    ax.bar(x, ours_h, width, color="#2171b5", label="ours: held-out people")
    ax.bar(x + width, theirs, width, color="#fd8d3c", label="paper: held-out (124M, 100k people)")
    for xs, ys in ((x - width, ours_t), (x, ours_h), (x + width, theirs)):
        for xi, yi in zip(xs, ys, strict=True):
            if np.isfinite(yi):
                ax.text(xi, yi + 1, f"{yi:.1f}", ha="center", fontsize=7)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 110)
    ax.set_ylabel("whole-answer accuracy (%)")
    ax.set_title("knowledge extraction: QA fine-tuned on half the people")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def neuron_and_plot(
    rates: Mapping[str, Sequence[Sequence[float]]], labels: Sequence[str], title: str
) -> Figure:
    """One panel per MLP kind: rows are neurons, columns the four cases (A&B, A only,
    B only, neither), colour how often (or how strongly) the neuron fires."""
    fig = Figure(figsize=(3.2 * len(rates), 3.6))
    for i, (kind, grid) in enumerate(rates.items()):
        ax = fig.add_subplot(1, len(rates), i + 1)
        arr = np.asarray(grid, dtype=float)
        im = ax.imshow(arr, aspect="auto", cmap="Greens", vmin=0)
        ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
        ax.set_ylabel("AND-like (person, neuron), one per row")
        ax.set_title(kind, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
