"""See it: the story of one fact in one page, and the local web app."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from factscope.cli.common import (
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    ModelOpt,
    app,
    command_line,
    err,
    load,
    out,
    status,
)
from factscope.errors import FactscopeError
from factscope.registry import DEFAULT_MODEL

if TYPE_CHECKING:
    from factscope.features.sae import SparseDictionary
    from factscope.load import LoadedModel

LOOPBACK = ("127.0.0.1", "localhost", "::1")

SaeOpt = Annotated[
    Path | None,
    typer.Option(
        "--sae", help="A sparse dictionary (SAELens folder or Gemma Scope file) for its features."
    ),
]


def load_with_sae(
    model: str, device: str, dtype: str, sae_path: Path | None
) -> tuple[LoadedModel, SparseDictionary | None]:
    """The model and, with `sae_path`, the dictionary on its device; a path that is not a
    dictionary is refused before the model loads, one that does not fit it right after."""
    from factscope.features.formats import load_dictionary
    from factscope.features.inspect import check_fits

    sae = None if sae_path is None else load_dictionary(sae_path)
    lm = load(model, device, dtype)
    if sae is not None:
        check_fits(lm, sae, f"--sae {sae_path}")
        sae = sae.to(lm.model.device)
    return lm, sae


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but 127.0.0.1 opens it to others.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    runs: Annotated[
        Path, typer.Option(help="Folder of study and training runs for the Study/Train views.")
    ] = Path("runs"),
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="One forward per prediction (for comparison).")
    ] = False,
    sae_path: SaeOpt = None,
) -> None:
    """A local web app over one model: Predict, Flow, Trace and the other views (Features
    with --sae)."""
    import uvicorn

    from factscope.web.app import create_app

    if not host.strip():
        raise FactscopeError("--host is empty; give an address such as 127.0.0.1")
    lm, sae = load_with_sae(model, device, dtype, sae_path)
    if host not in LOOPBACK:
        err.print(
            f"warning: --host {host} lets other machines reach this server; it has no "
            "authentication. Use the default 127.0.0.1 unless you mean it.",
            style="bold yellow",
            markup=False,
        )
    trusted = [*LOOPBACK, "testserver"] if host in LOOPBACK else None
    web = create_app(
        lm, sae=sae, sae_path=None if sae_path is None else str(sae_path),
        batching=not no_batching, trusted_hosts=trusted, runs_dir=runs,
    )  # fmt: skip
    shown = f"[{host}]" if ":" in host else host
    out.print(f"factscope: {lm.name} at http://{shown}:{port}/  (Ctrl-C to stop)")
    uvicorn.run(web, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)


@app.command("explain-fact")
def explain_fact(
    prompt: str,
    subject: Annotated[str, typer.Option("--subject", "-s", help="The subject as in the prompt.")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")],
    new: Annotated[
        str | None, typer.Option("--new", help="An answer to edit the fact to (then undone).")
    ] = None,
    answer: Annotated[
        str | None, typer.Option(help="Answer to follow (default: the model's prediction).")
    ] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Exact causal trace (slower) instead of --approx.")
    ] = False,
    samples: Annotated[int, typer.Option(min=1, max=100, help="Noise samples of the trace.")] = 3,
    probe_facts: Annotated[
        int,
        typer.Option(
            min=0, max=5000, help="Facts of the matching dataset the probe trains on (0: no probe)."
        ),
    ] = 300,
    probe_known: Annotated[
        Path | None,
        typer.Option(help="A `factscope know` run: train the probe on the known facts only."),
    ] = None,
    sae_path: SaeOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    force: ForceOpt = False,
) -> None:
    """The whole story of one fact in one self-contained HTML page: prediction, where it is
    recalled, how it moves to the last token, neurons, probe, an edit and (with --sae) the
    dictionary's features (those present)."""
    from factscope.report.html import write_report
    from factscope.report.plots import refuse_overwrite
    from factscope.story.explain import explain_fact as build_story
    from factscope.story.explain import story_page

    if not subject.strip():
        raise FactscopeError("--subject is empty; give the subject's text as in the prompt")
    if out_file.exists() and out_file.is_dir():
        raise FactscopeError(f"--out {out_file} is a folder; give an .html file name")
    if out_file.suffix.lower() not in (".html", ".htm"):
        raise FactscopeError(f"--out {out_file} should end in .html; give an .html file name")
    refuse_overwrite(out_file, force)
    if probe_known is not None and not (probe_known / "run.json").exists():
        raise FactscopeError(
            f"--probe-known {probe_known} is not a `factscope know` run folder (no run.json)"
        )
    lm, sae = load_with_sae(model, device, dtype, sae_path)
    story = build_story(
        lm, prompt, subject, answer=answer, new=new, exact=exact, samples=samples,
        probe_facts=probe_facts, probe_known=probe_known, sae=sae,
        progress=lambda message: err.print(f"· {message}", markup=False, highlight=False),
    )  # fmt: skip
    with status("writing the page ..."):
        page = story_page(story, command=command_line())
    write_report(out_file, page, force=True)
    for line in story.summary():
        out.print(line, markup=False, highlight=False)
    if story.skipped:
        out.print("left out: " + "; ".join(story.skipped), markup=False)
    out.print(f"wrote {out_file}")
