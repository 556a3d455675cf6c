"""The local web app: one model, a page of views, predictions batched, jobs streamed.

`create_app(lm)` builds the FastAPI app around an already loaded model; `factscope serve`
loads the model and runs it with uvicorn. The API:

    GET  /                      the page (static/index.html)
    GET  /api/info              the model, the available views and job kinds, the limits
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

import asyncio
import itertools
import json
import logging
import math
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from factscope.errors import FactscopeError
from factscope.load import LoadedModel
from factscope.web import analyses
from factscope.web.batching import Busy, PredictBatcher
from factscope.web.host import ModelHost
from factscope.web.jobs import JobContext, JobManager
from factscope.web.views import available_views

log = logging.getLogger("factscope.web")

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 16 * 1024
MAX_PROMPT_CHARS = 1000
MAX_PROMPT_TOKENS = 256
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # a name: no slash, no path


# ---- requests --------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(
        None, pattern=MODEL_NAME, description="a model name; must be the one served"
    )


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("is empty; type some text")
    return value


class PredictRequest(_Request):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    top_k: int = Field(10, ge=1, le=50)

    _prompt = field_validator("prompt")(_not_blank)


class FlowRequest(_Request):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    subject: str | None = Field(None, max_length=200)
    answer: str | None = Field(None, min_length=1, max_length=100)

    _prompt = field_validator("prompt", "subject")(_not_blank)


class TraceRequest(_Request):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    subject: str = Field(min_length=1, max_length=200)
    answer: str | None = Field(None, min_length=1, max_length=100)
    method: Literal["approx", "exact"] = "approx"
    samples: int = Field(3, ge=1, le=50)
    window: int = Field(10, ge=1, le=64)
    seed: int = Field(0, ge=0, le=2**31 - 1)

    _prompt = field_validator("prompt", "subject")(_not_blank)


class NeuronsRequest(_Request):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    subject: str = Field(min_length=1, max_length=200)
    answer: str | None = Field(None, min_length=1, max_length=100)
    top: int = Field(10, ge=1, le=50)
    max_k: int = Field(50, ge=1, le=500)

    _text = field_validator("prompt", "subject")(_not_blank)


class AttentionRequest(_Request):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    subject: str = Field(min_length=1, max_length=200)
    layer: int | None = Field(None, ge=0, le=1000)

    _text = field_validator("prompt", "subject")(_not_blank)


class SuperpositionRequest(_Request):
    n: int = Field(500, ge=2, le=2000)
    dim: int = Field(50, ge=2, le=300)
    steps: int = Field(200, ge=0, le=1000)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class EditJobRequest(_Request):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    subject: str = Field(min_length=1, max_length=200)
    new: str = Field(min_length=1, max_length=100)
    old: str | None = Field(None, min_length=1, max_length=100)
    layer: int | None = Field(None, ge=0, le=1000)
    paraphrases: list[str] | None = Field(None, max_length=8)
    neighbours: list[str] | None = Field(None, max_length=8)

    _text = field_validator("prompt", "subject", "new")(_not_blank)

    @field_validator("paraphrases", "neighbours")
    @classmethod
    def _short(cls, prompts: list[str] | None) -> list[str] | None:
        if prompts is not None and any(not p.strip() or len(p) > 300 for p in prompts):
            raise ValueError("must be non-empty prompts of at most 300 characters")
        return prompts


JobBody = Callable[[ModelHost, dict[str, Any], JobContext], Any]


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its request, its body, and the view (capability) it belongs to."""

    request: type[_Request]
    body: JobBody
    view: str
    cached: bool = True  # False for jobs with side effects (an edit changes the model)


JOB_KINDS: dict[str, JobKind] = {
    "flow": JobKind(FlowRequest, analyses.flow_job, "flow"),
    "trace": JobKind(TraceRequest, analyses.trace_job, "trace"),
    "neurons": JobKind(NeuronsRequest, analyses.neurons_job, "neurons"),
    "attention": JobKind(AttentionRequest, analyses.attention_job, "neurons"),
    "edit": JobKind(EditJobRequest, analyses.edit_job, "edit", cached=False),
    "superposition": JobKind(SuperpositionRequest, analyses.superposition_job, "superposition"),
}


# ---- errors ----------------------------------------------------------------------------------


class ClientError(Exception):
    """A request the client must change: a 4xx status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=code)


def _validation_message(errors: list[Any]) -> tuple[int, str]:
    """One line for pydantic's first complaint: `top_k must be at least 1 (got -3)`."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return 400, "the request body is not valid JSON"
    where = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(where) or "the request body"
    message = str(first.get("msg", "is not valid"))
    context = first.get("ctx") or {}
    kind = first.get("type", "")
    if kind == "greater_than_equal":
        message = f"must be at least {context.get('ge')}"
    elif kind == "less_than_equal":
        message = f"must be at most {context.get('le')}"
    elif kind == "string_too_long":
        message = f"is longer than {context.get('max_length')} characters"
    elif kind == "string_too_short":
        message = "is empty; type some text"
    elif kind == "string_pattern_mismatch" and field == "model":
        message = "must be a model name (letters, digits, '.', '-', '_'), never a file path"
    elif kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        message = "is not a field of this request"
    elif kind == "model_attributes_type" or kind == "dict_type":
        return 422, "the request body must be a JSON object"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    elif message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    given = first.get("input")
    got = ""
    if kind not in ("missing", "string_too_long") and isinstance(given, int | float | str):
        shown = str(given) if len(str(given)) <= 40 else str(given)[:40] + "..."
        got = f" (got {shown!r})" if isinstance(given, str) else f" (got {shown})"
    return 422, f"{field} {message}{got}"


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, by header or as they stream in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise ClientError(
                        413, f"the request body is larger than {self.max_bytes} bytes"
                    )
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except ClientError:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"error": f"the request body is larger than {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def plain_json(value: Any) -> Any:
    """`value` with NaN and infinities as null: JSON that a browser can parse."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value


# ---- the app ---------------------------------------------------------------------------------


def create_app(
    lm: LoadedModel,
    *,
    batching: bool = True,
    max_body: int = MAX_BODY_BYTES,
    max_waiting: int = 256,
    max_queued_jobs: int = 4,
    trusted_hosts: list[str] | None = None,
    runs_dir: Path | None = None,
) -> FastAPI:
    """The web app serving `lm`. `batching=False` serves predictions one forward each (the
    benchmark's baseline). `trusted_hosts`: Host headers accepted (None: any). `runs_dir`:
    the folder whose study and training runs the Study and Train views list."""
    from factscope.registry import MODELS

    host = ModelHost(lm)
    batcher = PredictBatcher(host, max_waiting=max_waiting, batching=batching)
    jobs = JobManager(max_queued=max_queued_jobs)
    unique = itertools.count()
    predictions: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
    views = [v.name for v in available_views()]
    job_kinds = {k: kind for k, kind in JOB_KINDS.items() if kind.view in views}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.shutdown()

    app = FastAPI(
        title="factscope", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.host, app.state.batcher, app.state.jobs = host, batcher, jobs

    # -- errors: always JSON with a message, 4xx for what the client sent
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(list(exc.errors()))
        return _error(status, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(ClientError)
    async def _client(request: Request, exc: ClientError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(FactscopeError)
    async def _factscope(request: Request, exc: FactscopeError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return _error(429, str(exc), status="busy", position=exc.position)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")

    def check_model(name: str | None) -> None:
        if name is None or name == host.name:
            return
        if name in MODELS:
            raise ClientError(
                400,
                f"this server runs {host.name!r}, not {name!r}; "
                f"start another with `factscope serve --model {name}`",
            )
        raise ClientError(
            400, f"unknown model {name!r}; this server runs {host.name!r} (known: "
            f"{', '.join(MODELS)})",
        )  # fmt: skip

    def encode(prompt: str) -> list[int]:
        ids = host.lm.tokenizer.encode(prompt)
        limit = min(MAX_PROMPT_TOKENS, host.lm.cfg.context_length)
        if not ids:
            raise ClientError(422, "prompt encodes to no tokens; type some text")
        if len(ids) > limit:
            raise ClientError(422, f"prompt is {len(ids)} tokens; the limit is {limit}")
        return ids

    # -- the page
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> FileResponse:
        import plotly

        bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        return FileResponse(bundled, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        cfg = host.lm.cfg
        return {
            "model": host.name,
            "n_layers": cfg.n_layers,
            "n_heads": cfg.n_heads,
            "revision": host.revision,
            "views": views,
            "jobs": list(job_kinds),
            "edits": [e.description for e in host.edits],
            "limits": {
                "prompt_chars": MAX_PROMPT_CHARS,
                "prompt_tokens": MAX_PROMPT_TOKENS,
                "body_bytes": max_body,
            },
        }

    # -- predictions, batched
    @app.post("/api/predict")
    async def predict(body: PredictRequest) -> Response:
        check_model(body.model)
        busy = host.busy_job()
        if busy is not None:  # a job holds the model: say so now rather than wait
            return JSONResponse(
                {
                    "status": "queued",
                    "position": batcher.waiting + 1,
                    "busy_with": busy.removeprefix("job:"),
                    "message": f"the model is busy with a {busy.removeprefix('job:')} job; "
                    "your prediction will run when it is done — try again in a moment",
                },
                status_code=202,
            )
        key = (host.name, host.revision, body.prompt, body.top_k)
        if key in predictions:
            predictions.move_to_end(key)
            return JSONResponse({"status": "done", "cached": True, **predictions[key]})
        prediction = await batcher.predict(body.prompt, encode(body.prompt), body.top_k)
        data = {"prediction": plain_json(prediction.to_dict())}
        predictions[key] = data
        while len(predictions) > 512:
            predictions.popitem(last=False)
        return JSONResponse({"status": "done", "cached": False, **data})

    # -- jobs
    @app.post("/api/jobs/{kind}", status_code=202)
    async def submit(kind: str, request: Request) -> JSONResponse:
        if kind not in job_kinds:
            raise ClientError(404, f"no job kind {kind!r} here; available: {', '.join(job_kinds)}")
        try:
            raw = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ClientError(400, "the request body is not valid JSON") from None
        try:
            body = job_kinds[kind].request.model_validate(raw)
        except ValidationError as exc:
            status, message = _validation_message(list(exc.errors()))
            raise ClientError(status, message) from None
        check_model(body.model)
        params = body.model_dump(exclude={"model"})
        if "prompt" in params:
            encode(params["prompt"])
        n_layers = host.lm.cfg.n_layers
        if params.get("layer") is not None and params["layer"] >= n_layers:
            raise ClientError(
                422, f"layer must be at most {n_layers - 1} (got {params['layer']}); "
                f"{host.name} has {n_layers} layers",
            )  # fmt: skip
        if params.get("subject"):  # say now, not from inside the job, that it is not there
            host.lm.tokenizer.find_subject_span(params["prompt"], params["subject"])
        key: tuple[Any, ...] = (host.name, host.revision, kind, json.dumps(params, sort_keys=True))
        if not job_kinds[kind].cached:
            key += (next(unique),)
        run = job_kinds[kind].body
        job = jobs.submit(kind, params, key, lambda context: plain_json(run(host, params, context)))
        return JSONResponse(job.to_dict(jobs.position(job)), status_code=202)

    def find_job(job_id: str) -> Any:
        job = jobs.get(job_id) if len(job_id) <= 64 else None
        if job is None:
            raise ClientError(404, f"no job {job_id[:64]!r}; it may have finished long ago")
        return job

    @app.get("/api/jobs/{job_id}")
    async def job_state(job_id: str) -> JSONResponse:
        job = find_job(job_id)
        return JSONResponse(job.to_dict(jobs.position(job)))

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel(job_id: str) -> JSONResponse:
        job = find_job(job_id)
        jobs.cancel(job.id)
        return JSONResponse(job.to_dict(jobs.position(job), with_result=False))

    @app.get("/api/jobs/{job_id}/events")
    async def events(job_id: str, request: Request) -> StreamingResponse:
        job = find_job(job_id)

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

    @app.post("/api/edit/undo")
    async def undo() -> JSONResponse:
        if "edit" not in job_kinds:
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

    @app.get("/api/runs/{kind}")
    async def runs(kind: str, run: str | None = None) -> dict[str, Any]:
        from factscope.web import runs as on_disk

        if kind not in on_disk.RESULT_FILES or kind not in views:
            raise ClientError(404, f"no {kind[:40]!r} runs here; available: study, train")
        if run is None:
            return {"kind": kind, "runs": on_disk.list_runs(runs_dir, kind)}
        if len(run) > 300:
            raise ClientError(422, "run name is too long")
        return on_disk.read_run(runs_dir, kind, run)

    @app.get("/api/stats")
    async def stats() -> dict[str, Any]:
        import psutil

        s = batcher.stats
        return {
            "requests": s.requests,
            "forwards": s.forwards,
            "largest_batch": s.largest_batch,
            "refused": s.refused,
            "recent_batch_sizes": s.sizes[-20:],
            "rss_bytes": psutil.Process(os.getpid()).memory_info().rss,
        }

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if trusted_hosts is not None:
            name = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]")
            if name not in trusted_hosts:
                return _error(400, f"host {name!r} is not served here; open 127.0.0.1")
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-eval'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:"
        )
        return response

    app.add_middleware(BodyLimit, max_bytes=max_body)
    return app
