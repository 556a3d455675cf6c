"""Chapter 6: what a rank-one edit to a new answer does, undone afterwards."""

from __future__ import annotations

from factscope.report.html import Section, Table
from factscope.story.chapter import ChapterResult, StoryContext


def edit_chapter(context: StoryContext) -> ChapterResult:
    from factscope.story.editing import edit_and_measure, edit_sentences

    assert context.new is not None and context.answer is not None
    layer = None  # ROME's choice: the MLP window restoring most at the last subject token,
    for trace in context.results.get("trace", []):  # taken from our exact trace if we ran one
        if trace["kind"] == "mlp" and trace["method"] == "exact":
            row = trace["ie_last_subject_token"]
            layer = max(range(len(row)), key=row.__getitem__)
    record, _ = edit_and_measure(
        context.lm, context.prompt, context.subject, context.new, context.answer,
        layer=layer, progress=context.progress, keep=False,
    )  # fmt: skip
    context.results["edit"] = record
    new, old = repr(context.new.strip()), repr(context.answer.strip())
    rows = [
        [b["kind"], b["prompt"], b["p_new"], a["p_new"], b["p_old"], a["p_old"], a["top"]]
        for b, a in zip(record["before"], record["after"], strict=True)
    ]
    table = Table(
        ["kind", "prompt", f"p({new}) before", "after", f"p({old}) before", "after", "top after"],
        rows,
        "Before and after the edit (undone afterwards)",
    )
    section = Section("Rewriting the fact", tables=[table])
    return ChapterResult(
        "edit", "What a rank-one edit does", edit_sentences(record), [section], record
    )
