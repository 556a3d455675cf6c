"""The jobs: `POST /api/jobs/{kind}` starts one (202 with its id and position in the
queue), and its state is read whole, as server-sent events until it finishes, or cancelled."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from factscope.web.analyses import SAE_HINT
from factscope.web.errors import ClientError, validation_message
from factscope.web.jobs import Job
from factscope.web.responses import plain_json
from factscope.web.schemas import ModelRequest
from factscope.web.state import Served, ServedState

router = APIRouter(prefix="/api/jobs")


@router.post("/{kind}", status_code=202)
async def submit(kind: str, request: Request, state: ServedState) -> JSONResponse:
    job_kinds, host = state.job_kinds, state.host
    if kind not in job_kinds:
        raise ClientError(404, f"no job kind {kind!r} here; available: {', '.join(job_kinds)}")
    if job_kinds[kind].needs_sae and host.sae is None:
        raise ClientError(409, SAE_HINT)
    try:
        raw = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ClientError(400, "the request body is not valid JSON") from None
    try:
        body = job_kinds[kind].request.model_validate(raw)
    except ValidationError as exc:
        status, message = validation_message(list(exc.errors()))
        raise ClientError(status, message) from None
    check_request(state, body)
    params = body.model_dump(exclude={"model"})
    key: tuple[Any, ...] = (host.name, host.revision, kind, json.dumps(params, sort_keys=True))
    if not job_kinds[kind].cached:
        key += (next(state.unique),)
    run = job_kinds[kind].body
    job = state.jobs.submit(kind, params, key, lambda context: plain_json(run(host, body, context)))
    return JSONResponse(job.to_dict(state.jobs.position(job)), status_code=202)


def check_request(state: Served, body: ModelRequest) -> None:
    """What a schema cannot know: the served model, the prompt's tokens, the number of
    layers, the subject inside the prompt; said now, not from inside the job."""
    state.check_model(body.model)
    prompt: str | None = getattr(body, "prompt", None)
    if prompt is not None:
        state.encode(prompt)
    layer: int | None = getattr(body, "layer", None)
    n_layers, host = state.host.lm.cfg.n_layers, state.host
    if layer is not None and layer >= n_layers:
        raise ClientError(
            422, f"layer must be at most {n_layers - 1} (got {layer}); "
            f"{host.name} has {n_layers} layers",
        )  # fmt: skip
    subject: str | None = getattr(body, "subject", None)
    if subject and prompt is not None:
        host.lm.tokenizer.find_subject_span(prompt, subject)


def find_job(state: Served, job_id: str) -> Job:
    job = state.jobs.get(job_id) if len(job_id) <= 64 else None
    if job is None:
        raise ClientError(404, f"no job {job_id[:64]!r}; it may have finished long ago")
    return job


@router.get("/{job_id}")
async def job_state(job_id: str, state: ServedState) -> JSONResponse:
    job = find_job(state, job_id)
    return JSONResponse(job.to_dict(state.jobs.position(job)))


@router.post("/{job_id}/cancel")
async def cancel(job_id: str, state: ServedState) -> JSONResponse:
    job = find_job(state, job_id)
    state.jobs.cancel(job.id)
    return JSONResponse(job.to_dict(state.jobs.position(job), with_result=False))


@router.get("/{job_id}/events")
async def events(job_id: str, request: Request, state: ServedState) -> StreamingResponse:
    job = find_job(state, job_id)
    jobs = state.jobs

    async def stream() -> Any:
        sent = -1
        while True:
            if job.version != sent:
                sent = job.version
                event = job.state if job.finished else "progress"
                data = json.dumps(job.to_dict(jobs.position(job), with_result=job.finished))
                yield f"event: {event}\ndata: {data}\n\n"
                if job.finished:
                    return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.1)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
