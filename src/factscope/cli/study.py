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
    load,
    out,
    write_json,
)
from factscope.errors import FactscopeError

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


def _default_out(task: str, model: str, dataset: str) -> Path:
    safe = model.replace("/", "_").replace(".gguf", "")
    return Path("runs") / f"{task}-{Path(dataset).stem}-{Path(safe).name}"


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
    model: ModelOpt = "gemma-3-270m",
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
    classes = list(summary.counts["candidates"])
    for column in ("step", *classes):
        table.add_column(column)
    for step, row in summary.counts.items():
        table.add_row(step, *[str(row[c]) for c in classes])
    table.add_row("accuracy", *[f"{summary.accuracy[c]:.3f}" for c in classes])
    out.print(table)
    out.print(f"wrote {run_dir}/: records.jsonl, know.json, report.html, figures")
