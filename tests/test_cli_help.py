"""`factscope --help` groups the commands by capability, one line each, flags as flags.

Run through the installed console script, as a user sees it, at a 100-column terminal.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from factscope.cli import app
from factscope.cli.panels import PANELS, SUBCOMMANDS, first_sentence, reflow

WIDTH = 100


def _help(*args: str) -> str:
    script = Path(sys.executable).parent / "factscope"
    if not script.exists():
        pytest.skip("the factscope console script is not installed next to this python")
    env = {**os.environ, "COLUMNS": str(WIDTH), "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [str(script), *args, "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _panels(text: str) -> dict[str, list[str]]:
    """Panel title -> the lines inside its box (without the borders)."""
    panels: dict[str, list[str]] = {}
    title = None
    for line in text.splitlines():
        opened = re.match(r"\s*╭─ (.+?) ─", line)
        if opened:
            title = opened.group(1)
            panels[title] = []
        elif line.strip().startswith("╰"):
            title = None
        elif title is not None:
            panels[title].append(line.strip().strip("│").strip())
    return panels


def test_help_groups_commands_by_capability_one_line_each() -> None:
    text = _help()
    panels = _panels(text)
    registered = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    # the capability panels, in the library's order, after the options
    shown = [p for p in panels if p != "Options"]
    assert shown == [p for p in PANELS if set(PANELS[p]) & registered]
    for panel, commands in PANELS.items():
        if panel not in panels:
            continue
        rows = panels[panel]
        expected = [name for name in commands if name in registered]
        # one row per command: a hard-wrapped or too long summary would add a line
        assert [row.split()[0] for row in rows] == expected, (panel, rows)
        for row, name in zip(rows, expected, strict=True):
            assert row.split(None, 1)[1] == commands[name]
    assert "Other" not in panels, f"give these commands a row in PANELS: {panels['Other']}"


def test_every_command_has_a_panel_and_a_short_summary() -> None:
    root = typer.main.get_command(app)
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        assert getattr(command, "rich_help_panel", None) in PANELS, name
        assert command.short_help and len(command.short_help) <= 72, name
        hard_wrap = re.search(r"(?<!\n)\n(?!\n)", command.help or "")
        assert not hard_wrap, f"{name}: a paragraph of its help is not reflowed"
        for sub_name, sub in getattr(command, "commands", {}).items():
            assert sub.short_help and len(sub.short_help) <= 72, (name, sub_name)
    for path in SUBCOMMANDS:
        group, sub_name = path.split()
        assert sub_name in root.commands[group].commands, path  # type: ignore[attr-defined]


def test_flags_are_shown_as_flags() -> None:
    text = _help("trace")
    assert "<bool>" not in text
    approx = next(line for line in text.splitlines() if "--approx" in line)
    assert re.search(r"--approx\s+Attribution patching", approx), approx
    assert "<float>" in next(line for line in text.splitlines() if "--noise" in line)
    assert "<bool>" not in _help() and "<bool>" not in _help("superposition")


def test_reflow_and_first_sentence() -> None:
    text = """One line
    wrapped here. Then more.

    Second paragraph
    also wrapped."""
    assert reflow(text) == "One line wrapped here. Then more.\n\nSecond paragraph also wrapped."
    assert first_sentence(text) == "One line wrapped here."
