"""The story's sections that are not a chapter's alone: the flow picture, shown by the
flow chapter and by `FlowResult._repr_html_`."""

from __future__ import annotations

from typing import Any

from factscope.report.html import Section
from factscope.report.story_plots import flow_figure


def flow_section(flow: dict[str, Any]) -> Section:
    """The flow picture as a section (the story's and `FlowResult._repr_html_`'s)."""
    return Section(
        "The answer forming, layer by layer",
        text=[
            "Each cell: p(answer) when the residual stream entering that layer (bottom: the "
            "embeddings; top: the output) at that token is read through the final norm and "
            "unembedding. Arrows: the heads with the largest direct logit attribution, from "
            "the subject token each attends to most into the last token."
        ],
        figures=[flow_figure(flow)],
    )


__all__ = ["flow_section"]
