"""The one model the server holds, shared between requests through a lock.

Every computation that touches the model (a batch of predictions, a trace, an edit) runs
inside `ModelHost.use(...)`, so two never interleave: hooks attached by one cannot leak
into another, and an edit never lands in the middle of a forward pass. `holder` says who
has the model now, so a request can answer "queued behind the trace job" at once instead
of waiting. `revision` counts changes to the weights (edits and undos): cached results
are keyed by it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from factscope.load import LoadedModel

if TYPE_CHECKING:
    from factscope.features.sae import SparseDictionary


@dataclass
class AppliedEdit:
    """An edit applied to the served model, with what undoes it."""

    description: dict[str, Any]
    handle: Any  # the edit capability's handle; has undo()
    revision_before: int  # the weights' revision the undo returns to


@dataclass
class ModelHost:
    """One loaded model (and the sparse dictionary read with it, if any), its lock, and the
    edits applied to it in this session."""

    lm: LoadedModel
    sae: SparseDictionary | None = None  # `serve --sae`: the dictionary the Features view reads
    sae_path: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    holder: str | None = None  # "predict", "job:trace", ... while someone holds the model
    revision: int = 0  # bumped whenever the weights change
    edits: list[AppliedEdit] = field(default_factory=list)
    _revisions: int = 0  # revisions handed out so far (a new edit never reuses one)
    predictions_waiting: int = 0  # set by the batcher: jobs let waiting predictions go first

    @property
    def name(self) -> str:
        return self.lm.name

    @contextmanager
    def use(self, holder: str, *, yield_to_predictions: bool = False) -> Iterator[LoadedModel]:
        """Hold the model for one computation. With `yield_to_predictions` (jobs), first let
        waiting prediction batches run: typing a prompt stays responsive during a job."""
        if yield_to_predictions:
            deadline = time.monotonic() + 2.0
            while self.predictions_waiting and time.monotonic() < deadline:
                time.sleep(0.005)
        with self._lock:
            self.holder = holder
            try:
                yield self.lm
            finally:
                self.holder = None

    def applied(self, description: dict[str, Any], handle: Any) -> None:
        """Record an edit just applied (call while holding the model)."""
        self.edits.append(AppliedEdit(description, handle, self.revision))
        self._revisions += 1
        self.revision = self._revisions

    def undo_last(self) -> AppliedEdit | None:
        """Undo the last edit (call while holding the model): the weights are restored bit
        for bit, so the revision goes back to the one before it and old results apply."""
        if not self.edits:
            return None
        last = self.edits.pop()
        last.handle.undo()
        self.revision = last.revision_before
        return last

    def busy_job(self) -> str | None:
        """The job holding the model now, or None (free, or serving predictions)."""
        holder = self.holder
        return holder if holder is not None and holder != "predict" else None
