"""Every bad invocation of the installed `factscope` command: one line, exit code 2.

Each row runs the real console script in a subprocess (what a user runs), and asserts:
exit code 2, exactly one line on stderr, starting `error: ` and containing the expected
words, and no traceback. Rows for core and locate commands are here; each capability adds
its own rows in `tests/bad_invocations_<capability>.py` (a list `ROWS`), which this file
collects. `test_every_constrained_option_has_a_row` fails when a command gains a numeric
option, an option with a range or a required value, and no row tries a bad one.

In a row, `{tiny}` is a tiny GGUF model, `{tmp}` a fresh temporary folder
holding one file, `afile.txt`, and `{name}` a file a capability module's `prepare` wrote.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import typer

from factscope.cli import app
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf

PROMPT = "Fact Michael Jordan plays the sport of"
TRACE = ["trace", PROMPT, "--subject", "Michael Jordan", "--model", "{tiny}"]

Row = tuple[list[str], str]

ROWS: list[Row] = [
    # the five from the issue
    (["predict", "hi", "--top-k", "0"], "--top-k must be at least 1 (got 0)"),
    (["predict", "hi", "--top-k", "-3"], "--top-k must be at least 1 (got -3)"),
    (["generate", "hi", "-n", "-1"], "--max-new-tokens must be at least 1 (got -1)"),
    ([*TRACE, "--samples", "0", "--out", "{tmp}/x"], "--samples must be at least 1 (got 0)"),
    ([*TRACE, "--window", "0", "--out", "{tmp}/x"], "--window must be at least 1 (got 0)"),
    # generic usage errors
    (["predict"], "PROMPT is required"),
    (["predict", "hi", "--bogus"], "No such option: --bogus"),
    (["predict", "hi", "--top-k", "many"], "--top-k must be a whole number (got many)"),
    (["nosuchcommand"], "No such command"),
    (["generate", "hi", "--top-k", "0"], "--top-k must be at least 1"),
    (["generate", "hi", "--top-p", "1.5"], "--top-p must be at most 1"),
    (["generate", "hi", "--top-p", "-0.1"], "--top-p must be at least 0"),
    (["generate", "hi", "--temperature", "-1"], "--temperature must be at least 0"),
    (["generate", "   ", "--model", "{tiny}"], "prompt is empty"),
    (["generate", "hi", "--seed", "-1"], "--seed must be at least 0 (got -1)"),
    (["generate", "hi", "--seed", "99999999999999999999"], "--seed must be at most 4294967295"),
    (["generate", "hi", "--temperature", "inf"], "--temperature must be a finite number (got inf)"),
    # models, paths, devices, dtypes
    (["predict", "hi", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["predict", "hi", "--model", "{tmp}/missing.gguf"], "no such file or folder"),
    (["predict", "hi", "--model", "{tmp}"], "has no config.json"),
    (["predict", "hi", "--model", "{tiny}", "--device", "tpu9"], "unknown device"),
    (["predict", "hi", "--model", "{tiny}", "--dtype", "int3"], "unknown dtype"),
    (["info", "no-such-model"], "unknown model"),
    (["params", "no-such-model"], "unknown model"),
    # locate
    (["trace", PROMPT, "--out", "{tmp}/x"], "--subject is required"),
    (["trace", PROMPT, "--subject", "Jordan"], "--out is required"),
    ([*TRACE, "--kind", "hidden,neurons", "--out", "{tmp}/x"], "--kind 'hidden,neurons'"),
    ([*TRACE[:3], "Tom Brady", *TRACE[4:], "--out", "{tmp}/x"], "Tom Brady"),
    ([*TRACE, "--format", "gif", "--out", "{tmp}/x"], "--format 'gif' is not supported"),
    ([*TRACE, "--out", "{tmp}/afile.txt"], "is a file, not a folder"),
    ([*TRACE, "--noise", "-1", "--out", "{tmp}/x"], "--noise must be more than 0 (got -1)"),
    ([*TRACE, "--noise", "0", "--out", "{tmp}/x"], "--noise must be more than 0 (got 0)"),
    ([*TRACE, "--noise", "nan", "--out", "{tmp}/x"], "--noise must be a finite number (got nan)"),
    ([*TRACE, "--seed", "-1", "--out", "{tmp}/x"], "--seed must be at least 0 (got -1)"),
    (
        ["patch", PROMPT, PROMPT, "--answers", " a", "--model", "{tiny}"],
        "unexpected extra argument",
    ),
    (
        ["patch", PROMPT, "Fact Tom", "--answers", " a", " b", "--model", "{tiny}"],
        "equal token length",
    ),
    (
        ["patch", PROMPT, PROMPT, "--answers", " a", " b", "--kind", "x", "--model", "{tiny}"],
        "--kind 'x'",
    ),
    (["lens", PROMPT, "--top-k", "0"], "--top-k must be at least 1 (got 0)"),
    (["lens", PROMPT, "--model", "{tiny}", "--answer", ""], "answer"),
]


def _capability_modules() -> list[Any]:
    return [
        importlib.import_module(path.stem)
        for path in sorted(Path(__file__).parent.glob("bad_invocations_*.py"))
    ]


def _capability_rows() -> list[Row]:
    return [row for module in _capability_modules() for row in module.ROWS]


ALL_ROWS = ROWS + _capability_rows()


def _factscope() -> str:
    script = Path(sys.executable).parent / "factscope"
    if not script.exists():
        pytest.skip("the factscope console script is not installed next to this python")
    return str(script)


@pytest.fixture(scope="module")
def results(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[int, subprocess.CompletedProcess[str]]:
    """Run every row once, in parallel (each is a separate process)."""
    tmp = tmp_path_factory.mktemp("bad")
    tiny = tmp / "tiny.gguf"
    write_tiny_gguf(tiny, tiny_hf_for_gguf("gemma3", seed=3))
    env = {**os.environ, "FACTSCOPE_CACHE": str(tmp / "cache"), "COLUMNS": "200"}
    exe = _factscope()
    # a capability module may write files its rows name as {placeholder}: `prepare(folder)`
    placeholders = {"{tiny}": str(tiny)}
    for module in _capability_modules():
        if hasattr(module, "prepare"):
            folder = tmp / module.__name__
            folder.mkdir()
            placeholders |= {"{" + k + "}": v for k, v in module.prepare(folder).items()}

    def run(index: int) -> tuple[int, subprocess.CompletedProcess[str]]:
        args, _ = ALL_ROWS[index]
        work = tmp / f"row{index}"
        work.mkdir()
        (work / "afile.txt").write_text("not a folder")
        filled = []
        for arg in args:
            for placeholder, value in placeholders.items():
                arg = arg.replace(placeholder, value)
            filled.append(arg.replace("{tmp}", str(work)))
        done = subprocess.run(
            [exe, *filled],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        return index, done

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(run, range(len(ALL_ROWS))))


@pytest.mark.parametrize("index", range(len(ALL_ROWS)), ids=[" ".join(r[0])[:60] for r in ALL_ROWS])
def test_bad_invocation_is_one_line_exit_2(
    index: int, results: dict[int, subprocess.CompletedProcess[str]]
) -> None:
    expected = ALL_ROWS[index][1]
    done = results[index]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert expected in lines[0], (expected, lines[0])


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    found: list[tuple[tuple[str, ...], object]] = []
    for name, command in getattr(group, "commands", {}).items():
        if getattr(command, "commands", None):
            found += _commands(command, (*prefix, name))
        else:
            found.append(((*prefix, name), command))
    return found


def _is_number(param: object) -> bool:
    return getattr(getattr(param, "type_descriptor", None), "annotation", None) in (int, float)


def test_every_constrained_option_has_a_row() -> None:
    """A number, a range, a required option or an argument: some row gives it a bad or no
    value (so every numeric option is validated, and the table shows how)."""
    missing = []
    for path, command in _commands(typer.main.get_command(app)):
        rows = [args for args, _ in ALL_ROWS if tuple(args[: len(path)]) == path]
        for param in getattr(command, "params", []):
            constrained = (
                _is_number(param)
                or getattr(param, "min", None) is not None
                or getattr(param, "max", None) is not None
                or (getattr(param, "required", False) and param.opts[0].startswith("-"))
            )
            if not constrained:
                continue
            flags = set(param.opts)
            tried = any(flags & set(args) for args in rows) or (
                param.required and any(not flags & set(args) for args in rows)
            )
            if not tried:
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert not missing, f"add bad-value rows for: {', '.join(missing)}"
