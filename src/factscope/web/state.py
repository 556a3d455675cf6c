"""What every route shares, handed to it as a FastAPI dependency: the served model, the
prediction batcher, the job queue, and what this server offers."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from factscope.web.analyses import JobKind
from factscope.web.batching import PredictBatcher
from factscope.web.errors import ClientError
from factscope.web.host import ModelHost
from factscope.web.jobs import JobManager
from factscope.web.schemas import MAX_PROMPT_TOKENS


@dataclass
class Served:
    """The server's state: one model, its batcher and jobs, the views and job kinds it
    offers, and the limits and folders it was started with."""

    host: ModelHost
    batcher: PredictBatcher
    jobs: JobManager
    views: list[str]
    job_kinds: dict[str, JobKind[Any]]
    max_body: int
    runs_dir: Path | None
    predictions: OrderedDict[tuple[Any, ...], dict[str, Any]] = field(default_factory=OrderedDict)
    unique: Iterator[int] = field(default_factory=itertools.count)

    def check_model(self, name: str | None) -> None:
        """Refuse a request naming another model than the one served."""
        from factscope.registry import MODELS

        host = self.host
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

    def encode(self, prompt: str) -> list[int]:
        """The prompt's token ids; refused when empty or longer than the limit."""
        ids = self.host.lm.tokenizer.encode(prompt)
        limit = min(MAX_PROMPT_TOKENS, self.host.lm.cfg.context_length)
        if not ids:
            raise ClientError(422, "prompt encodes to no tokens; type some text")
        if len(ids) > limit:
            raise ClientError(422, f"prompt is {len(ids)} tokens; the limit is {limit}")
        return ids


def served(request: Request) -> Served:
    """The dependency: the state of the app serving this request."""
    state: Served = request.app.state.served
    return state


ServedState = Annotated[Served, Depends(served)]
