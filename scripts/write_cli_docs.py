"""Write docs/cli.md, every command and option of `factscope`, from the CLI itself.

    python scripts/write_cli_docs.py [--check]

The page is rendered from the click commands the typer app builds (the same objects
`factscope CMD --help` prints), in the capability order of `cli/panels.py`, so it lists
every command and option there is and nothing else; tests/test_cli_docs.py fails when the
page and the CLI differ. `--check` exits 1 instead of writing when they differ.
"""

from __future__ import annotations

import argparse
import enum
import sys
import typing
from pathlib import Path
from typing import Any

import typer

from factscope.cli import app
from factscope.cli.panels import PANELS, SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "cli.md"

HEADER = """# Command line reference

Every `factscope` command and option, generated from the CLI by `scripts/write_cli_docs.py`
(a test fails when this page and `factscope CMD --help` differ: do not edit it by hand).
Each capability's page tells the story and the commands behind its numbers; this page
answers "which option does that?". Options shared by most commands: `--model` (a registry
name, a `.gguf` file, a Hugging Face folder or a folder factscope saved), `--device`,
`--dtype`, `--out` and `--force` (outputs are never overwritten without it). Bad input
exits with code 2 and one line saying what to change.
"""


def _is_option(param: Any) -> bool:
    return bool(param.param_type_name == "option")


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _type_name(annotation: Any) -> str:
    """int, float, path, text, or the choices of a Literal or Enum; Optional unwrapped."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if args and typing.get_origin(annotation) is not list:
        return _type_name(args[0])
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    if typing.get_origin(annotation) is list:
        return f"{_type_name(args[0]) if args else 'text'}, repeatable"
    names = {int: "int", float: "float", str: "text", bool: "bool", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _takes(param: Any) -> str:
    """What the parameter takes: nothing (a flag), a choice, a number in a range, a type."""
    if getattr(param, "is_flag", False):
        return "flag"
    takes = _type_name(param.type_descriptor.annotation)
    low, high = param.min, param.max
    if low is not None and high is not None:
        takes += f" in {low}..{high}"
    elif low is not None:
        takes += f" >= {low}"
    elif high is not None:
        takes += f" <= {high}"
    return takes


def _default(param: Any) -> str:
    value = param.default
    if value is None or callable(value) or (_is_option(param) and param.is_flag):
        return ""
    return f"`{value}`" if value != "" else ""


def _usage(path: str, command: Any) -> str:
    arguments = [p.name for p in command.params if p.param_type_name == "argument"]
    return " ".join(["factscope", path, "[OPTIONS]", *arguments])


def _command_section(path: str, summary: str, command: Any) -> list[str]:
    lines = [f"### `factscope {path}`", "", summary, "", f"    {_usage(path, command)}", ""]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if _is_option(p) and not p.hidden]
    if arguments:
        lines += ["| argument | takes |", "| --- | --- |"]
        lines += [f"| `{p.name}` | {_takes(p)} |" for p in arguments]
        lines.append("")
    if options:
        lines += ["| option | takes | default | what it does |", "| --- | --- | --- | --- |"]
        for p in options:
            names = ", ".join(f"`{n}`" for n in [*p.opts, *p.secondary_opts])
            help_text = _cell(p.help or "")
            lines.append(f"| {names} | {_takes(p)} | {_default(p)} | {help_text} |")
        lines.append("")
    return lines


def cli_page() -> str:
    """docs/cli.md as the CLI is now."""
    root: Any = typer.main.get_command(app)
    lines = [HEADER]
    for panel, commands in PANELS.items():
        lines += [f"## {panel}", ""]
        for name, summary in commands.items():
            command = root.commands[name]
            if hasattr(command, "commands"):  # a group: its subcommands
                lines += [f"### `factscope {name}`", "", summary, ""]
                for sub_name, sub in command.commands.items():
                    path = f"{name} {sub_name}"
                    lines += _command_section(path, SUBCOMMANDS.get(path, ""), sub)
            else:
                lines += _command_section(name, summary, command)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    page = cli_page()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE} differs from the CLI; run python scripts/write_cli_docs.py")
            sys.exit(1)
        print(f"{PAGE} matches the CLI")
        return
    PAGE.write_text(page)
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
