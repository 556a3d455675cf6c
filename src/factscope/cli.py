"""The `factscope` command: a thin layer that parses, calls library functions, prints.

Every user error (FactscopeError) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table

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
