"""The local web app: one model, a page of views, predictions batched, jobs streamed.

`create_app(lm)` builds the FastAPI app around an already loaded model; `factscope serve`
loads the model and runs it with uvicorn. The API:

    GET  /                      the page (static/index.html)
    GET  /api/info              the model, the available views and job kinds, the limits,
                                the SAE (`serve --sae`) or null
    POST /api/predict           {prompt, top_k}: the top next tokens (micro-batched)
    POST /api/jobs/{kind}       start a job (flow, trace, attention, ...): 202 with its id and
                                position
    GET  /api/jobs/{id}         its state, progress and, once done, its result
    GET  /api/jobs/{id}/events  the same as server-sent events until it finishes
    POST /api/jobs/{id}/cancel  stop it (queued: never starts; running: at its next step)
    GET  /api/stats             batching and memory figures

Safety: every request body is validated (lengths, ranges; a model is named, never given
as a path, and must be the one this server runs), bodies are capped at `max_body` bytes,
every error is a JSON `{"error": "..."}` with a 4xx status for anything the client sent,
and a busy server answers at once ("queued" with the position, or 429) instead of waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from factscope.features.sae import SparseDictionary
from factscope.load import LoadedModel
from factscope.web.analyses import JOB_KINDS
from factscope.web.batching import PredictBatcher
from factscope.web.errors import add_error_handlers
from factscope.web.host import ModelHost
from factscope.web.jobs import JobManager
from factscope.web.middleware import BodyLimit, host_and_headers
from factscope.web.routes import edit, jobs, page, predict, runs
from factscope.web.routes.page import STATIC
from factscope.web.schemas import MAX_BODY_BYTES
from factscope.web.state import Served
from factscope.web.views import available_views


def create_app(
    lm: LoadedModel,
    *,
    sae: SparseDictionary | None = None,
    sae_path: str | None = None,
    batching: bool = True,
    max_body: int = MAX_BODY_BYTES,
    max_waiting: int = 256,
    max_queued_jobs: int = 4,
    trusted_hosts: list[str] | None = None,
    runs_dir: Path | None = None,
) -> FastAPI:
    """The web app serving `lm`. `batching=False` serves predictions one forward each (the
    benchmark's baseline). `trusted_hosts`: Host headers accepted (None: any). `runs_dir`:
    the folder whose study and training runs the Study and Train views list. `sae`: the sparse
    dictionary (on the model's device, checked to fit) the Features view reads, found at
    `sae_path`; without it that view says how to start the server with one."""
    host = ModelHost(lm, sae=sae, sae_path=sae_path)
    views = [v.name for v in available_views()]
    served = Served(
        host=host,
        batcher=PredictBatcher(host, max_waiting=max_waiting, batching=batching),
        jobs=JobManager(max_queued=max_queued_jobs),
        views=views,
        job_kinds={k: kind for k, kind in JOB_KINDS.items() if kind.view in views},
        max_body=max_body,
        runs_dir=runs_dir,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        served.jobs.shutdown()

    app = FastAPI(
        title="factscope", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.served = served
    app.state.host, app.state.batcher, app.state.jobs = host, served.batcher, served.jobs
    add_error_handlers(app)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for capability in (predict, jobs, edit, runs):
        app.include_router(capability.router)
    app.middleware("http")(host_and_headers(trusted_hosts))
    app.add_middleware(BodyLimit, max_bytes=max_body)
    return app
