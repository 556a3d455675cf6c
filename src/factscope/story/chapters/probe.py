"""Chapter 5: whether a linear probe reads the answer from the residual stream, trained on
the packaged dataset that asks the same question."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from factscope.errors import FactscopeError
from factscope.report.html import Section, Table
from factscope.story.chapter import ChapterResult, StoryContext


def probe_chapter(context: StoryContext) -> ChapterResult:
    from factscope.report.study_plots import probe_curves
    from factscope.story.probing import matching_dataset, probe_fact

    dataset = matching_dataset(context.prompt, context.subject)
    if dataset is None:
        raise FactscopeError(
            "no packaged dataset asks this question (a relation's template with the subject), "
            "so there are no facts to train a probe on"
        )
    known = None
    if context.probe_known is not None:
        import json

        from factscope.study.know import known_facts

        meta = json.loads((context.probe_known / "run.json").read_text()).get("meta", {})
        made_by = (meta.get("task"), meta.get("model"), meta.get("dataset"))
        if made_by != ("know", context.lm.name, dataset.name):
            raise FactscopeError(
                f"--probe-known {context.probe_known} is a {made_by[0]} run of "
                f"{made_by[1]} on {made_by[2]}; give a know run of {context.lm.name} on "
                f"{dataset.name}"
            )
        context.progress(f"probe: the facts the model knows, from {context.probe_known}")
        known = known_facts(context.lm, dataset, context.probe_known, progress=False)
    result = probe_fact(
        context.lm, dataset, context.subject, answer=context.answer, known=known,
        facts=context.probe_facts, progress=context.progress,
    )  # fmt: skip
    data = result.to_dict()
    context.results["probe"] = data
    curve, n = result.curve, len(result.record_ids)
    counts = ", ".join(f"{k} {a}" for a, k in result.counts.items())
    sentences = [
        f"A linear probe on the residual stream at the last subject token first reaches 90% "
        f"of its best accuracy at layer {result.reaches} ({curve.mean[result.reaches]:.3f}; "
        f"best {result.best_accuracy:.3f} at layer {result.best_layer}; chance "
        f"{result.chance:.3f}); "
        + (
            f"it first exceeds 90% accuracy at layer {curve.first_above}."
            if curve.first_above is not None
            else "it never reaches 90% accuracy."
        )
    ]
    if result.best_accuracy < result.chance + 0.05:
        sentences.append("That is hardly above chance: the probe does not read the answer here.")
    which = (
        f"facts the model knows (by `factscope know`, {context.probe_known})"
        if result.facts_from == "known"
        else "facts"
    )
    sentences.append(
        f"It was trained on {n} other {which} of the {dataset.name} dataset ({counts}), asked "
        f"with the study's worked example first ({dataset.relation.few_shot!r} + the prompt), "
        f"and scored by {result.folds}-fold cross-validation."
        + (
            " The labels are the dataset's answers, whether or not the model knows each fact "
            "(--probe-known with a `factscope know` run trains on the known facts only)."
            if result.facts_from == "all"
            else ""
        )
    )
    if result.left_out:
        sentences.append(
            f"Answers with fewer than {result.folds} facts in the sample were left out: "
            + ", ".join(repr(a) for a in result.left_out)
            + "."
        )
    where = {"dataset": "the dataset's answer", "prediction": "the model's answer here"}
    readings = []
    for layer in dict.fromkeys((result.reaches, result.best_layer)):
        probs = result.subject_probs[layer]
        said = f"at layer {layer} it predicts {result.classes[int(np.argmax(probs))]!r}"
        if result.subject_answer is not None:
            p = probs[result.classes.index(result.subject_answer)]
            said += f" with p({result.subject_answer!r}) = {p:.3f}"
        readings.append(said)
    sentences.append(
        f"Fitted on all {n} facts, the probe reads {context.subject}'s own residual stream "
        "(this subject is not among them): "
        + "; ".join(readings)
        + (
            f" ({result.subject_answer!r} is {where[result.answer_from]})."
            if result.subject_answer is not None
            else " (the model's answer is not one of the probed answers)."
        )
    )
    figure = probe_curves(
        {
            "curves": {"subject": asdict(curve)},
            "chance": result.chance,
            "folds": result.folds,
            "model": context.lm.name,
            "relation": result.relation,
            "n_facts": n,
        }
    )
    if result.subject_answer is not None:
        column = result.classes.index(result.subject_answer)
        ax = figure.axes[0]
        ax.plot(
            [p[column] for p in result.subject_probs], "x--", color="#d9480f",
            label=f"probe's p({result.subject_answer}) for {context.subject}",
        )  # fmt: skip
        ax.legend(fontsize=7, loc="lower right")
    rows = [
        [
            layer,
            curve.mean[layer],
            curve.min[layer],
            curve.max[layer],
            result.classes[int(np.argmax(probs))],
            "–"
            if result.subject_answer is None
            else probs[result.classes.index(result.subject_answer)],
        ]
        for layer, probs in enumerate(result.subject_probs)
    ]
    table = Table(
        ["layer", "CV accuracy", "min fold", "max fold", f"reads {context.subject!r} as",
         "p(its answer)"],
        rows,
        "Layer 0: the embeddings; layer l: the residual stream after block l",
    )  # fmt: skip
    section = Section("Reading the answer with a linear probe", figures=[figure], tables=[table])
    return ChapterResult("probe", "Whether a linear probe reads it", sentences, [section], data)
