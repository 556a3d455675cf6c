"""Every error the web app answers is JSON `{"error": "..."}` with one line a person can act
on, and a 4xx status for anything the client sent (pydantic's complaints rewritten)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from factscope.errors import FactscopeError
from factscope.web.batching import Busy

log = logging.getLogger("factscope.web")


class ClientError(Exception):
    """A request the client must change: a 4xx status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_response(code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=code)


def validation_message(errors: list[Any]) -> tuple[int, str]:
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


def add_error_handlers(app: FastAPI) -> None:
    """JSON with a message for every error: 4xx for what the client sent, 429 when busy,
    500 (logged) for a bug."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = validation_message(list(exc.errors()))
        return error_response(status, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(ClientError)
    async def _client(request: Request, exc: ClientError) -> JSONResponse:
        return error_response(exc.status, str(exc))

    @app.exception_handler(FactscopeError)
    async def _factscope(request: Request, exc: FactscopeError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return error_response(429, str(exc), status="busy", position=exc.position)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log")
