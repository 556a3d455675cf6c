"""docs/cli.md is the CLI as it is: regenerated from the typer app, it equals the page, and
it names every command and every option `factscope` has."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from factscope.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from write_cli_docs import PAGE, cli_page


def _commands(group: Any, prefix: str = "") -> dict[str, Any]:
    found = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            found.update(_commands(command, path + " "))
        else:
            found[path] = command
    return found


def test_the_page_equals_the_page_the_cli_renders() -> None:
    assert PAGE.read_text() == cli_page(), "run python scripts/write_cli_docs.py"


def test_every_command_and_option_has_a_row() -> None:
    page = PAGE.read_text()
    sections = page.split("### `factscope ")
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 25
    for path, command in commands.items():
        section = next((s for s in sections if s.startswith(f"{path}`")), None)
        assert section is not None, f"factscope {path} is not on docs/cli.md"
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                assert f"| `{param.opts[0]}`" in section, f"{path} {param.opts[0]}"
    # the options people asked for and could not find
    edit = next(s for s in sections if s.startswith("edit`"))
    for option in ("--trace", "--identity-stats", "--old", "--paraphrase"):
        assert f"| `{option}`" in edit
