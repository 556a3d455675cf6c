"""The `factscope` command: a thin layer that parses, calls library functions, prints.

Every user error (FactscopeError) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table

from factscope import __version__
from factscope.errors import FactscopeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Find, read and rewrite the facts a language model stores.",
)
out = Console()
err = Console(stderr=True)

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="Registry name, .gguf path or Hugging Face folder.")
]
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda or mps.")]
DtypeOpt = Annotated[str, typer.Option(help="float32, bfloat16 or float16.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def _status(message: str) -> Iterator[None]:
    """A spinner on stderr while something slow runs (stdout stays clean for --json)."""
    with err.status(message, spinner="dots"):
        yield


def _load(model: str, device: str = "cpu", dtype: str = "float32") -> Any:
    from factscope.load import load_model, parse_device, parse_dtype

    target, torch_dtype = parse_device(device), parse_dtype(dtype)
    with _status(f"loading {model} ..."):
        return load_model(model, device=target, dtype=torch_dtype)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@app.command()
def predict(
    prompt: str,
    model: ModelOpt = "gemma-3-270m",
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="How many candidates.")] = 10,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    as_json: JsonOpt = False,
) -> None:
    """Show the most likely next tokens after PROMPT."""
    from factscope.predict import predict_next

    if not prompt.strip():
        raise FactscopeError("the prompt is empty; give some text to continue")
    lm = _load(model, device, dtype)
    prediction = predict_next(lm, prompt, top_k)
    if as_json:
        _print_json(prediction.to_dict())
        return
    table = Table(title=f"{lm.name}: {prompt!r} →")
    table.add_column("rank", justify="right")
    table.add_column("token")
    table.add_column("id", justify="right")
    table.add_column("prob", justify="right")
    table.add_column("logit", justify="right")
    for rank, c in enumerate(prediction.top, 1):
        table.add_row(str(rank), repr(c.token), str(c.id), f"{c.prob:.4f}", f"{c.logit:.3f}")
    out.print(table)


@app.command()
def generate(
    prompt: str,
    model: ModelOpt = "gemma-3-270m",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n", min=1)] = 30,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = 0.0,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1)] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", min=0.0, max=1.0)] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
) -> None:
    """Continue PROMPT with the model (KV-cached; greedy unless --temperature > 0)."""
    from factscope.generate import Sampling, generate_tokens

    if not prompt.strip():
        raise FactscopeError("the prompt is empty; give some text to continue")
    lm = _load(model, device, dtype)
    sampling = Sampling(temperature, top_k, top_p, seed)
    new: list[int] = []
    sys.stdout.write(prompt)
    shown = ""
    for token in generate_tokens(
        lm.model, lm.encode(prompt), max_new_tokens, sampling, stop_token=lm.cfg.eos_token_id
    ):
        new.append(token)
        text = lm.tokenizer.decode(new)  # decode the whole tail: multi-byte pieces join up
        sys.stdout.write(text[len(shown) :])
        sys.stdout.flush()
        shown = text
    sys.stdout.write("\n")


@app.command()
def models(as_json: JsonOpt = False) -> None:
    """List the named models and whether each is installed."""
    from factscope.registry import list_models

    rows = list_models()
    if as_json:
        _print_json(rows)
        return
    table = Table(title="models")
    for column in ("name", "installed", "package", "description"):
        table.add_column(column)
    for row in rows:
        name = row["name"] + (" (default)" if row["default"] else "")
        installed = "yes" if row["installed"] else "no"
        table.add_row(name, installed, row["package"], row["description"])
    out.print(table)


def _params_table(title: str, counts: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("component")
    table.add_column("parameters", justify="right")
    table.add_column("share", justify="right")
    for component, n in counts["components"].items():
        table.add_row(component, f"{n:,}", f"{counts['fractions'][component]:.1%}")
    table.add_row("total", f"{counts['total']:,}", "100%", style="bold")
    return table


@app.command()
def info(
    model: Annotated[str, typer.Argument()] = "gemma-3-270m", as_json: JsonOpt = False
) -> None:
    """Show MODEL's config and its parameter counts by component (no weights loaded)."""
    from factscope.load import load_config
    from factscope.read.params import count_params

    with _status(f"reading {model} ..."):
        name, cfg = load_config(model)
    counts = count_params(cfg, name).to_dict()
    if as_json:
        _print_json({"model": name, "config": cfg.to_dict(), "params": counts})
        return
    table = Table(title=f"{name} config")
    table.add_column("field")
    table.add_column("value")
    for key, value in cfg.to_dict().items():
        table.add_row(key, str(value))
    out.print(table)
    out.print(
        _params_table(
            f"{name} parameters" + (" (tied embeddings)" if cfg.tie_embeddings else ""), counts
        )
    )


@app.command()
def params(
    name: Annotated[
        str, typer.Argument(help="gpt3, gpt2-small, gpt2-xl, ... or a model.")
    ] = "gpt3",
    as_json: JsonOpt = False,
) -> None:
    """Count parameters by component for a named architecture (GPT-3: 175B, 116B in MLPs)."""
    from factscope.read.params import NAMED_CONFIGS, count_named, count_params

    if name in NAMED_CONFIGS:
        counts = count_named(name).to_dict()
    else:
        from factscope.load import load_config

        model_name, cfg = load_config(name)
        counts = count_params(cfg, model_name).to_dict()
    if as_json:
        _print_json(counts)
        return
    out.print(_params_table(f"{counts['name']} parameters", counts))


# ---- locate: trace, patch, lens ------------------------------------------------------------

OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Folder for the JSON, figures and report.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Figure format: png or svg.")]


def _command_line() -> str:
    return "factscope " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _out_files(out_dir: Path, names: list[str], force: bool) -> dict[str, Path]:
    """Paths of the files a command will write into `out_dir`, checked before any is written:
    an existing file is an error unless `force` (nothing is overwritten silently)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FactscopeError(f"--out {out_dir} is a file, not a folder; give a folder")
    paths = {name: out_dir / name for name in names}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise FactscopeError(
            f"{existing[0]} already exists; pass --force to overwrite or choose another --out"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    return paths


def _check_format(fmt: str) -> str:
    if fmt not in ("png", "svg"):
        raise FactscopeError(f"--format {fmt!r} is not supported; use png or svg")
    return fmt


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _split_kinds(kinds: str, allowed: tuple[str, ...], option: str) -> list[str]:
    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in allowed]
    if unknown or not chosen:
        raise FactscopeError(
            f"{option} {kinds!r} is not valid; use a comma-separated list of {', '.join(allowed)}"
        )
    return chosen


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
        typer.Option(help="Noise std (default: 3 x the std of subject-token embeddings)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    approx: Annotated[
        bool, typer.Option("--approx", help="Attribution patching: a fast first-order estimate.")
    ] = False,
    model: ModelOpt = "gemma-3-270m",
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
) -> None:
    """Causal tracing (ROME): corrupt SUBJECT with noise, restore states one cell at a time."""
    from factscope.locate.trace import KINDS, trace_prompt
    from factscope.report.html import trace_report, write_report
    from factscope.report.plots import save_figure, trace_heatmap

    kinds = _split_kinds(kind, tuple(KINDS), "--kind")
    if not subject.strip():
        raise FactscopeError("--subject is empty; give the subject's text as in the prompt")
    fmt = _check_format(fmt)
    paths = _out_files(
        out_dir, ["trace.json", "report.html", *[f"trace_{k}.{fmt}" for k in kinds]], force
    )
    lm = _load(model, device, dtype)
    results = trace_prompt(
        lm, prompt, subject, answer, kinds=kinds, samples=samples, window=window,
        noise_std=noise, seed=seed, method="approx" if approx else "exact", progress=True,
    )  # fmt: skip
    command = _command_line()
    dicts = [{**r.to_dict(), "command": command} for r in results.values()]
    _write_json(paths["trace.json"], {"factscope_version": __version__, "traces": dicts})
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
    model: ModelOpt = "gemma-3-270m",
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Activation patching: clean activations into the CORRUPT run, one cell at a time."""
    from factscope.locate.patch import PATCH_KINDS, patch_prompts
    from factscope.report.html import patch_report, write_report
    from factscope.report.plots import (
        head_heatmap,
        head_position_heatmaps,
        patch_heatmap,
        save_figure,
    )

    kinds = _split_kinds(kind, tuple(PATCH_KINDS), "--kind")
    fmt = _check_format(fmt)
    paths = (
        _out_files(
            out_dir, ["patch.json", "report.html", *[f"patch_{k}.{fmt}" for k in kinds]], force
        )
        if out_dir is not None
        else {}
    )
    lm = _load(model, device, dtype)
    with _status("patching ..."):
        result = patch_prompts(lm, clean, corrupt, answers, kinds=kinds)
    data = {**result.to_dict(), "command": _command_line(), "factscope_version": __version__}
    if as_json:
        _print_json(data)
    if paths:
        _write_json(paths["patch.json"], data)
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
    model: ModelOpt = "gemma-3-270m",
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Logit lens (each layer's residual read through the unembedding) and direct logit
    attribution of the answer to every layer, component and head."""
    from factscope.locate.lens import attribute_prompt, lens_prompt
    from factscope.report.html import lens_report, write_report
    from factscope.report.plots import dla_bar, lens_plot, save_figure

    fmt = _check_format(fmt)
    names = ["lens.json", "report.html", f"lens.{fmt}", f"dla.{fmt}"]
    paths = _out_files(out_dir, names, force) if out_dir is not None else {}
    lm = _load(model, device, dtype)
    lens_result = lens_prompt(lm, prompt, answer, top_k)
    answer_text = lens_result.answer["text"] if answer is None else answer
    dla = attribute_prompt(lm, prompt, answer_text)
    data: dict[str, Any] = {
        "lens": lens_result.to_dict(),
        "dla": dla.to_dict(),
        "command": _command_line(),
        "factscope_version": __version__,
    }
    if as_json:
        _print_json(data)
    if paths:
        _write_json(paths["lens.json"], data)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        app(args=argv, standalone_mode=False)
    except FactscopeError as e:
        err.print(
            "error: " + str(e), style="bold red", markup=False, highlight=False, soft_wrap=True
        )
        return 2
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except click.ClickException as e:
        e.show()
        return 2
    except click.exceptions.Exit as e:
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
