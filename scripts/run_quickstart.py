"""Execute docs/quickstart.ipynb with a chosen model and write it with its outputs.

    python scripts/run_quickstart.py MODEL OUT.ipynb [--set NAME=VALUE ...] [--force]

MODEL is anything `--model` takes (a registry name, a .gguf file, a model folder). Each
`--set NAME=VALUE` overrides one more parameter of the notebook's first cell (VALUE is a
Python literal: 3, None, "all", {"mom2_adjustment": False}). The overrides go into a cell
tagged `injected-parameters` right after the parameters cell, as papermill does, so the
stored notebook stays as it is. The kernel runs in OUT's folder (the notebook's RUN_DIR is
relative to it) with this interpreter's environment.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "quickstart.ipynb"


def parse_setting(text: str) -> tuple[str, Any]:
    """NAME=VALUE -> (NAME, the Python literal VALUE)."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier() or not name.isupper():
        raise ValueError(f"--set {text!r}: write NAME=VALUE with an upper-case NAME")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise ValueError(f"--set {text!r}: VALUE must be a Python literal") from None


def with_parameters(nb: Any, settings: dict[str, Any]) -> Any:
    """A copy of `nb` with `settings` assigned in a cell after the one tagged `parameters`."""
    nb = nbformat.from_dict(nb)
    where = next(
        i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])
    )
    source = "\n".join(f"{name} = {value!r}" for name, value in settings.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(where + 1, cell)
    return nb


def prepared(settings: dict[str, Any]) -> Any:
    """The stored quickstart with `settings` injected after its parameters cell."""
    return with_parameters(nbformat.read(NOTEBOOK, as_version=4), settings)


def execute(nb: Any, out: Path, timeout: int = 3600) -> Any:
    """Execute `nb` in `out`'s folder, then write it to `out`. A cell that fails stops the
    run; the notebook is still written, with the error in its output."""
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": out.parent}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, out)
    return nb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="what --model takes: a registry name, .gguf, folder")
    parser.add_argument("out", type=Path, help="the executed notebook to write (.ipynb)")
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
        help="another parameter of the first cell",
    )  # fmt: skip
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--force", action="store_true", help="overwrite OUT")
    args = parser.parse_args()
    if args.out.suffix != ".ipynb":
        parser.error(f"OUT must end in .ipynb (got {args.out}); name the notebook to write")
    if args.out.exists() and not args.force:
        parser.error(f"{args.out} already exists; pass --force to overwrite it")
    if args.timeout < 1:
        parser.error(f"--timeout must be at least 1 second (got {args.timeout})")
    try:
        settings = dict(parse_setting(s) for s in args.settings)
    except ValueError as error:
        parser.error(str(error))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        execute(prepared({"MODEL": args.model, **settings}), args.out.resolve(), args.timeout)
    except CellExecutionError as error:
        print(f"error: a cell failed; its traceback is in {args.out}", file=sys.stderr)
        print(str(error).strip().splitlines()[-1], file=sys.stderr)
        raise SystemExit(1) from None
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
