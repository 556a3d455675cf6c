"""One-file HTML reports of study results (know, probe, trace-many), from their JSON data.

Each builder takes the plain dict a command writes (`know.json`, `probe.json`,
`trace_many.json`) and returns a page made by `render_report`: figures inline as SVG,
small tables, the reproducing command and the data itself.

know (`know_report`): summary = `KnowSummary.to_dict()` (model, dataset, relation,
    few_shot, threshold, counts[step][answer|"all"], accuracy, confusion, mean_p_correct);
    p_correct: answer -> list of p(correct) of the well-formed facts.
probe (`probe_report`): `ProbeResult.to_dict()` (model, dataset, relation, n_facts, folds,
    chance, curves: name -> {label, mean, min, max, first_above}, counts per class).
trace-many (`trace_many_report`): `AverageTrace.to_dict()` (model, dataset, n_facts,
    groups, aie: kind -> groups x layers, clean_p, corrupted_p, window, samples, method).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from factscope.report.html import Section, Table, render_report
from factscope.report.study_plots import (
    STEP_LABELS,
    average_trace_heatmaps,
    know_funnel,
    p_correct_histogram,
    probe_curves,
)


def know_report(
    summary: Mapping[str, Any],
    p_correct: Mapping[str, Sequence[float]],
    *,
    command: str | None = None,
) -> str:
    counts = summary["counts"]
    classes = list(counts["candidates"])
    funnel = Table(
        ["step", *classes],
        [[STEP_LABELS.get(step, step), *[counts[step][c] for c in classes]] for step in counts],
        caption="Facts surviving each step, per answer class",
    )
    answers = [c for c in classes if c != "all"]
    accuracy = Table(
        ["answer", "accuracy (argmax over the answer set)", "mean p(correct)"],
        [
            [c, f"{summary['accuracy'][c]:.3f}", f"{summary['mean_p_correct'][c]:.3f}"]
            for c in classes
        ],
        caption="On well-formed facts",
    )
    confusion = Table(
        ["true \\ predicted", *answers],
        [[a, *[summary["confusion"][a][b] for b in answers]] for a in answers],
        caption="Confusion over the answer set (well-formed facts)",
    )
    sections = [
        Section(
            "What the model knows",
            [
                f"Each fact is asked after the relation's worked example "
                f"{summary['few_shot']!r}; a fact is known when p(correct answer) over the "
                f"full vocabulary is above {summary['threshold']} (DeepMind's Fact Finding "
                "rule), its answer is one token and its prompt is well-formed.",
            ],
            [
                know_funnel(summary),
                p_correct_histogram(p_correct, summary["threshold"], summary["model"]),
            ],
            [funnel, accuracy, confusion],
        )
    ]
    title = f"factscope know: {summary['model']} on {summary['dataset']}"
    return render_report(title, sections, summary, command=command, data_name="know.json")


def probe_report(result: Mapping[str, Any], *, command: str | None = None) -> str:
    rows = []
    for name, curve in result["curves"].items():
        best = max(range(len(curve["mean"])), key=lambda i: curve["mean"][i])
        rows.append([
            curve.get("label", name),
            "never" if curve["first_above"] is None else curve["first_above"],
            best,
            f"{curve['mean'][best]:.3f}",
            f"{curve['mean'][-1]:.3f}",
        ])  # fmt: skip
    table = Table(
        ["condition", "first layer > 90%", "best layer", "best accuracy", "last layer"],
        rows,
        caption=f"Chance (majority class): {result['chance']:.3f}",
    )
    text = [
        f"Logistic-regression probes on the residual stream of {result['n_facts']} known "
        f"facts, {result['folds']}-fold stratified cross-validation; the band is the min-max "
        "over folds.",
        *result.get("notes", []),
    ]
    sections = [Section("Probe accuracy by layer", text, [probe_curves(result)], [table])]
    title = f"factscope probe: {result['model']} on {result['dataset']}"
    return render_report(title, sections, result, command=command, data_name="probe.json")


def trace_many_report(result: Mapping[str, Any], *, command: str | None = None) -> str:
    groups = result["groups"]
    rows = []
    for kind, grid in result["aie"].items():
        for group, row in zip(groups, grid, strict=True):
            peak = max(range(len(row)), key=lambda i: row[i])
            rows.append([kind, group, f"{row[peak]:+.4f}", peak, f"{sum(row) / len(row):+.4f}"])
    table = Table(["kind", "token group", "peak AIE", "peak layer", "mean over layers"], rows)
    text = [
        f"Causal tracing averaged over {result['n_facts']} known facts (ROME Figure 2): "
        f"mean clean p {result['clean_p']:.3f}, mean corrupted p {result['corrupted_p']:.3f}; "
        f"{result['samples']} noise samples, window {result['window']}, "
        f"method {result['method']}.",
        *result.get("notes", []),
    ]
    sections = [Section("Average indirect effect", text, [average_trace_heatmaps(result)], [table])]
    title = f"factscope trace-many: {result['model']} on {result['dataset']}"
    return render_report(title, sections, result, command=command, data_name="trace_many.json")
