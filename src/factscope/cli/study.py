"""Study facts at scale: know, probe, trace-many (resumable sweeps, local or on Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from factscope import __version__
from factscope.cli.common import (
    DeviceOpt,
    DtypeOpt,
    FormatOpt,
    ModelOpt,
    app,
    check_format,
    command_line,
    err,
    load,
    out,
    split_kinds,
    write_json,
)
from factscope.errors import FactscopeError
from factscope.registry import DEFAULT_MODEL

DatasetOpt = Annotated[
    str, typer.Option("--dataset", "-d", help="Packaged dataset name or a .jsonl file.")
]
RunDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Run folder: records.jsonl, results, report (resumed if it exists)."
    ),
]
BackendOpt = Annotated[str, typer.Option(help="local (this process) or ray.")]
AddressOpt = Annotated[
    str | None, typer.Option(help="Ray cluster address (default: start or join a local one).")
]
RunForceOpt = Annotated[
    bool, typer.Option("--force", help="Start the run folder over, discarding its records.")
]
KnownOpt = Annotated[
    Path | None,
    typer.Option(
        "--known",
        help="A `factscope know` run folder to take the known facts from "
        "(default: the user cache, running know there first if needed).",
    ),
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="Only the first N facts of the dataset.")
]


def _backend(backend: str) -> str:
    if backend not in ("local", "ray"):
        raise FactscopeError(f"--backend {backend!r} is not known; use local or ray")
    return backend


def _write_figure(fig: Any, path: Path) -> None:
    from factscope.report.plots import save_figure

    save_figure(fig, path, force=True)


@app.command()
def know(
    dataset: DatasetOpt,
    out_dir: RunDirOpt = None,
    limit: LimitOpt = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Facts per forward pass.")
    ] = 64,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: RunForceOpt = False,
) -> None:
    """What the model knows: p(correct) of every fact with the relation's few-shot prompt,
    and the counts that survive candidates -> well-formed -> single-token answer -> known."""
    from factscope.report.study_html import know_report
    from factscope.report.study_plots import know_funnel, p_correct_histogram
    from factscope.study.datasets import load_dataset
    from factscope.study.know import default_know_dir
    from factscope.study.know import know as run_know

    _backend(backend)
    fmt = check_format(fmt)
    data = load_dataset(dataset)
    lm = load(model, device, dtype)
    run_dir = out_dir if out_dir is not None else default_know_dir(lm.name, data)
    command = command_line()
    summary, records = run_know(
        lm, data, run_dir, limit=limit, batch_size=batch_size, backend=backend,
        address=address, force=force, command=command,
    )  # fmt: skip
    result = {**summary.to_dict(), "command": command, "factscope_version": __version__}
    write_json(run_dir / "know.json", result)
    p_correct: dict[str, list[float]] = {a: [] for a in data.relation.answers}
    for r in records:
        if r["well_formed"]:
            p_correct[r["answer"]].append(r["p_correct"])
    _write_figure(know_funnel(result), run_dir / f"know_counts.{fmt}")
    _write_figure(
        p_correct_histogram(p_correct, summary.threshold, lm.name), run_dir / f"p_correct.{fmt}"
    )
    (run_dir / "report.html").write_text(
        know_report(result, p_correct, command=command), encoding="utf-8"
    )
    table = Table(title=f"{lm.name} on {data.name}: facts surviving each step")
    for column in ("answer", "candidates", "well-formed", "single-token", "known", "accuracy"):
        table.add_column(column)
    for answer in summary.counts["candidates"]:
        cells = [str(summary.counts[step][answer]) for step in summary.counts]
        table.add_row(answer, *cells, f"{summary.accuracy[answer]:.3f}")
    out.print(table)
    out.print(f"wrote {run_dir}/: records.jsonl, know.json, report.html, figures")


def study_facts(lm: Any, data: Any, known: Path | None, use_all: bool, n: int | None) -> list[Any]:
    """The facts a study command works on: the known subset (or all), the first n."""
    from factscope.study.know import known_facts

    if known is not None and not (known / "run.json").exists():
        raise FactscopeError(f"--known {known} is not a `factscope know` run folder (no run.json)")
    facts = list(data.records) if use_all else known_facts(lm, data, known)
    if not facts:
        raise FactscopeError(
            f"{lm.name} knows none of the {len(data.records)} facts of {data.name}; "
            "pass --all to use every fact"
        )
    return facts[:n] if n is not None else facts


def _study_out(out_dir: Path | None, task: str, model: str, data: Any) -> Path:
    from factscope.weights.cache import cache_root

    if out_dir is not None:
        return out_dir
    return cache_root() / "runs" / f"{task}-{data.name}-{Path(model).name.replace('.gguf', '')}"


AllOpt = Annotated[
    bool, typer.Option("--all", help="Every fact of the dataset, not only the known ones.")
]


@app.command()
def probe(
    dataset: DatasetOpt,
    out_dir: RunDirOpt = None,
    known: KnownOpt = None,
    use_all: AllOpt = False,
    n: Annotated[int | None, typer.Option("--n", min=1, help="At most N facts.")] = None,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="Seed of the folds and the label shuffle.")
    ] = 0,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Facts per forward pass.")
    ] = 32,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: RunForceOpt = False,
) -> None:
    """Linear probes for the answer on the residual stream of the known facts, every layer,
    at the last subject token and the final token, with the bare-name and the
    attention-ablated controls (DeepMind's Fact Finding)."""
    from factscope.report.study_html import probe_report
    from factscope.report.study_plots import probe_curves
    from factscope.study.datasets import load_dataset
    from factscope.study.probe import probe as run_probe

    _backend(backend)
    fmt = check_format(fmt)
    data = load_dataset(dataset)
    lm = load(model, device, dtype)
    run_dir = _study_out(out_dir, "probe", lm.name, data)
    facts = study_facts(lm, data, known, use_all, n)
    command = command_line()
    result = run_probe(
        lm, data, facts, run_dir, folds=folds, seed=seed, batch_size=batch_size,
        backend=backend, address=address, force=force, command=command,
    )  # fmt: skip
    payload = {**result.to_dict(), "command": command, "factscope_version": __version__}
    write_json(run_dir / "probe.json", payload)
    _write_figure(probe_curves(payload), run_dir / f"probe.{fmt}")
    (run_dir / "report.html").write_text(probe_report(payload, command=command), encoding="utf-8")
    for note in result.notes:
        err.print(f"note: {note}")
    table = Table(
        title=f"{lm.name}: probe for {data.relation.name} on {result.n_facts} facts "
        f"(chance {result.chance:.3f})"
    )
    for column in ("condition", "first layer > 90%", "best layer (accuracy)", "last layer"):
        table.add_column(column)
    for curve in result.curves.values():
        best = max(range(len(curve.mean)), key=lambda i: curve.mean[i])
        table.add_row(
            curve.label, "never" if curve.first_above is None else str(curve.first_above),
            f"{best} ({curve.mean[best]:.3f})", f"{curve.mean[-1]:.3f}",
        )  # fmt: skip
    out.print(table)
    out.print(
        f"wrote {run_dir}/: probe.json, report.html, probe.{fmt} (activations in clean/, ablated/)"
    )


@app.command("trace-many")
def trace_many(
    dataset: DatasetOpt,
    out_dir: RunDirOpt = None,
    known: KnownOpt = None,
    use_all: AllOpt = False,
    n: Annotated[int | None, typer.Option("--n", min=1, help="At most N facts.")] = None,
    kind: Annotated[str, typer.Option(help="Comma-separated: hidden, mlp, attn.")] = (
        "hidden,mlp,attn"
    ),
    samples: Annotated[int, typer.Option(min=1, help="Noise samples per fact.")] = 10,
    window: Annotated[int, typer.Option(min=1, help="Layers restored per mlp/attn cell.")] = 10,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of the noise.")] = 0,
    approx: Annotated[
        bool, typer.Option("--approx", help="Attribution patching: ~20x faster estimate.")
    ] = False,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: RunForceOpt = False,
) -> None:
    """Causal traces averaged over many known facts, grouped as in ROME's Figure 2."""
    from factscope.locate.corruption import KINDS
    from factscope.report.study_html import trace_many_report
    from factscope.report.study_plots import average_trace_heatmaps
    from factscope.study.datasets import load_dataset
    from factscope.study.trace_many import dataset_noise_std
    from factscope.study.trace_many import trace_many as run_trace_many

    _backend(backend)
    kinds = split_kinds(kind, tuple(KINDS), "--kind")
    fmt = check_format(fmt)
    data = load_dataset(dataset)
    lm = load(model, device, dtype)
    run_dir = _study_out(out_dir, "trace-many", lm.name, data)
    every = study_facts(lm, data, known, use_all, None)
    # the noise scale comes from every fact's subject, so --n does not change it (and a run
    # grown with a larger --n resumes)
    noise_std = dataset_noise_std(lm, every)
    command = command_line()
    result, _ = run_trace_many(
        lm, data, every[:n] if n is not None else every, run_dir, kinds=kinds,
        samples=samples, window=window, noise_std=noise_std, seed=seed, approx=approx,
        backend=backend, address=address, force=force, command=command,
    )  # fmt: skip
    payload = {**result.to_dict(), "command": command, "factscope_version": __version__}
    write_json(run_dir / "trace_many.json", payload)
    _write_figure(average_trace_heatmaps(payload), run_dir / f"trace_many.{fmt}")
    (run_dir / "report.html").write_text(
        trace_many_report(payload, command=command), encoding="utf-8"
    )
    table = Table(
        title=f"{lm.name}: average indirect effect over {result.n_facts} facts "
        f"(clean p {result.clean_p:.3f}, corrupted p {result.corrupted_p:.3f})"
    )
    for column in ("kind", "last subject token: peak (layer)", "last token: peak (layer)"):
        table.add_column(column)
    for k in kinds:
        ls, lt = result.peak(k, "last subject token"), result.peak(k, "last token")
        table.add_row(k, f"{ls[1]:+.4f} ({ls[0]})", f"{lt[1]:+.4f} ({lt[0]})")
    out.print(table)
    out.print(f"wrote {run_dir}/: records.jsonl, trace_many.json, report.html, trace_many.{fmt}")
