"""Runs on disk, shown by the Study and Train views: found by scanning one folder chosen
when the server starts (`factscope serve --runs DIR`), named by their path inside it.

The browser never sends a path: it picks a run from the list this module made, and a name
that is not in the list is refused. Only the run's result file (probe.json, history.json)
is read, and only if it is small.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factscope.errors import FactscopeError

RESULT_FILES = {"study": "probe.json", "train": "history.json"}
MAX_RUNS = 200
MAX_DEPTH = 4
MAX_BYTES = 8 * 2**20


def list_runs(root: Path | None, kind: str) -> list[str]:
    """Names (relative folder paths) of the runs of `kind` under `root`, newest first."""
    if root is None or not root.is_dir():
        return []
    name = RESULT_FILES[kind]
    found = []
    for depth in range(MAX_DEPTH):
        pattern = "/".join(["*"] * depth + [name])
        found += [p for p in root.glob(pattern) if p.is_file() and not p.is_symlink()]
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.parent.relative_to(root).as_posix() or "." for p in found[:MAX_RUNS]]


def read_run(root: Path | None, kind: str, run: str) -> dict[str, Any]:
    """The result file of run `run` (a name from `list_runs`)."""
    if run not in list_runs(root, kind):
        raise FactscopeError(f"no {kind} run named {run[:80]!r}; pick one from the list")
    assert root is not None
    path = root / run / RESULT_FILES[kind]
    if path.stat().st_size > MAX_BYTES:
        raise FactscopeError(f"run {run!r}: {path.name} is too large to show here")
    data = json.loads(path.read_text(encoding="utf-8"))
    return {"run": run, "kind": kind, "data": data}
