"""The page, its script bundle, and what the page asks the server first (`/api/info`) and
last (`/api/stats`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from factscope.web.schemas import MAX_PROMPT_CHARS, MAX_PROMPT_TOKENS
from factscope.web.state import ServedState

STATIC = Path(__file__).parent.parent / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    return Response(status_code=204)


@router.get("/static/vendor/plotly.min.js", include_in_schema=False)
async def plotly_js() -> FileResponse:
    import plotly

    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return FileResponse(bundled, media_type="text/javascript")


@router.get("/api/info")
async def info(state: ServedState) -> dict[str, Any]:
    host = state.host
    cfg = host.lm.cfg
    return {
        "model": host.name,
        "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "revision": host.revision,
        "views": state.views,
        "jobs": list(state.job_kinds),
        "edits": [e.description for e in host.edits],
        "sae": None if host.sae is None else {"path": host.sae_path, **host.sae.cfg.to_dict()},
        "limits": {
            "prompt_chars": MAX_PROMPT_CHARS,
            "prompt_tokens": MAX_PROMPT_TOKENS,
            "body_bytes": state.max_body,
        },
    }


@router.get("/api/stats")
async def stats(state: ServedState) -> dict[str, Any]:
    import psutil

    s = state.batcher.stats
    return {
        "requests": s.requests,
        "forwards": s.forwards,
        "largest_batch": s.largest_batch,
        "refused": s.refused,
        "recent_batch_sizes": s.sizes[-20:],
        "rss_bytes": psutil.Process(os.getpid()).memory_info().rss,
    }
