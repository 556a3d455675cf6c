"""The story page's own figures (`factscope explain-fact`), each a pure function of a
result: the next-token bar, the flow grid with head arrows, an ablation curve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from factscope.predict import Candidate
    from factscope.read.ablation import AblationCurve


def prediction_bar(top: Sequence[Candidate]) -> Figure:
    """The most likely next tokens and their probabilities, the likeliest on top."""
    fig = Figure(figsize=(5.5, 0.35 * len(top) + 0.8))
    ax = fig.add_subplot()
    labels = [repr(c.token) for c in top][::-1]
    ax.barh(labels, [c.prob for c in top][::-1], color="#24469b")
    ax.set_xlabel("probability of the next token")
    fig.tight_layout()
    return fig


def flow_figure(flow: dict[str, Any]) -> Figure:
    """The flow grid (tokens x residual streams, colour = lens p(answer)) with head arrows."""
    prob = np.asarray(flow["prob"], dtype=np.float64)  # (R, T)
    R, T = prob.shape
    fig = Figure(figsize=(max(6.0, 0.75 * T + 2), max(4.0, 0.26 * R + 1.6)))
    ax = fig.add_subplot()
    image = ax.imshow(prob, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1)
    span = flow.get("subject_span") or [0, 0]
    labels = [
        repr(t) + ("*" if span[0] <= i < span[1] else "") for i, t in enumerate(flow["tokens"])
    ]
    ax.set_xticks(range(T), labels, rotation=45, ha="right", fontsize=8)
    names = ["embed", *[str(i) for i in range(1, R - 1)], "output"]
    ax.set_yticks(range(R), names, fontsize=7)
    ax.set_ylabel("residual stream entering layer")
    heads = flow.get("heads") or []
    biggest = max([abs(h["dla"]) for h in heads] or [1.0])
    for h in heads:
        ax.annotate(
            "",
            xy=(T - 1, h["layer"] + 1),
            xytext=(h["source"], h["layer"]),
            arrowprops={
                "arrowstyle": "->",
                "color": "#d9480f",
                "lw": 0.8 + 2.5 * abs(h["dla"]) / biggest,
                "connectionstyle": "arc3,rad=-0.2",
            },
        )
    ax.set_title(f"logit lens: p({flow['answer']['token']!r}) at every layer and token")
    fig.colorbar(image, ax=ax, label="p(answer)", fraction=0.04)
    fig.tight_layout()
    return fig


def ablation_figure(curve: AblationCurve) -> Figure:
    """p(answer) as the top-k neurons are ablated, against k random neurons of the same layers."""
    fig = Figure(figsize=(4.6, 3.2))
    ax = fig.add_subplot()
    ax.plot(curve.ks, curve.top_p, "o-", ms=3, label="top-k neurons", color="#b71c1c")
    ax.plot(curve.ks, curve.random_mean, "s--", ms=3, label="random k", color="#555")
    ax.set_xscale("log")
    ax.set_xlabel("k neurons ablated")
    ax.set_ylabel("p(answer)")
    ax.set_title(f"{curve.mode}-ablation at the {curve.position} position", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


__all__ = ["ablation_figure", "flow_figure", "prediction_bar"]
