"""Everyday commands: predict, generate, list models, show a config, count parameters."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from factscope.cli.common import (
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    FormatOpt,
    JsonOpt,
    ModelOpt,
    OutOpt,
    app,
    load,
    out,
    print_json,
    status,
)
from factscope.errors import FactscopeError
from factscope.registry import DEFAULT_MODEL


@app.command()
def predict(
    prompt: str,
    model: ModelOpt = DEFAULT_MODEL,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="How many candidates.")] = 10,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    as_json: JsonOpt = False,
) -> None:
    """Show the most likely next tokens after PROMPT."""
    from factscope.predict import predict_next

    if not prompt.strip():
        raise FactscopeError("the prompt is empty; give some text to continue")
    lm = load(model, device, dtype)
    prediction = predict_next(lm, prompt, top_k)
    if as_json:
        print_json(prediction.to_dict())
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
    model: ModelOpt = DEFAULT_MODEL,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n", min=1)] = 30,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = 0.0,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1)] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", min=0.0, max=1.0)] = None,
    seed: Annotated[int | None, typer.Option(min=0, max=2**32 - 1)] = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
) -> None:
    """Continue PROMPT with the model (KV-cached; greedy unless --temperature > 0)."""
    from factscope.generate import Sampling, generate_tokens

    if not prompt.strip():
        raise FactscopeError("the prompt is empty; give some text to continue")
    lm = load(model, device, dtype)
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
    """List the named models and whether each is installed, and the families factscope
    reads from any Hugging Face folder (config.json + *.safetensors) or GGUF file."""
    from factscope.registry import list_models
    from factscope.weights.convert import family_rows

    rows, families = list_models(), family_rows()
    if as_json:
        print_json({"models": rows, "families": families})
        return
    table = Table(title="models")
    for column in ("name", "installed", "package", "description"):
        table.add_column(column)
    for row in rows:
        name = row["name"] + (" (default)" if row["default"] else "")
        installed = "yes" if row["installed"] else "no"
        table.add_row(name, installed, row["package"], row["description"])
    out.print(table)
    read = Table(title="families read from a Hugging Face folder (or GGUF where marked)")
    for column in ("family", "config.json model_type", "GGUF", "differs from Llama in"):
        read.add_column(column)
    for f in families:
        gguf = "yes" if f["gguf"] else ""
        read.add_row(f["title"], ", ".join(f["model_types"]), gguf, f["differs"])
    out.print(read)


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
def info(model: Annotated[str, typer.Argument()] = DEFAULT_MODEL, as_json: JsonOpt = False) -> None:
    """Show MODEL's config and its parameter counts by component (no weights loaded)."""
    from factscope.load import load_config
    from factscope.read.params import count_params

    with status(f"reading {model} ..."):
        name, cfg = load_config(model)
    counts = count_params(cfg, name).to_dict()
    if as_json:
        print_json({"model": name, "config": cfg.to_dict(), "params": counts})
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
    video: Annotated[
        bool, typer.Option("--video", help="The video's tally: weights only, by matrix.")
    ] = False,
    out_dir: OutOpt = None,
    fmt: FormatOpt = "png",
    force: ForceOpt = False,
) -> None:
    """Count parameters by component for a named architecture (GPT-3: 175B, 116B in MLPs)."""
    from factscope.read.params import NAMED_CONFIGS, count_named, count_params

    if video or out_dir is not None:  # the video's tally, with a bar chart under --out
        from factscope.cli.superposition import show_video_tally

        show_video_tally(name, as_json, out_dir, fmt, force)
        return
    if name in NAMED_CONFIGS:
        counts = count_named(name).to_dict()
    else:
        from factscope.load import load_config

        model_name, cfg = load_config(name)
        counts = count_params(cfg, model_name).to_dict()
    if as_json:
        print_json(counts)
        return
    out.print(_params_table(f"{counts['name']} parameters", counts))
