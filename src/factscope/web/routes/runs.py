"""`GET /api/runs/{kind}`: the study and training runs on disk, listed or read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from factscope.web import runs as on_disk
from factscope.web.errors import ClientError
from factscope.web.state import ServedState

router = APIRouter()


@router.get("/api/runs/{kind}")
async def runs(kind: str, state: ServedState, run: str | None = None) -> dict[str, Any]:
    if kind not in on_disk.RESULT_FILES or kind not in state.views:
        raise ClientError(404, f"no {kind[:40]!r} runs here; available: study, train")
    if run is None:
        return {"kind": kind, "runs": on_disk.list_runs(state.runs_dir, kind)}
    if len(run) > 300:
        raise ClientError(422, "run name is too long")
    return on_disk.read_run(state.runs_dir, kind, run)
