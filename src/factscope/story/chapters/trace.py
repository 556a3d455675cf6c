"""Chapter 2: where the fact is recalled (causal tracing)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from factscope.report.locate_html import trace_sections
from factscope.story.chapter import ChapterResult, StoryContext, layer_ranges, quoted


def trace_chapter(context: StoryContext) -> ChapterResult:
    from factscope.locate.corruption import TraceSpec
    from factscope.locate.trace import trace_spec

    method: Literal["exact", "approx"] = "exact" if context.exact else "approx"
    context.progress(f"causal trace ({method}, {context.samples} noise samples)")
    spec = TraceSpec(context.prompt, context.subject, context.answer, samples=context.samples)
    results = trace_spec(context.lm, spec, method=method)
    traces = [r.to_dict() for r in results.values()]
    context.results["trace"] = traces
    first = next(iter(results.values()))
    tokens = first.tokens
    start, stop = first.subject_span
    last_subject = stop - 1
    sentences = [
        f"Corrupting the subject {context.subject!r} (tokens {start}–{stop - 1}) with noise "
        f"drops p({quoted(first.answer.token)}) from {first.clean_p:.3f} to "
        f"{first.corrupted_p:.3f}; restoring one clean state at a time shows where the "
        "fact is carried."
    ]
    places = {"the last subject token": last_subject, "the last token": len(tokens) - 1}
    for kind, what in (
        ("hidden", "the hidden state"),
        ("mlp", "the MLP outputs"),
        ("attn", "the attention outputs"),
    ):
        if kind not in results:
            continue
        trace = results[kind]
        effect = np.asarray(trace.indirect_effect, dtype=np.float64)  # (T, L)
        window = "" if kind == "hidden" else f" (windows of {trace.window} layers)"
        parts = []
        for label, t in places.items():
            row = effect[t]
            layer = int(np.nanargmax(row))
            if row[layer] <= 0:
                parts.append(f"at {label} {quoted(tokens[t])} nothing comes back")
                continue
            strong = [int(i) for i in np.flatnonzero(row >= 0.5 * row[layer])]
            centred = "layer" if kind == "hidden" else "a window centred on layer"
            parts.append(
                f"at {label} {quoted(tokens[t])}, {centred} {layer} brings p back to "
                f"{row[layer] + trace.corrupted_p:.3f} (layers {layer_ranges(strong)} give at "
                "least half of that)"
            )
        sentences.append(f"Restoring {what}{window}: " + "; ".join(parts) + ".")
    if method == "approx":
        sentences.append(
            f"These numbers are estimated by attribution patching (--approx: one forward and "
            f"backward pass, {context.samples} noise samples), a first-order estimate that is "
            "poor where restoring moves the model far; run with --exact for the exact trace."
        )
    else:
        sentences.append(f"Exact causal trace, {context.samples} noise samples.")
    return ChapterResult(
        "trace", "Where the fact is recalled", sentences, trace_sections(traces), {"traces": traces}
    )
