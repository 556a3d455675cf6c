"""Chapter 4: which MLP neurons write the answer, whether they act as an AND of the
subject's names, and what ablating them does."""

from __future__ import annotations

from factscope.report.html import Section, Table
from factscope.report.story_plots import ablation_figure
from factscope.story.chapter import ChapterResult, StoryContext


def neurons_chapter(context: StoryContext) -> ChapterResult:
    from factscope.read.neurons import find_neurons

    context.progress("scoring every MLP neuron; the AND test; ablation")
    result = find_neurons(
        context.lm, context.prompt, context.subject, context.answer, top=5, max_k=50, draws=3
    )
    data = result.to_dict()
    context.results["neurons"] = data
    sentences = []
    rows = []
    for position, label in (("subject", "last subject token"), ("final", "last token")):
        top = result.top.get(position) or []
        if not top:
            continue
        best = top[0]
        verdicts = [n.and_test.verdict for n in top if n.and_test]
        n_and = sum(v.startswith("AND") for v in verdicts)
        promoted = ", ".join(repr(t) for t, _ in best.promotes[:3])
        sentences.append(
            f"At the {label}, the top neuron is layer {best.layer} #{best.index} "
            f"(score {best.score:+.3g}; it writes toward {promoted})"
            + (
                f"; {n_and} of the top {len(verdicts)} pass the AND test (both names "
                "far above either alone)."
                if verdicts
                else "."
            )
        )
        for n in top:
            rows.append(
                [
                    label,
                    n.layer,
                    n.index,
                    n.score,
                    n.act,
                    n.ablated_p,
                    n.and_test.verdict if n.and_test else "–",
                    ", ".join(repr(t) for t, _ in n.promotes[:3]),
                ]
            )
    for curve in result.ablation:
        if curve.mode == "mean" and curve.ks:
            k = curve.ks[-1]
            sentences.append(
                f"Mean-ablating the top {k} neurons at the {curve.position} position takes p "
                f"from {curve.clean_p:.3f} to {curve.top_p[-1]:.3f}; {k} random neurons of "
                f"the same layers, to {curve.random_mean[-1]:.3f} on average."
            )
    table = Table(
        ["position", "layer", "neuron", "score", "activation", "p ablated", "AND test", "writes"],
        rows,
        "Top neurons",
    )
    section = Section("Neurons", text=[str(n) for n in result.notes or []], tables=[table])
    section.figures.extend(ablation_figure(c) for c in result.ablation if c.mode == "mean")
    return ChapterResult("neurons", "Which neurons write it", sentences, [section], data)
