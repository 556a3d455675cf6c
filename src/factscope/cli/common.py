"""What every command shares: the app, the consoles, the shared options and helpers.

Each capability registers its commands on `app` from its own module (core, locate, ...);
`factscope.cli.main` turns every user error into one line (see errors.py in this package).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from factscope.errors import FactscopeError

if TYPE_CHECKING:
    from factscope.load import LoadedModel

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
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Folder for the JSON, figures and report.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Figure format: png or svg.")]


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner on stderr while something slow runs (stdout stays clean for --json)."""
    with err.status(message, spinner="dots"):
        yield


def load(model: str, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """The LoadedModel named by --model, on --device in --dtype."""
    from factscope.load import load_model, parse_device, parse_dtype

    target, torch_dtype = parse_device(device), parse_dtype(dtype)
    with status(f"loading {model} ..."):
        return load_model(model, device=target, dtype=torch_dtype)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def command_line() -> str:
    """The command as the user typed it, recorded in every result file."""
    return "factscope " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def out_files(out_dir: Path, names: list[str], force: bool) -> dict[str, Path]:
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


def check_format(fmt: str) -> str:
    if fmt not in ("png", "svg"):
        raise FactscopeError(f"--format {fmt!r} is not supported; use png or svg")
    return fmt


def split_kinds(kinds: str, allowed: tuple[str, ...], option: str) -> list[str]:
    """A comma-separated option value as a list, every item one of `allowed`."""
    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in allowed]
    if unknown or not chosen:
        raise FactscopeError(
            f"{option} {kinds!r} is not valid; use a comma-separated list of {', '.join(allowed)}"
        )
    return chosen
