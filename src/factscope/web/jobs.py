"""Long computations in the background: queued, run one per kind, streamed, cancellable.

A job is a function of a `JobContext`; it calls `context.report(fraction, message)` as it
goes, which records progress (the page streams it over server-sent events) and raises
`JobCancelled` once someone asked to cancel. At most one job of a kind runs at a time and
at most `max_queued` more wait; beyond that `submit` refuses at once (`Busy`). Finished
results are cached by the job's key (model, weights revision, kind, parameters), so asking
again answers at once; asking for a job that is already queued or running returns it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from factscope.errors import FactscopeError
from factscope.web.batching import Busy

log = logging.getLogger("factscope.web")

State = Literal["queued", "running", "done", "error", "cancelled"]
FINISHED: tuple[State, ...] = ("done", "error", "cancelled")


class JobCancelled(Exception):
    """Raised inside a job at its next progress report after a cancel request."""


@dataclass
class Job:
    """One background computation and what is known about it so far."""

    id: str
    kind: str
    params: dict[str, Any]
    key: Hashable
    state: State = "queued"
    progress: float = 0.0
    message: str = "queued"
    result: Any = None
    error: str | None = None
    cached: bool = False
    created: float = field(default_factory=time.time)
    version: int = 0  # bumped on every change, so watchers know when to send
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def update(self, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(self, name, value)
        self.version += 1

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self, position: int | None = None, with_result: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": round(self.progress, 4),
            "message": self.message,
            "cached": self.cached,
            "error": self.error,
        }
        if position is not None:
            data["position"] = position
        if with_result and self.state == "done":
            data["result"] = self.result
        return data


@dataclass
class JobContext:
    """What a running job sees: where to report progress, and whether to stop."""

    job: Job

    def report(self, fraction: float, message: str = "") -> None:
        """Record progress in [0, 1]; raises JobCancelled if a cancel was asked for."""
        if self.job.cancel_requested.is_set():
            raise JobCancelled()
        self.job.update(progress=min(max(fraction, 0.0), 1.0), message=message or self.job.message)

    @property
    def cancelled(self) -> bool:
        return self.job.cancel_requested.is_set()


JobFn = Callable[[JobContext], Any]


class JobManager:
    """Runs jobs one per kind, keeps the finished ones for a while, caches results."""

    def __init__(self, max_queued: int = 4, cache_size: int = 64, keep_jobs: int = 256) -> None:
        self.max_queued = max_queued
        self.cache_size = cache_size
        self.keep_jobs = keep_jobs
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._queues: dict[str, list[Job]] = {}  # per kind: the running job first, then waiting
        self._workers: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        """1 for the running job of its kind, 2 for the next, ...; None once finished."""
        with self._lock:
            line = self._queues.get(job.kind, [])
            return line.index(job) + 1 if job in line else None

    def submit(self, kind: str, params: dict[str, Any], key: Hashable, fn: JobFn) -> Job:
        """Start (or queue) a job; a cached or identical unfinished job is returned instead."""
        with self._lock:
            for job in self._queues.get(kind, []):
                if job.key == key and not job.cancel_requested.is_set():
                    return job
            job = Job(f"{kind}-{next(self._ids)}", kind, params, key)
            if key in self._cache:
                self._cache.move_to_end(key)
                job.update(state="done", progress=1.0, message="done (cached)", cached=True)
                job.result = self._cache[key]
                self._remember(job)
                return job
            line = self._queues.setdefault(kind, [])
            if len(line) > self.max_queued:  # one running + max_queued waiting
                raise Busy(
                    f"{len(line)} {kind} jobs are running or queued (the limit); "
                    "wait for one to finish or cancel one",
                    len(line) + 1,
                )
            line.append(job)
            self._remember(job)
            worker = self._workers.setdefault(
                kind, ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"job-{kind}")
            )
        worker.submit(self._run, job, fn)
        return job

    def cancel(self, job_id: str) -> Job | None:
        """Ask a job to stop: a queued one never starts, a running one stops at its next
        progress report. Finished jobs are left as they are."""
        job = self._jobs.get(job_id)
        if job is None or job.finished:
            return job
        job.cancel_requested.set()
        if job.state == "queued":
            self._finish(job, state="cancelled", message="cancelled before it started")
        return job

    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        while len(self._jobs) > self.keep_jobs:
            oldest = next(iter(self._jobs.values()))
            if not oldest.finished:
                break
            self._jobs.popitem(last=False)

    def _finish(self, job: Job, **changes: Any) -> None:
        with self._lock:
            line = self._queues.get(job.kind, [])
            if job in line:
                line.remove(job)
        job.update(**changes)

    def _run(self, job: Job, fn: JobFn) -> None:
        if job.finished:  # cancelled while queued
            return
        job.update(state="running", message="running")
        try:
            result = fn(JobContext(job))
        except JobCancelled:
            self._finish(job, state="cancelled", message="cancelled")
        except FactscopeError as error:  # bad input found while running: the user's to fix
            self._finish(job, state="error", error=str(error), message="failed")
        except Exception as error:  # a bug: logged with its traceback, a short line to the page
            log.exception("job %s failed", job.id)
            self._finish(
                job,
                state="error",
                error=f"internal error in the {job.kind} job ({type(error).__name__}); "
                "see the server log",
                message="failed",
            )
        else:
            with self._lock:
                self._cache[job.key] = result
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            job.result = result
            self._finish(job, state="done", progress=1.0, message="done")

    def invalidate(self, predicate: Callable[[Hashable], bool]) -> None:
        """Forget cached results whose key matches (e.g. after the weights changed)."""
        with self._lock:
            for key in [k for k in self._cache if predicate(k)]:
                del self._cache[key]

    def shutdown(self) -> None:
        for job in list(self._jobs.values()):
            if not job.finished:
                job.cancel_requested.set()
        for worker in self._workers.values():
            worker.shutdown(wait=False, cancel_futures=True)
