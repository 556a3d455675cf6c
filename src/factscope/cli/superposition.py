"""Superposition: the video's almost-orthogonal vectors, toy models, a real model's
directions; and the video's parameter tally (used by `factscope params --video`)."""

from __future__ import annotations

from contextlib import closing
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
    load,
    out,
    out_files,
    print_json,
    write_json,
)
from factscope.errors import FactscopeError
from factscope.progress import Bar, progress_bar
from factscope.registry import DEFAULT_MODEL

superposition = typer.Typer(
    no_args_is_help=True,
    help="How a d-dimensional stream holds more than d directions: jl, capacity, toy, model.",
)
app.add_typer(superposition, name="superposition")

SeedOpt = Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Random seed.")]
LossOpt = Annotated[
    str, typer.Option(help="scene (the video's code) or squared (a variant that spreads overlap).")
]


def _bar(total: int, desc: str) -> closing[Bar]:
    """A progress bar on stderr, closed at the end of a `with`; `total` 0 counts without an
    end. Nothing is drawn for the first second, so a quick error stays one line."""
    return closing(progress_bar(total or None, True, desc, delay=1.0))


def _numbers(text: str, kind: type, option: str) -> list[Any]:
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values:
        raise FactscopeError(f"{option} {text!r} is not valid; give comma-separated numbers")
    return values


def _write_figures(paths: dict[str, Path], figures: dict[str, Any], fmt: str) -> None:
    from factscope.report.plots import save_figure

    for stem, fig in figures.items():
        save_figure(fig, paths[f"{stem}.{fmt}"], force=True)


@superposition.command("jl")
def jl(
    n: Annotated[int, typer.Option("--n", min=2, help="Number of vectors.")] = 10_000,
    dim: Annotated[int, typer.Option("--dim", min=1, help="Their dimension.")] = 100,
    steps: Annotated[int, typer.Option(min=0, help="Adam steps (the video: 250).")] = 250,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = 0.01,
    cutoff: Annotated[
        float, typer.Option(min=0.0, help="|dot| below this is not penalised.")
    ] = 0.01,
    seed: SeedOpt = 0,
    loss: LossOpt = "scene",
    out_dir: OutOpt = None,
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The video's experiment: N random unit vectors in d dims pushed apart by Adam, with
    angle histograms and statistics before and after against the Welch and frame bounds."""
    from factscope.read.superposition import LOSSES, run_jl

    if loss not in LOSSES:
        raise FactscopeError(f"--loss {loss!r} is not valid; use one of {', '.join(LOSSES)}")
    fmt = check_format(fmt)
    names = ["jl.json", "report.html", f"jl_angles.{fmt}", f"jl_loss.{fmt}"]
    paths = out_files(out_dir, names, force) if out_dir is not None else {}
    with _bar(steps, "optimising") as bar:
        result = run_jl(
            n, dim, steps, lr=lr, cutoff=cutoff, seed=seed, loss=loss, progress=bar.update
        )
    data = {**result.to_dict(), "command": command_line(), "factscope_version": __version__}
    if paths:
        from factscope.report.superposition_html import jl_report
        from factscope.report.superposition_plots import jl_histograms, jl_loss

        write_json(paths["jl.json"], data)
        _write_figures(paths, {"jl_angles": jl_histograms(data), "jl_loss": jl_loss(data)}, fmt)
        paths["report.html"].write_text(jl_report(data, command=data["command"]), "utf-8")
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{n:,} vectors in {dim} dims, {steps} steps ({result.seconds:.1f} s)")
    for column in ("statistic", "random", "optimised", "lower bound"):
        table.add_column(column, justify="right")
    b, a = result.before, result.after
    table.add_row("max |cos|", f"{b.max_abs_cos:.4f}", f"{a.max_abs_cos:.4f}",
                  f"{result.welch_bound:.4f} (Welch)")  # fmt: skip
    table.add_row("RMS cos", f"{b.rms_cos:.4f}", f"{a.rms_cos:.4f}",
                  f"{result.rms_bound:.4f} (frame)")  # fmt: skip
    table.add_row("within 89-91°", f"{b.share_89_91:.2%}", f"{a.share_89_91:.2%}", "")
    table.add_row("worst pair, ° from 90", f"{b.max_deviation_degrees:.2f}",
                  f"{a.max_deviation_degrees:.2f}", "")  # fmt: skip
    out.print(table)
    out.print(f"all pairs within 89-91°: {'yes' if result.all_within_89_91 else 'no'}")
    if out_dir is not None:
        out.print(f"wrote {out_dir}/: " + ", ".join(names))


@superposition.command("capacity")
def capacity(
    eps: Annotated[str, typer.Option(help="Comma-separated tolerances on |cos|.")] = (
        "0.05,0.1,0.2"
    ),
    dims: Annotated[str, typer.Option(help="Comma-separated dimensions.")] = "10,25,50,100,200",
    steps: Annotated[int, typer.Option(min=1, help="Adam steps per trial.")] = 250,
    max_n: Annotated[int, typer.Option("--max-n", min=2, help="Largest N tried.")] = 2000,
    tolerance: Annotated[
        float, typer.Option(min=0.0, help="Stop bisecting when hi/lo <= 1 + this.")
    ] = 0.1,
    seed: SeedOpt = 0,
    loss: LossOpt = "scene",
    out_dir: OutOpt = None,
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Capacity curve: the largest N the optimiser fits with every |cos| <= eps, per d."""
    from factscope.read.capacity import capacity_curve
    from factscope.read.superposition import LOSSES

    if loss not in LOSSES:
        raise FactscopeError(f"--loss {loss!r} is not valid; use one of {', '.join(LOSSES)}")
    fmt = check_format(fmt)
    eps_values = _numbers(eps, float, "--eps")
    dim_values = _numbers(dims, int, "--dims")
    names = ["capacity.json", "report.html", f"capacity.{fmt}"]
    paths = out_files(out_dir, names, force) if out_dir is not None else {}
    with _bar(0, "capacity trials") as bar:

        def note(line: str) -> None:  # one call per optimiser run
            bar.update(1)
            bar.set_postfix_str(line)

        result = capacity_curve(
            eps_values, dim_values, steps=steps, max_n=max_n, tolerance=tolerance, seed=seed,
            loss=loss, progress=note,
        )  # fmt: skip
    data = {**result.to_dict(), "command": command_line(), "factscope_version": __version__}
    if paths:
        from factscope.report.html import render_report
        from factscope.report.superposition_html import capacity_sections
        from factscope.report.superposition_plots import capacity_plot

        write_json(paths["capacity.json"], data)
        _write_figures(paths, {"capacity": capacity_plot(data)}, fmt)
        page = render_report("Superposition: capacity", capacity_sections(data), data,
                             command=data["command"], data_name="capacity.json")  # fmt: skip
        paths["report.html"].write_text(page, "utf-8")
    if as_json:
        print_json(data)
        return
    table = Table(title=f"largest N with every |cos| <= eps ({steps} steps, cap {max_n:,})")
    table.add_column("d", justify="right")
    for e in eps_values:
        table.add_column(f"eps {e:g}", justify="right")
    for d in dim_values:
        cells = []
        for e in eps_values:
            p = next(p for p in result.points if p.eps == e and p.dim == d)
            cells.append(f"{p.largest_n:,}" + ("+" if p.capped else ""))
        table.add_row(str(d), *cells)
    out.print(table)
    if out_dir is not None:
        out.print(f"wrote {out_dir}/: " + ", ".join(names))


@superposition.command("toy")
def toy(
    steps: Annotated[int, typer.Option(min=1, help="Training steps, n=20 sweep.")] = 10_000,
    batch: Annotated[int, typer.Option(min=1, help="Samples per step.")] = 1024,
    dim_features: Annotated[
        int,
        typer.Option(
            min=2, help="Features in the dimensionality sweep (0 in --dim-points skips it)."
        ),
    ] = 200,
    dim_hidden: Annotated[int, typer.Option(min=1, help="Its hidden dimensions.")] = 20,
    dim_steps: Annotated[int, typer.Option(min=1, help="Its training steps.")] = 5000,
    dim_points: Annotated[int, typer.Option(min=0, help="Its number of densities.")] = 24,
    phase_points: Annotated[
        int, typer.Option(min=0, help="Grid size of the n=2, m=1 phase diagram (0 skips).")
    ] = 16,
    phase_steps: Annotated[int, typer.Option(min=1, help="Steps per phase-diagram model.")] = 4000,
    seed: SeedOpt = 0,
    out_dir: OutOpt = None,
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Toy Models of Superposition: the n=20, m=5 sparsity sweep (W^T W, feature norms),
    dimensions per feature, and the n=2, m=1 phase diagram."""
    from factscope.read.toy import ToySetup, run_toy

    if dim_hidden >= dim_features and dim_points:
        raise FactscopeError("--dim-hidden must be smaller than --dim-features")
    fmt = check_format(fmt)
    stems = ["toy_gram", "toy_norms"] + (["toy_dims"] if dim_points else [])
    stems += ["toy_phase"] if phase_points else []
    names = ["toy.json", "report.html", *[f"{s}.{fmt}" for s in stems]]
    paths = out_files(out_dir, names, force) if out_dir is not None else {}
    sweep_setup = ToySetup(steps=steps, batch=batch, seed=seed)
    dim_setup = (
        ToySetup(dim_features, dim_hidden, steps=dim_steps, batch=min(batch, 256), seed=seed)
        if dim_points
        else None
    )
    total = steps + (dim_steps if dim_points else 0) + (phase_steps if phase_points else 0)
    with _bar(total, "training toy models") as bar:
        result = run_toy(
            sweep_setup, dim_setup=dim_setup, dim_points=dim_points, phase_points=phase_points,
            phase_steps=phase_steps, progress=bar.update,
        )  # fmt: skip
    data = {**result.to_dict(), "command": command_line(), "factscope_version": __version__}
    if paths:
        from factscope.report import superposition_plots as plots
        from factscope.report.superposition_html import toy_report

        write_json(paths["toy.json"], data)
        figures = {"toy_gram": plots.toy_grams(data["sweep"]),
                   "toy_norms": plots.toy_feature_norms(data["sweep"])}  # fmt: skip
        if dim_points:
            figures["toy_dims"] = plots.dims_per_feature(data["dims"], data["sticky_fractions"])
        if phase_points:
            figures["toy_phase"] = plots.phase_plot(data["phase"], data["phase_names"])
        _write_figures(paths, figures, fmt)
        paths["report.html"].write_text(toy_report(data, command=data["command"]), "utf-8")
    if as_json:
        print_json(data)
        return
    table = Table(title="n = 20 features into m = 5 dimensions, importance 0.7^i")
    for column in ("sparsity", "represented", "m/||W||²", "loss"):
        table.add_column(column, justify="right")
    for s in result.sweep:
        table.add_row(f"{s.sparsity:g}", str(s.represented), f"{s.dims_per_feature:.3f}",
                      f"{s.loss:.4f}")  # fmt: skip
    out.print(table)
    if out_dir is not None:
        out.print(f"wrote {out_dir}/: " + ", ".join(names))


@superposition.command("model")
def model_angles(
    model: ModelOpt = DEFAULT_MODEL,
    kind: Annotated[str, typer.Option(help="Comma-separated: gate, up, down, unembed.")] = (
        "gate,up,down,unembed"
    ),
    layers: Annotated[
        str | None, typer.Option(help="Comma-separated layers (default: all).")
    ] = None,
    unembed_sample: Annotated[
        int, typer.Option("--unembed-sample", min=2, help="Unembedding rows sampled.")
    ] = 4096,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    out_dir: OutOpt = None,
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Angles between the model's MLP input directions (gate, up rows), output directions
    (down columns) and unembedding rows, against random directions and the bounds."""
    from factscope.cli.common import split_kinds
    from factscope.read.model_angles import MODEL_KINDS, direction_angles

    kinds = split_kinds(kind, MODEL_KINDS, "--kind")
    chosen = _numbers(layers, int, "--layers") if layers is not None else None
    fmt = check_format(fmt)
    names = ["angles.json", "report.html", f"angles_hist.{fmt}", f"angles_layers.{fmt}"]
    paths = out_files(out_dir, names, force) if out_dir is not None else {}
    lm = load(model, device, dtype)
    n_sets = sum(1 for k in kinds if k != "unembed") * len(chosen or range(lm.cfg.n_layers))
    with _bar(n_sets, "angles") as bar:
        result = direction_angles(
            lm, kinds=kinds, layers=chosen, unembed_sample=unembed_sample, seed=seed,
            progress=bar.update,
        )  # fmt: skip
    data = {**result.to_dict(), "command": command_line(), "factscope_version": __version__}
    if paths:
        from factscope.report.superposition_html import model_report
        from factscope.report.superposition_plots import model_histograms, model_layer_stats

        write_json(paths["angles.json"], data)
        figures = {"angles_hist": model_histograms(data), "angles_layers": model_layer_stats(data)}
        _write_figures(paths, figures, fmt)
        paths["report.html"].write_text(model_report(data, command=data["command"]), "utf-8")
    if as_json:
        print_json(data)
        return
    for line in result.notes:
        out.print(line, markup=False, highlight=False)
    if out_dir is not None:
        out.print(f"wrote {out_dir}/: " + ", ".join(names))


def show_video_tally(name: str, as_json: bool, out_dir: Path | None, fmt: str, force: bool) -> None:
    """`factscope params NAME --video`: the tally as the video counts, a bar chart, a report."""
    from factscope.read.params import NAMED_CONFIGS, video_tally, video_tally_named

    fmt = check_format(fmt)
    names = ["params.json", "report.html", f"params.{fmt}"]
    paths = out_files(out_dir, names, force) if out_dir is not None else {}
    if name in NAMED_CONFIGS:
        tally = video_tally_named(name)
    else:
        from factscope.load import load_config

        model_name, cfg = load_config(name)
        tally = video_tally(cfg, model_name)
    data = {**tally.to_dict(), "command": command_line(), "factscope_version": __version__}
    if paths:
        from factscope.report.superposition_html import params_report
        from factscope.report.superposition_plots import params_bar

        write_json(paths["params.json"], data)
        _write_figures(paths, {"params": params_bar(data)}, fmt)
        paths["report.html"].write_text(params_report([data], command=data["command"]), "utf-8")
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{tally.name}: weights as the video counts them")
    table.add_column("matrix")
    table.add_column("weights", justify="right")
    table.add_column("rows x columns")
    for key, count in tally.rows.items():
        table.add_row(key, f"{count:,}", tally.formulas[key])
    table.add_row("total", f"{tally.total:,}", f"{tally.mlp:,} in MLPs", style="bold")
    out.print(table)
    out.print("left out: " + ", ".join(f"{k} {v:,}" for k, v in tally.left_out.items()))
    if out_dir is not None:
        out.print(f"wrote {out_dir}/: " + ", ".join(names))
