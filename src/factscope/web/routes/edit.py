"""`POST /api/edit/undo`: undo the last edit applied to the served model (edits themselves
are jobs)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from factscope.web.errors import ClientError
from factscope.web.state import ServedState

router = APIRouter()


@router.post("/api/edit/undo")
async def undo(state: ServedState) -> JSONResponse:
    host = state.host
    if "edit" not in state.job_kinds:
        raise ClientError(404, "the edit capability is not installed")
    busy = host.busy_job()
    if busy is not None:
        raise ClientError(409, f"the model is busy with a {busy.removeprefix('job:')} job")

    def run() -> dict[str, Any] | None:
        with host.use("job:undo"):
            last = host.undo_last()
        return None if last is None else last.description

    undone = await asyncio.to_thread(run)
    if undone is None:
        raise ClientError(409, "there is no edit to undo")
    return JSONResponse(
        {"undone": undone, "edits": [e.description for e in host.edits],
         "revision": host.revision}
    )  # fmt: skip
