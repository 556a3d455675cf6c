"""Locate a fact: causal tracing, activation patching, logit lens and direct logit attribution."""

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
    FormatOpt,
    JsonOpt,
    ModelOpt,
    OutOpt,
    app,
    check_format,
    command_line,
    err,
    load,
    out,
    out_files,
    print_json,
    split_kinds,
    status,
    write_json,
)
from factscope.errors import FactscopeError
from factscope.registry import DEFAULT_MODEL


@app.command()
def trace(
    prompt: str,
    subject: Annotated[str, typer.Option("--subject", "-s", help="Text to corrupt.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the results.")],
    answer: Annotated[
        str | None, typer.Option(help="Answer to score (default: the model's top prediction).")
    ] = None,
    kind: Annotated[str, typer.Option(help="Comma-separated: hidden, mlp, attn.")] = (
        "hidden,mlp,attn"
    ),
    samples: Annotated[int, typer.Option(min=1, help="Noise samples.")] = 10,
    window: Annotated[int, typer.Option(min=1, help="Layers restored per mlp/attn cell.")] = 10,
    noise: Annotated[
        float | None,
        typer.Option(help="Noise std, > 0 (default: 3 x the std of subject-token embeddings)."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of the noise.")] = 0,
    approx: Annotated[
        bool, typer.Option("--approx", help="Attribution patching: a fast first-order estimate.")
    ] = False,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
) -> None:
    """Causal tracing (ROME): corrupt SUBJECT with noise, restore states one cell at a time."""
    from factscope.locate.corruption import KINDS
    from factscope.locate.trace import trace_prompt
    from factscope.report.html import write_report
    from factscope.report.locate_html import trace_report
    from factscope.report.plots import save_figure, trace_heatmap

    kinds = split_kinds(kind, tuple(KINDS), "--kind")
    if noise is not None and not noise > 0:  # a range cannot exclude 0 itself
        raise FactscopeError(f"--noise must be more than 0 (got {noise:g})")
    if not subject.strip():
        raise FactscopeError("--subject is empty; give the subject's text as in the prompt")
    fmt = check_format(fmt)
    paths = out_files(
        out_dir, ["trace.json", "report.html", *[f"trace_{k}.{fmt}" for k in kinds]], force
    )
    lm = load(model, device, dtype)
    results = trace_prompt(
        lm, prompt, subject, answer, kinds=kinds, samples=samples, window=window,
        noise_std=noise, seed=seed, method="approx" if approx else "exact", progress=True,
    )  # fmt: skip
    command = command_line()
    dicts = [{**r.to_dict(), "command": command} for r in results.values()]
    write_json(paths["trace.json"], {"factscope_version": __version__, "traces": dicts})
    for d in dicts:
        fig = trace_heatmap(
            d["scores"], d["tokens"], tuple(d["subject_span"]), d["kind"],
            low=d["corrupted_p"], answer=d["answer"]["token"], window=d["window"],
            model=d["model"],
        )  # fmt: skip
        save_figure(fig, paths[f"trace_{d['kind']}.{fmt}"], force=True)
    write_report(paths["report.html"], trace_report(dicts, command=command), force=True)
    first = next(iter(results.values()))
    if first.answer.note:
        err.print(f"note: {first.answer.note}")
    table = Table(title=f"{lm.name}: {prompt!r}, subject {subject!r} → {first.answer.token!r}")
    for column in ("kind", "clean p", "corrupted p", "AIE last subj", "AIE last", "peak"):
        table.add_column(column)
    for r in results.values():
        peak = r.peak
        table.add_row(
            r.kind, f"{r.clean_p:.4f}", f"{r.corrupted_p:.4f}",
            f"{r.aie_last_subject_token:+.4f}", f"{r.aie_last_token:+.4f}",
            f"{peak['token']!r} @ layer {peak['layer']} ({peak['effect']:+.3f})",
        )  # fmt: skip
    out.print(table)
    out.print(f"wrote {out_dir}/: trace.json, report.html, " + ", ".join(
        f"trace_{k}.{fmt}" for k in kinds
    ))  # fmt: skip


@app.command()
def patch(
    clean: str,
    corrupt: str,
    answers: Annotated[
        tuple[str, str],
        typer.Option(help="The clean and the corrupt answer, e.g. ' basketball' ' football'."),
    ],
    kind: Annotated[
        str, typer.Option(help="Comma-separated: resid, attn, mlp, heads, heads_pos.")
    ] = ("resid,attn,mlp,heads"),
    out_dir: OutOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Activation patching: clean activations into the CORRUPT run, one cell at a time."""
    from factscope.locate.patch import PATCH_KINDS, patch_prompts
    from factscope.report.html import write_report
    from factscope.report.locate_html import patch_report
    from factscope.report.plots import (
        head_heatmap,
        head_position_heatmaps,
        patch_heatmap,
        save_figure,
    )

    kinds = split_kinds(kind, tuple(PATCH_KINDS), "--kind")
    fmt = check_format(fmt)
    paths = (
        out_files(
            out_dir, ["patch.json", "report.html", *[f"patch_{k}.{fmt}" for k in kinds]], force
        )
        if out_dir is not None
        else {}
    )
    lm = load(model, device, dtype)
    with status("patching ..."):
        result = patch_prompts(lm, clean, corrupt, answers, kinds=kinds)
    data = {**result.to_dict(), "command": command_line(), "factscope_version": __version__}
    if as_json:
        print_json(data)
    if paths:
        write_json(paths["patch.json"], data)
        for k in kinds:
            if result.shapes[k].startswith("layer x head x"):
                fig = head_position_heatmaps(
                    data["scores"][k], result.clean_tokens, corrupt_tokens=result.corrupt_tokens
                )
            elif result.shapes[k].startswith("layer x head"):
                fig = head_heatmap(data["scores"][k], f"patching {k}")
            else:
                fig = patch_heatmap(
                    data["scores"][k], result.clean_tokens, f"patching {k}",
                    corrupt_tokens=result.corrupt_tokens, kind=k,
                )  # fmt: skip
            save_figure(fig, paths[f"patch_{k}.{fmt}"], force=True)
        write_report(paths["report.html"], patch_report(data, command=data["command"]), True)
    if as_json:
        return
    table = Table(
        title=f"{lm.name}: logit diff {result.clean_logit_diff:+.3f} (clean) vs "
        f"{result.corrupt_logit_diff:+.3f} (corrupt); score 1 = clean, 0 = corrupt"
    )
    for column in ("kind", "top cells (layer, position|head): score"):
        table.add_column(column)
    for k in kinds:
        cells = result.top_cells(k, 3)
        table.add_row(k, ", ".join(f"{cell}: {score:+.3f}" for cell, score in cells))
    out.print(table)
    if out_dir is not None:
        out.print(f"wrote {out_dir}/: patch.json, report.html and figures")


@app.command()
def lens(
    prompt: str,
    answer: Annotated[
        str | None, typer.Option(help="Answer to follow (default: the model's top prediction).")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Top tokens per layer.")] = 5,
    out_dir: OutOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Logit lens (each layer's residual read through the unembedding) and direct logit
    attribution of the answer to every layer, component and head."""
    from factscope.locate.lens import attribute_prompt, lens_prompt
    from factscope.report.html import write_report
    from factscope.report.locate_html import lens_report
    from factscope.report.plots import dla_bar, lens_plot, save_figure

    fmt = check_format(fmt)
    names = ["lens.json", "report.html", f"lens.{fmt}", f"dla.{fmt}"]
    paths = out_files(out_dir, names, force) if out_dir is not None else {}
    lm = load(model, device, dtype)
    lens_result = lens_prompt(lm, prompt, answer, top_k)
    answer_text = lens_result.answer["text"] if answer is None else answer
    dla = attribute_prompt(lm, prompt, answer_text)
    data: dict[str, Any] = {
        "lens": lens_result.to_dict(),
        "dla": dla.to_dict(),
        "command": command_line(),
        "factscope_version": __version__,
    }
    if as_json:
        print_json(data)
    if paths:
        write_json(paths["lens.json"], data)
        token = lens_result.answer["token"]
        fig = lens_plot(
            lens_result.answer_prob, lens_result.answer_rank, lens_result.top_tokens,
            lens_result.top_probs, answer=token,
        )  # fmt: skip
        save_figure(fig, paths[f"lens.{fmt}"], force=True)
        fig = dla_bar(dla.attn, dla.mlp, embed=dla.embed, heads=dla.heads, answer=token)
        save_figure(fig, paths[f"dla.{fmt}"], force=True)
        page = lens_report(data["lens"], data["dla"], command=data["command"])
        write_report(paths["report.html"], page, force=True)
    if as_json:
        return
    table = Table(
        title=f"{lm.name}: logit lens of {prompt!r}, answer {lens_result.answer['token']!r}"
    )
    for column in ("layer", "answer rank", "p(answer)", "top tokens"):
        table.add_column(column)
    for i, site in enumerate(lens_result.layers):
        tops = ", ".join(
            f"{t!r} {p:.2f}"
            for t, p in zip(lens_result.top_tokens[i], lens_result.top_probs[i], strict=True)
        )
        table.add_row(
            site, str(lens_result.answer_rank[i]), f"{lens_result.answer_prob[i]:.4f}", tops
        )
    out.print(table)
    top = ", ".join(f"{name} {value:+.2f}" for name, value in dla.top_components(5))
    out.print(f"direct logit attribution: logit {dla.logit:.3f} = sum {dla.total:.3f}; top: {top}")
    if out_dir is not None:
        out.print(f"wrote {out_dir}/: lens.json, report.html, lens.{fmt}, dla.{fmt}")
