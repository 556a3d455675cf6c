"""Rewrite a fact: ROME, MEMIT, AlphaEdit and their CounterFact-style evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from factscope import __version__
from factscope.cli.common import (
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    JsonOpt,
    ModelOpt,
    OutOpt,
    app,
    command_line,
    err,
    load,
    out,
    out_files,
    print_json,
    status,
    write_json,
)
from factscope.cli.study import AllOpt, KnownOpt, study_facts
from factscope.errors import FactscopeError
from factscope.registry import DEFAULT_MODEL

MethodOpt = Annotated[str, typer.Option("--method", help="rome, memit or alphaedit.")]
LayerOpt = Annotated[
    int | None,
    typer.Option(
        "--layer",
        min=0,
        help="Edit layer (MEMIT/AlphaEdit: the last of their layers). Default: the peak MLP "
        "effect at the last subject token of a causal trace (--trace).",
    ),
]
CorpusOpt = Annotated[
    str,
    typer.Option(
        "--corpus", help="Statistics corpus: 'self' (text the model writes, cached) or a file."
    ),
]
StatsTokensOpt = Annotated[
    int, typer.Option("--stats-tokens", min=100_000, help="Corpus tokens for C = E[k kᵀ].")
]
IdentityOpt = Annotated[
    bool, typer.Option("--identity-stats", help="Use C = I instead of corpus statistics.")
]
NullEnergyOpt = Annotated[
    float | None,
    typer.Option(
        "--nullspace-energy",
        min=0.0,
        max=1.0,
        help="AlphaEdit: the null space holds at most this share of the keys' energy tr C "
        "(chosen per layer) instead of the authors' absolute eigenvalue threshold 2e-2.",
    ),
]
ClampOpt = Annotated[
    float | None,
    typer.Option(
        "--clamp",
        min=0.01,
        help="‖δ‖ at most this many times its starting vector's norm (default: the authors', "
        "ROME 4, MEMIT/AlphaEdit 0.75).",
    ),
]
LambdaOpt = Annotated[
    float | None,
    typer.Option(
        "--mom2-update-weight",
        min=1e-6,
        help="MEMIT's λ in ΔW = R Kᵀ (λ C + K Kᵀ)⁻¹ (default: the value measured for the "
        "model where there is one, docs/edit.md; else the authors' 20,000).",
    ),
]
AuthorsOpt = Annotated[
    bool,
    typer.Option(
        "--authors-hparams",
        help="MEMIT / AlphaEdit with the authors' settings (λ 20,000, null-space threshold "
        "2e-2) instead of the ones measured for this model.",
    ),
]
TraceOpt = Annotated[
    str,
    typer.Option(
        "--trace",
        help="How the default layer is found: 'approx' (attribution patching, one backward "
        "pass; default) or 'exact' (ROME's causal trace: minutes on a CPU).",
    ),
]


def _hparams(
    method: str,
    layer: int | None,
    corpus: str,
    tokens: int,
    identity: bool,
    nullspace_energy: float | None = None,
    clamp: float | None = None,
    mom2_update_weight: float | None = None,
    model: str | None = None,
    authors: bool = False,
) -> Any:
    import dataclasses

    from factscope.edit.memit import memit_hparams
    from factscope.edit.rome import ROMEHyperParams

    if method == "rome":
        if mom2_update_weight is not None:
            raise FactscopeError("--mom2-update-weight is MEMIT's and AlphaEdit's; ROME has no λ")
        rome = ROMEHyperParams(
            layer=layer, corpus=corpus, stats_tokens=tokens, mom2_adjustment=not identity
        )
        return rome if clamp is None else dataclasses.replace(rome, clamp_norm_factor=clamp)
    return memit_hparams(
        model, authors=authors, layer=layer, corpus=corpus, stats_tokens=tokens,
        mom2_adjustment=not identity, nullspace_energy=nullspace_energy,
        clamp_norm_factor=clamp, mom2_update_weight=mom2_update_weight,
    )  # fmt: skip


def _default_layer(lm: Any, request: Any, trace: str) -> int:
    from factscope.edit import default_layer

    if trace not in ("approx", "exact"):
        raise FactscopeError(f"--trace {trace!r} is not known; use approx or exact")
    with status(f"finding the edit layer ({trace} causal trace) ..."):
        chosen = default_layer(lm, request, trace)
    err.print(f"edit layer {chosen}: peak MLP effect at the last subject token ({trace} trace)")
    return chosen


@app.command("edit")
def edit_command(
    prompt: str,
    subject: Annotated[str, typer.Option("--subject", "-s", help="The subject, as in PROMPT.")],
    new: Annotated[str, typer.Option("--new", help="The new answer as you type it: baseball.")],
    old: Annotated[
        str | None, typer.Option("--old", help="The old answer (default: the model's top one).")
    ] = None,
    method: MethodOpt = "rome",
    layer: LayerOpt = None,
    paraphrase: Annotated[
        list[str] | None, typer.Option("--paraphrase", help="A paraphrase to check (repeat).")
    ] = None,
    neighbour: Annotated[
        list[str] | None,
        typer.Option("--neighbour", help="A prompt about another subject to check (repeat)."),
    ] = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="Write the edited model to this new folder.")
    ] = None,
    corpus: CorpusOpt = "self",
    stats_tokens: StatsTokensOpt = 100_000,
    identity_stats: IdentityOpt = False,
    nullspace_energy: NullEnergyOpt = None,
    clamp: ClampOpt = None,
    mom2_update_weight: LambdaOpt = None,
    authors_hparams: AuthorsOpt = False,
    trace: TraceOpt = "approx",
    retrace: Annotated[
        bool,
        typer.Option(
            "--retrace",
            help="Also run the logit lens and the approximate trace for the new and the old "
            "answer before and after the edit: where each is recalled.",
        ),
    ] = False,
    out_dir: OutOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Rewrite one fact in the loaded model and show p(new), p(old) before and after.

    The model file is never changed; --save writes the edited model to a new folder that
    every command loads like any model."""
    from factscope.edit import check_method, edit
    from factscope.edit.corpus import load_corpus
    from factscope.edit.measure import measure, recall, test_prompts
    from factscope.edit.request import EditRequest
    from factscope.report.edit_html import edit_report, recall_summary

    check_method(method)
    _hparams(method, None, corpus, stats_tokens, identity_stats, None, clamp, mom2_update_weight)
    request = EditRequest(prompt, subject, new, old)
    request.check()
    if save is not None and save.exists() and not force:
        raise FactscopeError(f"{save} already exists; pass --force to overwrite or pick a path")
    paths = out_files(out_dir, ["edit.json", "report.html"], force) if out_dir else {}
    if not identity_stats and corpus != "self":
        load_corpus(corpus)  # a missing corpus file fails before the model loads
    lm = load(model, device, dtype)
    n_layers = lm.cfg.n_layers
    if layer is not None and layer >= n_layers:
        raise FactscopeError(
            f"layer {layer} is out of range; this model has layers 0..{n_layers - 1}"
        )
    if old is None:
        import torch

        with torch.no_grad():
            top = int(lm.model(lm.encode(prompt), logits_at="last")[0, -1].argmax())
        old = lm.tokenizer.token_str(top).strip() or lm.tokenizer.token_str(top)
        request = EditRequest(prompt, subject, new, old)
        request.check()
    probes = test_prompts(prompt, subject, paraphrase or None, neighbour or None)
    chosen = layer if layer is not None else _default_layer(lm, request, trace)
    before = measure(lm, probes, new, old)
    recall_before = recall(lm, prompt, subject, [new, old]) if retrace else None
    hp = _hparams(
        method,
        chosen,
        corpus,
        stats_tokens,
        identity_stats,
        nullspace_energy,
        clamp,
        mom2_update_weight,
        model=lm.name,
        authors=authors_hparams,
    )
    with status(f"{method} edit of layer {chosen} (statistics are computed once, then cached) ..."):
        handle = edit(lm, request, method, chosen, hparams=hp, progress=True)
    after = measure(lm, probes, new, old)
    rows: list[dict[str, Any]] = [
        {"kind": b["kind"], "prompt": b["prompt"], "p_new_before": b["p_new"],
         "p_new_after": a["p_new"], "p_old_before": b["p_old"], "p_old_after": a["p_old"],
         "top_before": b["top"], "top_after": a["top"]}
        for b, a in zip(before, after, strict=True)
    ]  # fmt: skip
    table_data: dict[str, Any] = {"method": method, "layers": handle.layers, "subject": subject,
                                  "new": new, "old": old, "rows": rows}  # fmt: skip
    if recall_before is not None:
        with status("tracing the edited model (lens and approximate trace) ..."):
            table_data["recall"] = {"before": recall_before,
                                    "after": recall(lm, prompt, subject, [new, old])}  # fmt: skip
    data = {"factscope_version": __version__, "command": command_line(), "model": lm.name,
            "before_after": table_data, "edit": handle.to_dict()}  # fmt: skip
    if save is not None:
        handle.save(lm, save, force=force)
    if paths:
        write_json(paths["edit.json"], data)
        paths["report.html"].write_text(
            edit_report(table_data, data, command_line()), encoding="utf-8"
        )
    if as_json:
        print_json(data)
        return
    table = Table(
        title=f"{lm.name}: {method} edit of layer(s) {handle.layers}: {subject!r} {old!r} → {new!r}"
    )
    for column in ("kind", "prompt", "p(new)", "p(old)", "top"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["kind"], r["prompt"], f"{r['p_new_before']:.3f} → {r['p_new_after']:.3f}",
            f"{r['p_old_before']:.3f} → {r['p_old_after']:.3f}",
            f"{r['top_before']!r} → {r['top_after']!r}",
        )  # fmt: skip
    out.print(table)
    if "recall" in table_data:
        for line in recall_summary(table_data["recall"]["before"], table_data["recall"]["after"]):
            out.print(line)
    if save is not None:
        out.print(f"saved the edited model to {save}/ (load it with --model {save})")
    elif not paths:
        err.print("the edit lives in this process only; pass --save PATH to keep it")


@app.command("edit-eval")
def edit_eval_command(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", "-d", help="Dataset name, .jsonl file, or ROME's counterfact.json."
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder (resumable).")],
    n: Annotated[
        int,
        typer.Option(
            "--n", min=1, help="Number of facts to edit (edited together: at most half the known)."
        ),
    ] = 100,
    known: KnownOpt = None,
    use_all: AllOpt = False,
    method: MethodOpt = "rome",
    layer: LayerOpt = None,
    sequential: Annotated[
        int, typer.Option("--sequential", min=0, help="Edit the first N facts one after another.")
    ] = 0,
    fluency_tokens: Annotated[
        int,
        typer.Option("--fluency-tokens", min=0, help="Tokens generated per GE text (0: no GE)."),
    ] = 48,
    corpus: CorpusOpt = "self",
    stats_tokens: StatsTokensOpt = 100_000,
    identity_stats: IdentityOpt = False,
    nullspace_energy: NullEnergyOpt = None,
    clamp: ClampOpt = None,
    mom2_update_weight: LambdaOpt = None,
    authors_hparams: AuthorsOpt = False,
    trace: TraceOpt = "approx",
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    force: ForceOpt = False,
) -> None:
    """CounterFact-style evaluation: edit N facts the model knows (--all: any N) to their
    counterfactual answers, score ES, PS, NS, S, magnitudes, GE and perplexity drift.
    Facts edited together (MEMIT, AlphaEdit, --sequential) are every second known fact of
    each answer; their neighbours are the others, left unedited.
    A CounterFact file (ROME's counterfact.json) is edited case by case as published: every
    case, its own neighbourhood and generation prompts. Killed runs resume."""
    from factscope.edit import check_method
    from factscope.edit.corpus import load_corpus
    from factscope.edit.evaluate import fact_request, known_facts_to_edit, run_edit_eval
    from factscope.edit.memit import edit_layers
    from factscope.edit.stats import identity_stats as identity
    from factscope.edit.stats import layer_stats
    from factscope.report.edit_html import edit_eval_report
    from factscope.study.counterfact import NAME as COUNTERFACT
    from factscope.study.counterfact import load_edit_dataset

    check_method(method)
    _hparams(method, None, corpus, stats_tokens, identity_stats, None, clamp, mom2_update_weight)
    data = load_edit_dataset(dataset)
    if not identity_stats and corpus != "self":
        load_corpus(corpus)
    if out_dir.exists() and not out_dir.is_dir():
        raise FactscopeError(f"--out {out_dir} is a file, not a folder; give a folder")
    lm = load(model, device, dtype)
    counterfact = data.relation.name == COUNTERFACT
    if counterfact:  # the papers' protocol: every case, with its own neighbourhood prompts
        records = list(data.records[:n])
    elif use_all:
        records = study_facts(lm, data, known, use_all, n)
    else:  # known facts, and neighbours the model knows too (known_neighbourhood)
        every_known = study_facts(lm, data, known, use_all, None)
        together = method != "rome" or bool(sequential)  # edited one at a time, or not
        records = known_facts_to_edit(every_known, sequential or n, together)
    chosen = layer if layer is not None else _default_layer(lm, fact_request(records[0]), trace)
    if chosen >= lm.cfg.n_layers:
        raise FactscopeError(
            f"layer {chosen} is out of range; this model has layers 0..{lm.cfg.n_layers - 1}"
        )
    hp = _hparams(
        method,
        chosen,
        corpus,
        stats_tokens,
        identity_stats,
        nullspace_energy,
        clamp,
        mom2_update_weight,
        model=lm.name,
        authors=authors_hparams,
    )
    layers = [chosen] if method == "rome" else edit_layers(chosen, hp.n_layers)
    stats = (
        {l: identity(lm.model, l) for l in layers}
        if identity_stats
        else layer_stats(lm.model, lm.tokenizer, layers, corpus, stats_tokens, progress=True)
    )
    meta = {"model": lm.name, "dataset": data.name, "n": n, "corpus": corpus,
            "stats_tokens": stats_tokens, "identity_stats": identity_stats,
            "neighbours": "dataset" if use_all or counterfact
            else "known facts with the same answer"
            + ("" if method == "rome" and not sequential else ", not edited in this run"),
            "hparams": hp.to_dict(), "command": command_line()}  # fmt: skip
    done, summary = run_edit_eval(
        lm, records, out_dir, method, chosen, sequential=sequential, hparams=hp, stats=stats,
        meta=meta, fluency_tokens=fluency_tokens, force=force,
    )  # fmt: skip
    result = {"factscope_version": __version__, "command": command_line(), **summary.to_dict()}
    write_json(out_dir / "summary.json", result)
    (out_dir / "report.html").write_text(
        edit_eval_report(summary.to_dict(), result, command_line()), encoding="utf-8"
    )
    table = Table(
        title=f"{lm.name}: {method} on {data.name}, {len(done)} facts"
        + (", sequential" if sequential else "")
    )
    for column in ("", "ES", "PS", "NS", "S", "EM", "NM", "GE", "ppl"):
        table.add_column(column)
    for when, fl, ppl in (("pre", summary.fluency_pre, summary.perplexity_pre),
                          ("post", summary.fluency_post, summary.perplexity_post)):  # fmt: skip
        m = getattr(summary, when)
        table.add_row(
            when, *(f"{m[k]:.1f}" for k in ("efficacy", "paraphrase", "neighbourhood", "score",
                                            "efficacy_magnitude", "neighbourhood_magnitude")),
            f"{fl:.3f}" if fl is not None else "-", f"{ppl:.2f}" if ppl is not None else "-",
        )  # fmt: skip
    out.print(table)
    out.print(f"wrote {out_dir}/: records.jsonl, summary.json, report.html")
