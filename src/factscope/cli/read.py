"""Read a fact: the neurons that store it, the directions it lives in, how it is read out."""

from __future__ import annotations

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

SubjectOpt = Annotated[
    str, typer.Option("--subject", "-s", help="The subject, exactly as written in the prompt.")
]
AnswerOpt = Annotated[
    str | None, typer.Option(help="Answer to score (default: the model's top prediction).")
]


def _check_subject(subject: str) -> None:
    if not subject.strip():
        raise FactscopeError("--subject is empty; give the subject's text as in the prompt")


def _tokens(pairs: list[Any], n: int = 5) -> str:
    return " ".join(repr(p[0]) for p in pairs[:n])


@app.command()
def neurons(
    prompt: str,
    subject: SubjectOpt,
    answer: AnswerOpt = None,
    top: Annotated[int, typer.Option(min=1, help="Top neurons to read up close.")] = 10,
    method: Annotated[
        str, typer.Option(help="Subject-token score: grad_x_act or integrated_gradients.")
    ] = "grad_x_act",
    ig_steps: Annotated[int, typer.Option(min=1, help="Integrated-gradients steps.")] = 20,
    variants: Annotated[
        str | None,
        typer.Option(
            help="AND-test names, e.g. 'first:Michael Phelps,last:Tom Jordan,neither:Tom Brady' "
            "(default: built from the shipped names list)."
        ),
    ] = None,
    max_k: Annotated[
        int | None,
        typer.Option(min=1, help="Largest k of the ablation curve (default 200)."),
    ] = None,
    all_k: Annotated[
        bool, typer.Option("--all-k", help="Every k from 1 to --max-k, not a log grid.")
    ] = False,
    draws: Annotated[int, typer.Option(min=1, help="Random-neuron draws per k.")] = 5,
    modes: Annotated[str, typer.Option(help="Ablation: comma-separated zero, mean.")] = (
        "zero,mean"
    ),
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="Seed of the random neurons.")
    ] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per batched forward.")] = 64,
    out_dir: OutOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Score every MLP neuron for the fact (at the last subject token and the final token),
    read the top ones (AND test, what they write and read) and ablate them."""
    from factscope.read.ablation import ABLATION_MODES
    from factscope.read.names import parse_variants
    from factscope.read.neuron_scores import SUBJECT_METHODS
    from factscope.read.neurons import find_neurons

    _check_subject(subject)
    if method not in SUBJECT_METHODS:
        raise FactscopeError(
            f"--method {method!r} is not valid; use {' or '.join(SUBJECT_METHODS)}"
        )
    chosen_modes = split_kinds(modes, ABLATION_MODES, "--modes")
    given = parse_variants(variants) if variants is not None else None
    fmt = check_format(fmt)
    names = ["neurons.json", "report.html", f"neurons.{fmt}", f"ablation.{fmt}", f"and_test.{fmt}"]
    paths = out_files(out_dir, names, force) if out_dir is not None else {}
    lm = load(model, device, dtype)
    ks = list(range(1, (max_k or 200) + 1)) if all_k else None
    result = find_neurons(
        lm,
        prompt,
        subject,
        answer,
        top=top,
        method=method,
        ig_steps=ig_steps,
        variants=given,
        ks=ks,
        max_k=max_k,
        draws=draws,
        modes=chosen_modes,  # type: ignore[arg-type]
        seed=seed,
        batch_size=batch_size,
        progress=True,
    )
    data = {**result.to_dict(), "command": command_line(), "factscope_version": __version__}
    if as_json:
        print_json(data)
    if paths:
        from factscope.report.html import write_report
        from factscope.report.plots import save_figure
        from factscope.report.read_plots import ablation_plot, and_test_plot, neuron_scores_plot
        from factscope.report.reading_html import neurons_report

        write_json(paths["neurons.json"], data)
        token = result.answer["token"]
        fig = neuron_scores_plot(data["scores"], data["methods"], data["top"], answer=token)
        save_figure(fig, paths[f"neurons.{fmt}"], force=True)
        fig = ablation_plot(data["ablation"], answer=token)
        save_figure(fig, paths[f"ablation.{fmt}"], force=True)
        tops = [n for ns in data["top"].values() for n in ns]
        save_figure(and_test_plot(tops, title="AND test"), paths[f"and_test.{fmt}"], force=True)
        write_report(paths["report.html"], neurons_report(data, command=data["command"]), True)
    if as_json:
        return
    if result.answer.get("note"):
        err.print(f"note: {result.answer['note']}")
    for pos, infos in result.top.items():
        table = Table(
            title=f"{lm.name}: top neurons at the {pos} token for {result.answer['token']!r} "
            f"(p = {result.clean_p:.3f}); score: {result.methods[pos]}"
        )
        for column in ("neuron", "score", "act", "p ablated", "AND test", "promotes"):
            table.add_column(column)
        for n in infos:
            verdict = n.and_test.verdict if n.and_test else "-"
            table.add_row(
                f"L{n.layer}.N{n.index}",
                f"{n.score:+.4f}",
                f"{n.act:+.3f}",
                f"{n.ablated_p:.3f}",
                verdict,
                _tokens(n.promotes),
            )
        out.print(table)
    for c in result.ablation:
        k = c.ks[-1]
        out.print(
            f"ablation ({c.position}, {c.mode}): top-{k} p = {c.top_p[-1]:.4f}, random "
            f"{c.random_mean[-1]:.4f} ± {c.random_std[-1]:.4f} (clean {c.clean_p:.4f})"
        )
    fp = result.forward_passes
    out.print(
        f"forward passes: {fp['calls']} batched calls, {fp['rows']} sequences, "
        f"{fp['tokens']} token positions; layer sums vs MLP DLA: rel. error "
        f"{result.sum_rel_error:.1e}"
    )
    if out_dir is not None:
        out.print(f"wrote {out_dir}/: " + ", ".join(names))


@app.command()
def directions(
    prompt: str,
    answer: AnswerOpt = None,
    template: Annotated[
        str, typer.Option(help="Relation prompt with {} for the athlete's name.")
    ] = "{} plays the sport of",
    layer: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Residual entering this block for the difference of means "
            "(default: the final stream).",
        ),
    ] = None,
    out_dir: OutOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The answer's unembedding direction through the layers and tokens, and
    difference-of-means directions of a relation's answers (the shipped athletes)."""
    from factscope.read.directions import read_directions

    fmt = check_format(fmt)
    names = ["directions.json", "report.html", f"projection.{fmt}", f"cosines.{fmt}"]
    paths = out_files(out_dir, names, force) if out_dir is not None else {}
    lm = load(model, device, dtype)
    with status("reading directions ..."):
        result = read_directions(lm, prompt, answer, template=template, layer=layer)
    data = {**result.to_dict(), "command": command_line(), "factscope_version": __version__}
    if as_json:
        print_json(data)
    proj, means = result.projection, result.means
    assert proj is not None and means is not None
    if paths:
        from factscope.report.html import write_report
        from factscope.report.plots import save_figure
        from factscope.report.read_plots import cosine_heatmap, projection_heatmap
        from factscope.report.reading_html import directions_report

        write_json(paths["directions.json"], data)
        fig = projection_heatmap(
            proj.projection, proj.tokens, proj.layers, answer=proj.answer["token"]
        )
        save_figure(fig, paths[f"projection.{fmt}"], force=True)
        labels = [c.answer for c in means.classes]
        fig = cosine_heatmap(means.cosines, labels, title="difference-of-means directions")
        save_figure(fig, paths[f"cosines.{fmt}"], force=True)
        write_report(paths["report.html"], directions_report(data, command=data["command"]), True)
    if as_json:
        return
    out.print(
        f"{lm.name}: {proj.answer['token']!r} is the lens's top-1 token from residual "
        f"{proj.first_top_layer} on; final-token lens logit per residual: "
        + ", ".join(f"{v[-1]:.1f}" for v in proj.lens_logit)
    )
    table = Table(
        title=f"difference-of-means directions at {means.site} ({means.n_known} of "
        f"{means.n_prompts} prompts known)"
    )
    for column in ("answer", "known", "cos with g*W_U", "share explained", "held out"):
        table.add_column(column)
    for c in means.classes:
        table.add_row(
            repr(c.answer),
            f"{c.n_known}/{c.n_prompts}",
            f"{c.cos_with_unembedding:.3f}",
            f"{c.share_explained:.3f}",
            f"{c.share_held_out:.3f}",
        )
    out.print(table)
    if out_dir is not None:
        out.print(f"wrote {out_dir}/: " + ", ".join(names))


@app.command()
def knockout(
    prompt: str,
    subject: SubjectOpt,
    answer: AnswerOpt = None,
    window: Annotated[
        int | None, typer.Option(min=1, help="Layers blocked per window (default 5).")
    ] = None,
    heads: Annotated[int, typer.Option(min=1, help="Answer-writing heads to read.")] = 5,
    out_dir: OutOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Attention knockout (Geva et al. 2023): block the final token from attending to the
    subject (or other tokens) in a window of layers; and the heads that write the answer."""
    from factscope.read.readout import knock_out

    _check_subject(subject)
    fmt = check_format(fmt)
    names = ["knockout.json", "report.html", f"knockout.{fmt}"]
    paths = out_files(out_dir, names, force) if out_dir is not None else {}
    lm = load(model, device, dtype)
    with status("attention knockout ..."):
        result = knock_out(lm, prompt, subject, answer, window=window, n_heads=heads)
    data = {**result.to_dict(), "command": command_line(), "factscope_version": __version__}
    if as_json:
        print_json(data)
    if paths:
        from factscope.report.html import write_report
        from factscope.report.plots import save_figure
        from factscope.report.read_plots import knockout_plot
        from factscope.report.reading_html import knockout_report

        write_json(paths["knockout.json"], data)
        fig = knockout_plot(
            result.starts,
            result.probs,
            result.clean_p,
            window=result.window,
            answer=result.answer["token"],
        )
        save_figure(fig, paths[f"knockout.{fmt}"], force=True)
        write_report(paths["report.html"], knockout_report(data, command=data["command"]), True)
    if as_json:
        return
    table = Table(
        title=f"{lm.name}: p({result.answer['token']!r}) = {result.clean_p:.4f}; final token "
        f"blocked from each source, {result.window}-layer windows"
    )
    table.add_column("window")
    for source in result.probs:
        table.add_column(source)
    for i, (first, last) in enumerate(result.windows):
        cells = [f"{result.probs[s][i]:.4f}" for s in result.probs]
        table.add_row(f"{first}-{last}", *cells)
    out.print(table)
    for h in result.heads:
        out.print(
            f"head L{h.layer}.H{h.head}: DLA {h.dla:+.3f}, attention on subject "
            f"{h.attn_to_subject:.2f}, writes {_tokens(h.writes)}; OV of subject "
            f"{_tokens(h.ov_subject)}"
        )
    if out_dir is not None:
        out.print(f"wrote {out_dir}/: " + ", ".join(names))
