"""`factscope explain-fact`: the whole story of one fact, in plain words and measured numbers.

The story is told in chapters, each computed by one capability and written from its
results: what the model predicts; where the fact is recalled (causal tracing); how it is
moved to the last token (logit lens, direct logit attribution, the heads); which neurons
write it and whether they act as an AND of the subject's names; whether a linear probe
reads it (trained on the packaged dataset that asks the same question); what a rank-one
edit to a new answer does, undone afterwards. `CHAPTERS` is the registry: a chapter whose
capability has not landed (story/capabilities.py) is left out and named in
`Story.skipped`, never half-drawn.

Every sentence is generated from the numbers of this run; nothing is hard-coded about a
particular model or fact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure

from factscope.errors import FactscopeError
from factscope.load import LoadedModel
from factscope.report.html import (
    Section,
    Table,
    dla_sections,
    prediction_sections,
    render_report,
    trace_sections,
)
from factscope.story.capabilities import available

Progress = Callable[[str], None]


@dataclass
class StoryContext:
    """What the chapters share: the model, the fact, the options, and earlier results."""

    lm: LoadedModel
    prompt: str
    subject: str
    answer: str | None  # the answer followed (set by the prediction chapter if None)
    new: str | None
    exact: bool
    samples: int
    progress: Progress
    probe_facts: int = 300  # facts of the matching dataset the probe trains on (0: no probe)
    probe_known: Path | None = None  # a `factscope know` run: train on the known facts only
    results: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChapterResult:
    """One chapter as written: sentences first, then the sections with figures and tables."""

    name: str
    title: str
    sentences: list[str]
    sections: list[Section]
    data: dict[str, Any]


@dataclass(frozen=True)
class Chapter:
    """A chapter of the story and the capabilities it needs."""

    name: str
    title: str
    needs: tuple[str, ...]
    write: Callable[[StoryContext], ChapterResult]
    wanted: Callable[[StoryContext], bool] = lambda context: True

    def available(self) -> bool:
        return all(available(n) for n in self.needs)


@dataclass
class Story:
    """The chapters written for one fact, and the chapters left out (capability absent)."""

    model: str
    prompt: str
    subject: str
    answer: dict[str, Any]
    chapters: list[ChapterResult]
    skipped: list[str]
    options: dict[str, Any]

    def summary(self) -> list[str]:
        """The first sentence of every chapter: the story in a few lines."""
        return [f"{c.title}: {c.sentences[0]}" for c in self.chapters if c.sentences]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": self.prompt,
            "subject": self.subject,
            "answer": self.answer,
            "options": self.options,
            "skipped": self.skipped,
            "chapters": {
                c.name: {"title": c.title, "sentences": c.sentences, "data": c.data}
                for c in self.chapters
            },
        }


def _tok(token: str) -> str:
    return repr(token)


def _layers(layers: Sequence[int]) -> str:
    """[3, 4, 5, 8] -> "3–5 and 8"."""
    runs: list[list[int]] = []
    for layer in sorted(layers):
        if runs and layer == runs[-1][-1] + 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    parts = [f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# ---- 1. the prediction ---------------------------------------------------------------------


def prediction_chapter(context: StoryContext) -> ChapterResult:
    from factscope.locate.prompts import answer_token
    from factscope.predict import predict_next

    context.progress("predicting the next token")
    prediction = predict_next(context.lm, context.prompt, 10).to_dict()
    top = prediction["top"]
    sentences = [
        f"{context.lm.name} continues {context.prompt!r} with {_tok(top[0]['token'])} "
        f"(p = {top[0]['prob']:.3f}); the runner-up is {_tok(top[1]['token'])} "
        f"(p = {top[1]['prob']:.3f})."
    ]
    if context.answer is None:
        context.answer = top[0]["token"]
    else:
        wanted = answer_token(context.lm.tokenizer, context.answer)
        ranks = [c["id"] for c in top]
        where = (
            f"ranked {ranks.index(wanted.id) + 1}" if wanted.id in ranks else "not among the top 10"
        )
        sentences.append(f"The answer followed here, {_tok(wanted.token)}, is {where}.")
    context.results["prediction"] = prediction
    sections = prediction_sections(prediction)
    sections[0].figures.append(_prediction_bar(top))
    return ChapterResult("prediction", "What the model predicts", sentences, sections, prediction)


def _prediction_bar(top: list[dict[str, Any]]) -> Figure:
    fig = Figure(figsize=(5.5, 0.35 * len(top) + 0.8))
    ax = fig.add_subplot()
    labels = [repr(c["token"]) for c in top][::-1]
    ax.barh(labels, [c["prob"] for c in top][::-1], color="#24469b")
    ax.set_xlabel("probability of the next token")
    fig.tight_layout()
    return fig


# ---- 2. where the fact is recalled -----------------------------------------------------------


def trace_chapter(context: StoryContext) -> ChapterResult:
    from factscope.locate.trace import trace_prompt

    method: Literal["exact", "approx"] = "exact" if context.exact else "approx"
    context.progress(f"causal trace ({method}, {context.samples} noise samples)")
    results = trace_prompt(
        context.lm,
        context.prompt,
        context.subject,
        context.answer,
        samples=context.samples,
        method=method,
    )
    traces = [r.to_dict() for r in results.values()]
    context.results["trace"] = traces
    by_kind = {t["kind"]: t for t in traces}
    first = traces[0]
    tokens = first["tokens"]
    start, stop = first["subject_span"]
    last_subject = stop - 1
    sentences = [
        f"Corrupting the subject {context.subject!r} (tokens {start}–{stop - 1}) with noise "
        f"drops p({_tok(first['answer']['token'])}) from {first['clean_p']:.3f} to "
        f"{first['corrupted_p']:.3f}; restoring one clean state at a time shows where the "
        "fact is carried."
    ]
    places = {"the last subject token": last_subject, "the last token": len(tokens) - 1}
    for kind, what in (
        ("hidden", "the hidden state"),
        ("mlp", "the MLP outputs"),
        ("attn", "the attention outputs"),
    ):
        if kind not in by_kind:
            continue
        trace = by_kind[kind]
        effect = np.asarray(trace["indirect_effect"], dtype=np.float64)  # (T, L)
        window = "" if kind == "hidden" else f" (windows of {trace['window']} layers)"
        parts = []
        for label, t in places.items():
            row = effect[t]
            layer = int(np.nanargmax(row))
            if row[layer] <= 0:
                parts.append(f"at {label} {_tok(tokens[t])} nothing comes back")
                continue
            strong = [int(i) for i in np.flatnonzero(row >= 0.5 * row[layer])]
            centred = "layer" if kind == "hidden" else "a window centred on layer"
            parts.append(
                f"at {label} {_tok(tokens[t])}, {centred} {layer} brings p back to "
                f"{row[layer] + trace['corrupted_p']:.3f} (layers {_layers(strong)} give at "
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


# ---- 3. how it is moved to the last token -----------------------------------------------------


def flow_chapter(context: StoryContext) -> ChapterResult:
    from factscope.locate.lens import attribute_prompt
    from factscope.story.flow import flow_of_fact

    context.progress("logit lens at every layer and token; direct logit attribution")
    flow = flow_of_fact(context.lm, context.prompt, context.subject, context.answer).to_dict()
    dla = attribute_prompt(context.lm, context.prompt, context.answer).to_dict()
    context.results["flow"], context.results["dla"] = flow, dla
    tokens, answer = flow["tokens"], _tok(flow["answer"]["token"])
    rows = len(flow["layers"])
    last_rank = [r[-1] for r in flow["rank"]]
    first = None
    for row, rank in enumerate(last_rank):
        first = row if rank == 0 and first is None else (first if rank == 0 else None)
    sentences = []
    if first is not None and first < rows - 1:
        sentences.append(
            f"Read through the logit lens, {answer} becomes the top token at the last position "
            f"from the input of layer {first} on (p = {flow['prob'][first][-1]:.2f} there) and "
            "stays there."
        )
    elif first == rows - 1:
        sentences.append(f"{answer} becomes the top token only in the model's final output.")
    else:
        best = int(np.argmin(last_rank))
        sentences.append(
            f"{answer} is never the top token at the last position; its best rank is "
            f"{last_rank[best] + 1} ({flow['layers'][best]})."
        )
    span = flow["subject_span"]
    if span:
        rank_subject = [r[span[1] - 1] for r in flow["rank"]]
        best = int(np.argmin(rank_subject))
        sentences.append(
            f"At the last subject token {_tok(tokens[span[1] - 1])} the lens ranks {answer} at "
            f"best {rank_subject[best] + 1} (layer {best}): the answer is not written there "
            "but must be moved to the last token."
        )
    comps = {"embedding": dla["embed"]}
    comps.update({f"attention {i}": v for i, v in enumerate(dla["attn"])})
    comps.update({f"MLP {i}": v for i, v in enumerate(dla["mlp"])})
    top = sorted(comps.items(), key=lambda kv: -kv[1])[:4]
    sentences.append(
        f"Its logit, {dla['logit']:.2f}, is the sum of what each part writes into the last "
        "residual stream; the largest parts: "
        + ", ".join(f"{name} ({value:+.2f})" for name, value in top)
        + "."
    )
    if flow["heads"]:
        heads = "; ".join(
            f"layer {h['layer']} head {h['head']} ({h['dla']:+.2f}, attention "
            f"{h['attention_to_subject']:.2f} on the subject, most on {_tok(tokens[h['source']])})"
            for h in flow["heads"][:3]
        )
        sentences.append(f"The heads writing it most directly: {heads}.")
    return ChapterResult(
        "flow",
        "How it is moved to the last token",
        sentences,
        [flow_section(flow), *dla_sections(dla)],
        {"flow": flow, "dla": dla},
    )


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


# ---- 4. the neurons ----------------------------------------------------------------------------


def neurons_chapter(context: StoryContext) -> ChapterResult:
    from factscope.read.neurons import find_neurons

    context.progress("scoring every MLP neuron; the AND test; ablation")
    result = find_neurons(
        context.lm, context.prompt, context.subject, context.answer, top=5, max_k=50, draws=3
    ).to_dict()
    context.results["neurons"] = result
    sentences = []
    rows = []
    for position, label in (("subject", "last subject token"), ("final", "last token")):
        top = result["top"].get(position) or []
        if not top:
            continue
        best = top[0]
        verdicts = [n["and_test"]["verdict"] for n in top if n.get("and_test")]
        n_and = sum(v.startswith("AND") for v in verdicts)
        promoted = ", ".join(repr(t) for t, _ in best["promotes"][:3])
        sentences.append(
            f"At the {label}, the top neuron is layer {best['layer']} #{best['index']} "
            f"(score {best['score']:+.3g}; it writes toward {promoted})"
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
                    n["layer"],
                    n["index"],
                    n["score"],
                    n["act"],
                    n["ablated_p"],
                    (n.get("and_test") or {}).get("verdict", "–"),
                    ", ".join(repr(t) for t, _ in n["promotes"][:3]),
                ]
            )
    for curve in result["ablation"]:
        if curve["mode"] == "mean" and curve["ks"]:
            k = curve["ks"][-1]
            sentences.append(
                f"Mean-ablating the top {k} neurons at the {curve['position']} position takes p "
                f"from {curve['clean_p']:.3f} to {curve['top_p'][-1]:.3f}; {k} random neurons of "
                f"the same layers, to {curve['random_mean'][-1]:.3f} on average."
            )
    table = Table(
        ["position", "layer", "neuron", "score", "activation", "p ablated", "AND test", "writes"],
        rows,
        "Top neurons",
    )
    section = Section("Neurons", text=[str(n) for n in result.get("notes") or []], tables=[table])
    section.figures.extend(_ablation_figure(c) for c in result["ablation"] if c["mode"] == "mean")
    return ChapterResult("neurons", "Which neurons write it", sentences, [section], result)


def _ablation_figure(curve: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(4.6, 3.2))
    ax = fig.add_subplot()
    ax.plot(curve["ks"], curve["top_p"], "o-", ms=3, label="top-k neurons", color="#b71c1c")
    ax.plot(curve["ks"], curve["random_mean"], "s--", ms=3, label="random k", color="#555")
    ax.set_xscale("log")
    ax.set_xlabel("k neurons ablated")
    ax.set_ylabel("p(answer)")
    ax.set_title(f"{curve['mode']}-ablation at the {curve['position']} position", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---- 5. a linear probe ------------------------------------------------------------------------


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


# ---- 6. an edit, undone ----------------------------------------------------------------------


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


# ---- the registry and the page -------------------------------------------------------------------

CHAPTERS: tuple[Chapter, ...] = (
    Chapter("prediction", "What the model predicts", ("predict",), prediction_chapter),
    Chapter("trace", "Where the fact is recalled", ("trace",), trace_chapter),
    Chapter("flow", "How it is moved to the last token", ("lens",), flow_chapter),
    Chapter("neurons", "Which neurons write it", ("neurons",), neurons_chapter),
    Chapter(
        "probe",
        "Whether a linear probe reads it",
        ("datasets", "probe"),
        probe_chapter,
        wanted=lambda context: context.probe_facts > 0,
    ),
    Chapter(
        "edit",
        "What a rank-one edit does",
        ("edit",),
        edit_chapter,
        wanted=lambda context: context.new is not None,
    ),
)


def explain_fact(
    lm: LoadedModel,
    prompt: str,
    subject: str,
    *,
    answer: str | None = None,
    new: str | None = None,
    exact: bool = False,
    samples: int = 3,
    probe_facts: int = 300,
    probe_known: Path | None = None,
    progress: Progress | None = None,
    chapters: Sequence[Chapter] | None = None,
) -> Story:
    """Compute every available chapter of the story of the fact in `prompt` about
    `subject` (answer: the model's prediction unless given; `new`: the edit's target;
    `probe_facts`: how many facts of the matching dataset the probe trains on, 0: none;
    `probe_known`: a `factscope know` run whose known facts it trains on instead of all)."""
    from factscope.locate.prompts import encode_prompt

    encode_prompt(lm.model, lm.tokenizer, prompt)  # a clear error before any work
    lm.tokenizer.find_subject_span(prompt, subject)
    context = StoryContext(
        lm, prompt, subject, answer, new, exact, samples, progress or (lambda message: None),
        probe_facts, probe_known,
    )  # fmt: skip
    written, skipped = [], []
    for chapter in CHAPTERS if chapters is None else chapters:
        if not chapter.wanted(context):
            continue
        if not chapter.available():
            skipped.append(chapter.name)
            continue
        try:
            written.append(chapter.write(context))
        except FactscopeError as error:  # present but unable here (e.g. missing data): said
            skipped.append(f"{chapter.name} ({error})")
    prediction = context.results.get("prediction", {})
    answer_info = next(
        (t["answer"] for t in context.results.get("trace", [])[:1]),
        {"token": context.answer, "from": "prediction" if answer is None else "given"},
    )
    return Story(
        model=lm.name,
        prompt=prompt,
        subject=subject,
        answer={**answer_info, "top": (prediction.get("top") or [{}])[0]},
        chapters=written,
        skipped=skipped,
        options={
            "exact": exact,
            "samples": samples,
            "new": new,
            "answer": answer,
            "probe_facts": probe_facts,
            "probe_known": None if probe_known is None else str(probe_known),
        },
    )


def story_sections(story: Story) -> list[Section]:
    """The chapters as report sections: each chapter's sentences, then its figures."""
    sections = []
    for chapter in story.chapters:
        lead, *rest = chapter.sections or [Section(chapter.title)]
        sections.append(
            Section(
                chapter.title,
                text=[*chapter.sentences, *lead.text],
                figures=lead.figures,
                tables=lead.tables,
            )
        )
        sections.extend(rest)
    return sections


def story_page(story: Story, *, command: str | None = None, created: datetime | None = None) -> str:
    """The whole story as one self-contained HTML page (inline SVG, no network)."""
    summary = Section(
        "The story in short",
        text=story.summary()
        + (
            [f"Not in this page (capability absent or unable here): {'; '.join(story.skipped)}."]
            if story.skipped
            else []
        ),
    )
    return render_report(
        f"The story of a fact: {story.prompt} → {story.answer.get('token')!r}",
        [summary, *story_sections(story)],
        story.to_dict(),
        command=command,
        data_name="story.json",
        created=created,
    )
