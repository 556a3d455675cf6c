"""Figures of one edit: where the new and the old answer are recalled, before and after."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure


def recall_figure(before: Mapping[str, Any], after: Mapping[str, Any]) -> Figure:
    """Two panels over layers, one line per answer (dashed: before the edit, solid: after):
    the logit lens's p(answer) at the last token after each block, and the approximate
    trace's MLP effect on p(answer) at the last subject token (edit/measure.py: `recall`)."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    lens_ax, trace_ax = fig.subplots(1, 2)
    colours = ("tab:green", "tab:red")
    for colour, answer in zip(colours, before["answers"], strict=False):
        for view, style, when in ((before, "--", "before"), (after, "-", "after")):
            data = view["answers"][answer]
            label = f"{answer!r} {when}"
            lens_ax.plot(range(len(data["lens_p"])), data["lens_p"], style, color=colour,
                         label=label)  # fmt: skip
            trace_ax.plot(range(len(data["mlp_effect"])), data["mlp_effect"], style,
                          color=colour, label=label)  # fmt: skip
    lens_ax.set(xlabel="after block", ylabel="p(answer), logit lens at the last token",
                title="Where the answer appears")  # fmt: skip
    trace_ax.set(xlabel="MLP layer (window of 10)", ylabel="indirect effect on p(answer)",
                 title="Which MLPs recall it (last subject token)")  # fmt: skip
    trace_ax.axhline(0, color="0.7", linewidth=0.8)
    lens_ax.legend(fontsize=8)
    return fig
