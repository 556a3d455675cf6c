"""The sections and reports of locate results: causal traces, activation patching, the
logit lens, direct logit attribution and the next-token prediction.

The builders take results as plain dicts, the `to_dict()` / JSON form of the result classes
in `factscope.locate` (keys may be null where a value is NaN). Keys they read:

trace (`trace_report`, a list with one dict per kind, from `TraceResult.to_dict()`):
    model: str; prompt: str; subject: str;
    answer: {text: str, id: int, token: str, note: str | None};
    tokens: list[str] (T); subject_span: [start, stop]; kind: "hidden" | "mlp" | "attn";
    window: int; noise_std: float; samples: int; seed: int; method: str;
    clean_p: float; corrupted_p: float; scores: T x L list of p(answer) after restoring.
    Optional: command: str (else one is rebuilt from the fields above); notes: list[str].
patch (`patch_report`, from `PatchResult.to_dict()`):
    model: str; clean_prompt: str | None; corrupt_prompt: str | None;
    clean_tokens: list[str] (T); corrupt_tokens: list[str] (T);
    answers: [clean answer, corrupt answer], each {text, id, token};
    clean_logit_diff: float; corrupt_logit_diff: float (logit(clean answer) -
        logit(corrupt answer) on each prompt);
    scores: {kind: grid} normalised, 0 = corrupt, 1 = clean; shapes: {kind: "layer x
        position" | "layer x head" | "layer x head x position", optionally followed by a
        remark in parentheses} (a kind missing from `shapes` is drawn as "layer x
        position"; 3-D grids get no figure);
    optional: notes: list[str]; command: str.
lens (`lens_report`, first argument, from `LensResult.to_dict()`):
    model: str; prompt: str | None; tokens: list[str]; answer: {text, id, token};
    layers: list[str] (R row names, site names such as "blocks.3.resid_pre");
    answer_prob: list[float] (R); answer_rank: list[int] (R, 0 = top-1);
    top_tokens: R x k list[str]; top_probs: R x k list[float];
    optional: notes: list[str]; command: str.
dla (`lens_report`, second argument, optional, from `DLAResult.to_dict()`):
    answer: {text, id, token}; baseline: {text, id, token} | None (its logit subtracted);
    logit: float (the real logit, or logit difference); embed: float;
    attn: list[float] (L); mlp: list[float] (L); heads: L x H list (optional);
    optional: total: float and error: float (else computed from the terms); notes.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from factscope.errors import FactscopeError
from factscope.report.html import Section, Table, render_report
from factscope.report.plots import (
    dla_bar,
    head_heatmap,
    head_position_heatmaps,
    lens_plot,
    patch_heatmap,
    trace_heatmap,
)

# ---- builders from result dicts -----------------------------------------------------------


def _answer_text(answer: Any) -> str:
    """The answer's readable token from an answer dict (or a plain string)."""
    if isinstance(answer, Mapping):
        return str(answer.get("token") or answer.get("text") or "")
    return str(answer or "")


def _answer_notes(*answers: Any) -> list[str]:
    return [str(a["note"]) for a in answers if isinstance(a, Mapping) and a.get("note")]


def _quote(text: str) -> str:
    return shlex.quote(text)


def _trace_command(traces: Sequence[Mapping[str, Any]]) -> str:
    """A best-guess `factscope trace` command from the trace dicts' fields."""
    first = traces[0]
    words = ["factscope", "trace", _quote(first["prompt"]), "--subject", _quote(first["subject"])]
    answer = first.get("answer")
    if isinstance(answer, Mapping) and answer.get("text"):
        words += ["--answer", _quote(str(answer["text"]))]
    words += ["--kind", ",".join(str(t["kind"]) for t in traces)]
    windows = [t["window"] for t in traces if t["kind"] != "hidden" and t.get("window")]
    if windows:
        words += ["--window", str(windows[0])]
    for key, option in (("samples", "--samples"), ("seed", "--seed"), ("model", "--model")):
        if first.get(key) is not None:
            words += [option, _quote(str(first[key]))]
    return " ".join(words)


def _peak(row: np.ndarray) -> tuple[float, int]:
    layer = int(np.nanargmax(row))
    return float(row[layer]), layer


def trace_sections(traces: Sequence[Mapping[str, Any]]) -> list[Section]:
    """The causal-trace sections of a report: one heatmap per kind side by side, and the
    key numbers. (`trace_report` makes a page of them; `TraceResult._repr_html_` a cell.)

    The indirect effect (IE) of a cell is its p(answer) minus the corrupted p. At the last
    subject token and at the last token the summary gives the largest IE over layers (and
    where it is) and the mean IE over layers.
    """
    if not traces:
        raise FactscopeError("there are no trace results to report; run a trace first")
    first = traces[0]
    answer = _answer_text(first.get("answer"))
    figures, summary, top_cells = [], [], []
    for trace in traces:
        scores = np.asarray(trace["scores"], dtype=np.float64)  # (T, L)
        tokens = list(trace["tokens"])
        span = (int(trace["subject_span"][0]), int(trace["subject_span"][1]))
        low, kind = float(trace["corrupted_p"]), str(trace["kind"])
        figures.append(
            trace_heatmap(
                scores,
                tokens,
                span,
                kind,
                low=low,
                answer=answer,
                window=trace.get("window"),
                model=trace.get("model"),
            )
        )
        effect = scores - low  # (T, L) indirect effect per cell
        subject_peak, subject_layer = _peak(effect[span[1] - 1])
        last_peak, last_layer = _peak(effect[-1])
        summary.append(
            [
                kind,
                float(trace["clean_p"]),
                low,
                subject_peak,
                subject_layer,
                float(np.nanmean(effect[span[1] - 1])),
                last_peak,
                last_layer,
                float(np.nanmean(effect[-1])),
            ]
        )
        flat = np.argsort(-np.nan_to_num(effect, nan=-np.inf).ravel(), kind="stable")[:5]
        for index in flat:
            t, layer = divmod(int(index), scores.shape[1])
            top_cells.append(
                [kind, t, repr(tokens[t]), layer, float(scores[t, layer]), effect[t, layer]]
            )

    details = Table(
        ["field", "value"],
        [
            ["model", first.get("model", "")],
            ["prompt", first.get("prompt", "")],
            ["subject", first.get("subject", "")],
            ["answer", f"{answer!r} (id {(first.get('answer') or {}).get('id', '?')})"],
            ["method", first.get("method", "")],
            ["noise std", first.get("noise_std")],
            ["noise samples", first.get("samples")],
            ["seed", first.get("seed")],
            ["windows", ", ".join(f"{t['kind']}: {t.get('window')}" for t in traces)],
        ],
        caption="Run",
    )
    columns = ["kind", "clean p", "corrupted p", "max IE, last subject token", "at layer"]
    columns += ["mean IE, last subject token", "max IE, last token", "at layer"]
    columns += ["mean IE, last token"]
    sections = [
        Section(
            "Causal trace",
            text=[
                "Each cell: p(answer) when the clean state at that token and layer is "
                "restored in a run whose subject tokens (marked *) were corrupted with noise. "
                "The colour scale starts at the corrupted p.",
                *_answer_notes(first.get("answer")),
            ],
            figures=figures,
            tables=[
                Table(columns, summary, caption="Summary (IE = p restored - corrupted p)"),
                Table(
                    ["kind", "position", "token", "layer", "p", "IE"],
                    top_cells,
                    caption="Top cells per kind",
                ),
                details,
            ],
        )
    ]
    return sections


def trace_report(
    traces: Sequence[Mapping[str, Any]],
    *,
    command: str | None = None,
    created: datetime | None = None,
) -> str:
    """A causal-tracing report: the sections of `trace_sections` in one page."""
    if not traces:
        raise FactscopeError("there are no trace results to report; run a trace first")
    first = traces[0]
    sections = trace_sections(traces)
    return render_report(
        f"Causal trace: {first.get('prompt', '')}",
        sections,
        {"traces": list(traces)},
        command=command or first.get("command") or _trace_command(traces),
        data_name="trace.json",
        created=created,
    )


def patch_sections(patch: Mapping[str, Any]) -> list[Section]:
    """The activation-patching sections: a heatmap per patched kind, per-head effects,
    numbers (`patch_report` makes a page of them)."""
    clean_tokens, corrupt_tokens = list(patch["clean_tokens"]), list(patch["corrupt_tokens"])
    answers = list(patch.get("answers") or [])
    names = [_answer_text(a) for a in answers]
    shapes = dict(patch.get("shapes") or {})
    figures, top_cells, skipped = [], [], []
    for kind, grid in dict(patch["scores"]).items():
        scores = np.asarray(grid, dtype=np.float64)  # None (NaN in JSON) -> nan
        shape = str(shapes.get(kind, "layer x position"))
        axes = shape.split("(")[0].strip()  # "layer x head (all positions)" -> "layer x head"
        if axes == "layer x position" and scores.ndim == 2:  # (L, T)
            figures.append(
                patch_heatmap(scores, clean_tokens, corrupt_tokens=corrupt_tokens, kind=kind)
            )
        elif axes == "layer x head" and scores.ndim == 2:  # (L, H)
            figures.append(head_heatmap(scores, f"Patching single heads ({kind})"))
        elif axes == "layer x head x position" and scores.ndim == 3:  # (L, H, T)
            figures.append(
                head_position_heatmaps(scores, clean_tokens, corrupt_tokens=corrupt_tokens)
            )
            for index in np.argsort(-np.nan_to_num(scores, nan=-np.inf).ravel())[:5]:
                layer, head, position = np.unravel_index(int(index), scores.shape)
                where = f"head {head} at {clean_tokens[position]!r}"
                top_cells.append([kind, int(layer), where, float(scores[layer, head, position])])
            continue
        else:
            skipped.append(f"{kind} ({shape})")
            continue
        for index in np.argsort(-np.nan_to_num(scores, nan=-np.inf).ravel(), kind="stable")[:5]:
            layer, column = divmod(int(index), scores.shape[1])
            where = f"head {column}" if axes == "layer x head" else repr(clean_tokens[column])
            top_cells.append([kind, layer, where, float(scores[layer, column])])
    run = Table(
        ["field", "value"],
        [
            ["model", patch.get("model", "")],
            ["clean prompt", patch.get("clean_prompt") or ""],
            ["corrupt prompt", patch.get("corrupt_prompt") or ""],
            ["answers (clean, corrupt)", ", ".join(repr(n) for n in names)],
            ["logit difference, clean run", patch.get("clean_logit_diff")],
            ["logit difference, corrupt run", patch.get("corrupt_logit_diff")],
        ],
        caption="Run",
    )
    text = [
        "Each cell: the logit difference between the two answers after patching the clean "
        "activation into the corrupt run, normalised so 0 = corrupt and 1 = clean.",
        *_answer_notes(*answers),
        *(str(n) for n in patch.get("notes") or []),
    ]
    if skipped:
        text.append("Not drawn (in the JSON data): " + ", ".join(skipped) + ".")
    sections = [
        Section(
            "Activation patching",
            text=text,
            figures=figures,
            tables=[
                Table(["kind", "layer", "where", "score"], top_cells, "Top cells per kind"),
                run,
            ],
        )
    ]
    return sections


def patch_report(
    patch: Mapping[str, Any], *, command: str | None = None, created: datetime | None = None
) -> str:
    """An activation-patching report: the sections of `patch_sections` in one page."""
    answers = list(patch.get("answers") or [])
    sections = patch_sections(patch)
    if command is None:
        command = patch.get("command") or " ".join(
            [
                "factscope patch",
                _quote(str(patch.get("clean_prompt") or "")),
                _quote(str(patch.get("corrupt_prompt") or "")),
                "--answers",
                *(_quote(str(a.get("text", ""))) for a in answers if isinstance(a, Mapping)),
                *(["--model", _quote(str(patch["model"]))] if patch.get("model") else []),
            ]
        )
    return render_report(
        f"Activation patching: {patch.get('clean_prompt') or ''}",
        sections,
        {"patch": dict(patch)},
        command=command,
        data_name="patch.json",
        created=created,
    )


def _row_name(site: str) -> str:
    """A lens row's short name: "blocks.3.resid_pre" reads "3.resid_pre"."""
    return site.removeprefix("blocks.")


def _dla_section(dla: Mapping[str, Any], answer: str) -> Section:
    attn = [float(v) for v in dla["attn"]]  # (L,)
    mlp = [float(v) for v in dla["mlp"]]  # (L,)
    embed = float(dla.get("embed") or 0.0)
    heads = dla.get("heads")  # (L, H) or None
    total = float(dla["total"]) if dla.get("total") is not None else embed + sum(attn) + sum(mlp)
    logit = dla.get("logit")
    terms: list[list[Any]] = [
        ["embedding", embed],
        ["attention, all layers", sum(attn)],
        ["MLP, all layers", sum(mlp)],
        ["sum of terms", total],
        ["logit from the forward pass", logit],
    ]
    if logit is not None:
        terms.append(["sum - logit", total - float(logit)])
    tables = [Table(["term", "logit"], terms, "Decomposition of the answer's logit")]
    if heads is not None:
        grid = np.asarray(heads, dtype=np.float64)  # (L, H)
        order = np.argsort(-np.abs(np.nan_to_num(grid)).ravel(), kind="stable")[:10]
        top = [[*divmod(int(i), grid.shape[1]), float(grid.ravel()[i])] for i in order]
        tables.append(Table(["layer", "head", "logit"], top, "Heads with the largest terms"))
    baseline = _answer_text(dla.get("baseline")) if dla.get("baseline") else None
    target = f"logit({answer!r})" + (f" - logit({baseline!r})" if baseline else "")
    return Section(
        "Direct logit attribution",
        text=[
            f"What each component writes along the unembedding direction of {target}, with "
            "the final norm's scale frozen; the terms sum to the logit.",
            *(str(n) for n in dla.get("notes") or []),
        ],
        figures=[dla_bar(attn, mlp, embed=embed, heads=heads, answer=answer)],
        tables=tables,
    )


def lens_sections(lens: Mapping[str, Any], dla: Mapping[str, Any] | None = None) -> list[Section]:
    """The logit-lens section, and the direct-logit-attribution one when `dla` is given
    (`lens_report` makes a page of them)."""
    answer = _answer_text(lens.get("answer"))
    n_rows = len(lens["answer_prob"])
    names = [_row_name(str(n)) for n in lens.get("layers") or range(n_rows)]
    probs = [float("nan") if p is None else float(p) for p in lens["answer_prob"]]
    figure = lens_plot(
        probs,
        lens["answer_rank"],
        lens["top_tokens"],
        lens["top_probs"],
        layers=names,
        answer=answer,
    )
    rows = [
        [
            names[i],
            probs[i],
            int(lens["answer_rank"][i]),
            ", ".join(
                f"{tok!r} {p:.3f}"
                for tok, p in zip(lens["top_tokens"][i], lens["top_probs"][i], strict=True)
            ),
        ]
        for i in range(n_rows)
    ]
    sections = [
        Section(
            "Logit lens",
            text=[
                "Each residual stream at the last position, read through the final norm "
                f"and the unembedding. Answer: {answer!r}.",
                *_answer_notes(lens.get("answer")),
                *(str(n) for n in lens.get("notes") or []),
            ],
            figures=[figure],
            tables=[
                Table(["residual", "p(answer)", "rank (0 = top)", "top tokens"], rows, "Top tokens")
            ],
        )
    ]
    if dla is not None:
        sections.append(_dla_section(dla, answer))
    return sections


def dla_sections(dla: Mapping[str, Any]) -> list[Section]:
    """The direct-logit-attribution section alone (`DLAResult._repr_html_`)."""
    return [_dla_section(dla, _answer_text(dla.get("answer")))]


def prediction_sections(prediction: Mapping[str, Any]) -> list[Section]:
    """The next-token distribution as a section: a sentence and the top tokens
    (`Prediction.to_dict()`: model, prompt, tokens, top: [{token, id, prob, logit}])."""
    top = list(prediction.get("top") or [])
    text = [f"{prediction.get('model', '')} after {prediction.get('prompt', '')!r}"]
    if top:
        text = [
            f"{prediction.get('model', 'the model')} continues {prediction.get('prompt', '')!r} "
            f"with {top[0]['token']!r} (p = {float(top[0]['prob']):.3f})."
        ]
    rows = [
        [rank, repr(c["token"]), int(c["id"]), float(c["prob"]), float(c["logit"])]
        for rank, c in enumerate(top, 1)
    ]
    table = Table(["rank", "token", "id", "p", "logit"], rows, "Most likely next tokens")
    return [Section("Prediction", text=text, tables=[table])]


def lens_report(
    lens: Mapping[str, Any],
    dla: Mapping[str, Any] | None = None,
    *,
    command: str | None = None,
    created: datetime | None = None,
) -> str:
    """A logit-lens report, with direct logit attribution when `dla` is given."""
    sections = lens_sections(lens, dla)
    if command is None:
        command = lens.get("command") or " ".join(
            ["factscope lens", _quote(str(lens.get("prompt") or ""))]
            + (["--model", _quote(str(lens["model"]))] if lens.get("model") else [])
        )
    return render_report(
        f"Logit lens: {lens.get('prompt') or ''}",
        sections,
        {"lens": dict(lens), "dla": None if dla is None else dict(dla)},
        command=command,
        data_name="lens.json",
        created=created,
    )
