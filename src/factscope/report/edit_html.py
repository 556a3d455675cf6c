"""HTML for edits: before/after tables of one edit, and CounterFact summary rows.

Pure functions of the plain-data results (`to_dict()` of EditHandle, EvaluationSummary
and the CLI's before/after table), reused by `factscope edit`, `edit-eval` and notebooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from factscope.report.html import Section, Table, render_fragment, render_report

PUBLISHED = [
    ("ROME, GPT-2 XL (Meng et al. 2022)", 100.0, 96.4, 75.4, 89.2),
    ("ROME, GPT-2 Medium (Meng et al. 2022)", None, None, None, 87.4),
    ("MEMIT, GPT-J, 10,000 edits (Meng et al. 2023)", None, None, None, 85.8),
    ("AlphaEdit, GPT-J, 2,000 sequential (Fang et al. 2025)", 99.8, 96.4, 75.5, None),
]


def before_after_sections(table: Mapping[str, Any]) -> list[Section]:
    """p(new), p(old) and the top prediction before and after, per prompt kind."""
    rows = [
        [r["kind"], r["prompt"], r["p_new_before"], r["p_new_after"], r["p_old_before"],
         r["p_old_after"], r["top_before"], r["top_after"]]
        for r in table["rows"]
    ]  # fmt: skip
    columns = ["kind", "prompt", "p(new) before", "p(new) after", "p(old) before",
               "p(old) after", "top before", "top after"]  # fmt: skip
    text = [
        f"{table['method'].upper()} edit of layer(s) {table['layers']}: "
        f"{table['subject']!r}: {table['old']!r} → {table['new']!r}."
    ]
    sections = [Section("Before and after", text, tables=[Table(columns, rows)])]
    if "recall" in table:
        from factscope.report.edit_plots import recall_figure

        before, after = table["recall"]["before"], table["recall"]["after"]
        sections.append(
            Section(
                "Where each answer is recalled, before and after",
                recall_summary(before, after),
                figures=[recall_figure(before, after)],
            )
        )
    return sections


def summary_sections(summaries: Sequence[Mapping[str, Any]]) -> list[Section]:
    """CounterFact's columns for each evaluated method, next to the published numbers."""
    rows: list[list[Any]] = []
    for s in summaries:
        post = s["post"]
        rows.append([
            f"{s['method']} on {s['model']}, {s['dataset']}, {s['n_facts']} facts"
            + (f", sequential {s['sequential']}" if s["sequential"] else ""),
            post["efficacy"], post["paraphrase"], post["neighbourhood"], post["score"],
            post.get("efficacy_magnitude"), post.get("neighbourhood_magnitude"),
            s.get("fluency_post"),
        ])  # fmt: skip
    for name, es, ps, ns, score in PUBLISHED:
        rows.append([f"published: {name}", es, ps, ns, score, None, None, None])
    columns = ["edits", "ES", "PS", "NS", "S", "EM", "NM", "GE"]
    return [Section("CounterFact measures (%)", tables=[Table(columns, rows)])]


def summary_html(summary: Mapping[str, Any]) -> str:
    return render_fragment(summary_sections([summary]))


def handle_html(handle: Mapping[str, Any]) -> str:
    edits = handle.get("edits", [])
    rows = [[e.get("method"), e.get("layer", e.get("layers")), e.get("steps", ""),
             (e.get("losses") or e.get("final_losses") or [{}])[-1].get("loss", "")]
            for e in edits]  # fmt: skip
    text = [f"{handle['method']} on layers {handle['layers']}; undone: {handle['undone']}"]
    section = Section(
        "Edit", text, tables=[Table(["method", "layer", "steps", "final loss"], rows)]
    )
    return render_fragment([section])


def result_html(result: Mapping[str, Any]) -> str:
    """One ROME or MEMIT/AlphaEdit result (its `to_dict()`) as a notebook fragment."""
    rows = [[k, v] for k, v in result.items() if isinstance(v, (int, float, str, list))
            and k not in ("losses", "final_losses", "requests")]  # fmt: skip
    losses = result.get("losses") or []
    text = [f"final loss {losses[-1]['loss']:.3f} after {len(losses)} steps"] if losses else []
    return render_fragment([Section(f"{result['method']} edit", text,
                                    tables=[Table(["field", "value"], rows)])])  # fmt: skip


def edit_report(table: Mapping[str, Any], data: Any, command: str) -> str:
    return render_report("factscope edit", before_after_sections(table), data, command=command)


def edit_eval_report(summary: Mapping[str, Any], data: Any, command: str) -> str:
    return render_report("factscope edit-eval", summary_sections([summary]), data, command=command)


def recall_summary(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """In words: the first block whose lens puts each answer above 1/2 of its final p, and
    the MLP layer of largest effect, before and after."""
    lines = []
    for answer, b in before["answers"].items():
        a = after["answers"][answer]

        def where(view: dict[str, Any]) -> str:
            final = view["lens_p"][-1]
            first = next(i for i, p in enumerate(view["lens_p"]) if p >= final / 2)
            peak = max(range(len(view["mlp_effect"])), key=view["mlp_effect"].__getitem__)
            return f"p {final:.3f}, lens reaches half of it after block {first}, MLP peak {peak}"

        lines.append(f"{answer!r}: before: {where(b)}; after: {where(a)}")
    return lines
