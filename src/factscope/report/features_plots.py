"""Figures for sparse dictionaries, each a pure function of a result dict (`sae train`'s
train.json, `features`' features.json). Nothing here touches a model."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure


def training_curves(data: Mapping[str, Any]) -> Figure:
    """Fraction of variance unexplained and dead latents against training tokens."""
    history = data["history"]
    tokens = [h["tokens"] for h in history]
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(tokens, [h["fvu"] for h in history], color="#1f77b4")
    ax1.set(
        xlabel="training tokens", ylabel="FVU (train batch)", yscale="log", title="reconstruction"
    )
    ax2.plot(tokens, [100 * h["dead"] for h in history], color="#d62728")
    ax2.set(xlabel="training tokens", ylabel="dead latents (%)", title="dead latents")
    return fig


def features_figure(data: Mapping[str, Any]) -> Figure:
    """Left: attribution (grad x act) against the ablation's true change of log p(answer);
    right: the activation histograms of the dashboard latents over the corpus."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    rows = data["attribution"]
    if rows:
        xs, ys = [r["grad_x_act"] for r in rows], [r["ablation_delta"] for r in rows]
        ax1.scatter(xs, ys, color="#1f77b4")
        lo, hi = min(xs + ys), max(xs + ys)
        ax1.plot([lo, hi], [lo, hi], color="#888888", lw=0.8, ls="--")
        for r, x, y in zip(rows, xs, ys, strict=True):
            ax1.annotate(f"{r['latent']}@{r['position']}", (x, y), fontsize=7)
    ax1.set(
        xlabel="gradient x activation",
        ylabel="ablation: change of log p",
        title=f"attribution of p({data['answer']!r})",
    )
    for board in data["dashboards"]:
        hist = board.get("histogram") or {}
        if hist.get("counts"):
            edges = hist["edges"]
            centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
            ax2.plot(
                centres,
                hist["counts"],
                marker=".",
                label=f"{board['latent']} ({board['position']})",
            )
    ax2.set(
        xlabel="activation", ylabel="corpus tokens", yscale="log", title="activations in the corpus"
    )
    if ax2.lines:
        ax2.legend(fontsize=7)
    else:  # no corpus searched (explain-fact, the web app): say so instead of empty axes
        ax2.text(0.5, 0.5, "no corpus searched", ha="center", va="center", transform=ax2.transAxes)
    return fig
