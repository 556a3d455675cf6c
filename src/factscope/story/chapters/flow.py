"""Chapter 3: how the answer is moved to the last token (logit lens, direct logit
attribution, the heads)."""

from __future__ import annotations

import numpy as np

from factscope.report.locate_html import dla_sections
from factscope.report.story_html import flow_section
from factscope.story.chapter import ChapterResult, StoryContext, quoted


def flow_chapter(context: StoryContext) -> ChapterResult:
    from factscope.locate.lens import attribute_prompt
    from factscope.story.flow import flow_of_fact

    context.progress("logit lens at every layer and token; direct logit attribution")
    flow = flow_of_fact(context.lm, context.prompt, context.subject, context.answer)
    dla = attribute_prompt(context.lm, context.prompt, context.answer)
    flow_data, dla_data = flow.to_dict(), dla.to_dict()
    context.results["flow"], context.results["dla"] = flow_data, dla_data
    tokens, answer = flow.tokens, quoted(flow.answer["token"])
    rows = len(flow.layers)
    last_rank = [r[-1] for r in flow.rank]
    first = flow.first_top1_layer()
    sentences = []
    if first is not None and first < rows - 1:
        sentences.append(
            f"Read through the logit lens, {answer} becomes the top token at the last position "
            f"from the input of layer {first} on (p = {flow.prob[first][-1]:.2f} there) and "
            "stays there."
        )
    elif first == rows - 1:
        sentences.append(f"{answer} becomes the top token only in the model's final output.")
    else:
        best = int(np.argmin(last_rank))
        sentences.append(
            f"{answer} is never the top token at the last position; its best rank is "
            f"{last_rank[best] + 1} ({flow.layers[best]})."
        )
    span = flow.subject_span
    if span:
        rank_subject = [r[span[1] - 1] for r in flow.rank]
        best = int(np.argmin(rank_subject))
        sentences.append(
            f"At the last subject token {quoted(tokens[span[1] - 1])} the lens ranks {answer} "
            f"at best {rank_subject[best] + 1} (layer {best}): the answer is not written there "
            "but must be moved to the last token."
        )
    parts = {"embedding": dla.embed}
    parts.update({f"attention {i}": v for i, v in enumerate(dla.attn)})
    parts.update({f"MLP {i}": v for i, v in enumerate(dla.mlp)})
    largest = sorted(parts.items(), key=lambda kv: -kv[1])[:4]
    sentences.append(
        f"Its logit, {dla.logit:.2f}, is the sum of what each part writes into the last "
        "residual stream; the largest parts: "
        + ", ".join(f"{name} ({value:+.2f})" for name, value in largest)
        + "."
    )
    if flow.heads:
        heads = "; ".join(
            f"layer {h.layer} head {h.head} ({h.dla:+.2f}, attention "
            f"{h.attention_to_subject:.2f} on the subject, most on {quoted(tokens[h.source])})"
            for h in flow.heads[:3]
        )
        sentences.append(f"The heads writing it most directly: {heads}.")
    return ChapterResult(
        "flow",
        "How it is moved to the last token",
        sentences,
        [flow_section(flow_data), *dla_sections(dla_data)],
        {"flow": flow_data, "dla": dla_data},
    )
