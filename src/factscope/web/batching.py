"""Predictions that arrive together are answered by one forward pass (micro-batching).

A request's prompt joins a queue; the first one starts a short collection window
(`window_s`), after which up to `max_batch` queued prompts run as one batch. Prompts of
different lengths are right-padded: attention is causal, so the padding after a prompt's
last token cannot change what the model computes at that token, and each prompt's
prediction is read at its own last position. The queue is bounded: when it is full a
request is refused at once (`Busy`), never left waiting.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import torch

from factscope.load import LoadedModel
from factscope.predict import Candidate, Prediction
from factscope.web.host import ModelHost


class Busy(Exception):
    """The server cannot take this request now; the message says why (and the position)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@torch.inference_mode()
def predict_many(
    lm: LoadedModel, prompts: list[list[int]], top_k: list[int], texts: list[str] | None = None
) -> list[Prediction]:
    """The top next tokens after each prompt (token ids; `texts`: the prompts as typed),
    all in one forward pass: `predict_next` for many prompts at once."""
    model, tokenizer = lm.model, lm.tokenizer
    lengths = torch.tensor([len(p) for p in prompts], device=model.device)  # (B,)
    T = int(lengths.max())
    tokens = torch.zeros((len(prompts), T), dtype=torch.long, device=model.device)  # (B, T)
    for row, ids in enumerate(prompts):
        tokens[row, : len(ids)] = torch.tensor(ids)
    positions = torch.arange(T, device=model.device)
    x = model.run_blocks(model.embed_tokens(tokens), positions)  # (B, T, D)
    last = x[torch.arange(len(prompts)), lengths - 1]  # (B, D): each prompt's last token
    logits = model.unembed_residual(last[:, None])[:, 0].float()  # (B, V)
    probs = logits.softmax(-1)
    predictions = []
    for row, ids in enumerate(prompts):
        top = torch.topk(probs[row], min(top_k[row], probs.shape[1]))
        candidates = [
            Candidate(tokenizer.decode([i]), i, float(probs[row, i]), float(logits[row, i]))
            for i in top.indices.tolist()
        ]
        pieces = [tokenizer.token_str(i) for i in ids]
        text = texts[row] if texts is not None else tokenizer.decode(ids)
        predictions.append(Prediction(lm.name, text, pieces, candidates))
    return predictions


@dataclass
class _Waiting:
    text: str
    ids: list[int]
    top_k: int
    future: asyncio.Future[Prediction]


@dataclass
class BatchStats:
    """How the batcher has served so far (shown at /api/stats; the load test reads it)."""

    requests: int = 0
    forwards: int = 0
    largest_batch: int = 0
    refused: int = 0
    sizes: list[int] = field(default_factory=list)  # the last 100 batch sizes


class PredictBatcher:
    """The queue of predictions waiting for the model; one forward per batch."""

    def __init__(
        self,
        host: ModelHost,
        *,
        max_batch: int = 32,
        max_waiting: int = 256,
        window_s: float = 0.004,
        batching: bool = True,
    ) -> None:
        self.host = host
        self.max_batch = max_batch if batching else 1
        self.max_waiting = max_waiting
        self.window_s = window_s if batching else 0.0
        self.stats = BatchStats()
        self._waiting: list[_Waiting] = []
        self._drainer: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def predict(self, text: str, ids: list[int], top_k: int) -> Prediction:
        """Queue one prompt and wait for its batch; `Busy` at once if the queue is full."""
        if len(self._waiting) >= self.max_waiting:
            self.stats.refused += 1
            raise Busy(
                f"the server has {len(self._waiting)} predictions waiting (the limit); "
                "try again in a moment",
                len(self._waiting) + 1,
            )
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(text, ids, top_k, future))
        self.host.predictions_waiting = len(self._waiting)
        self.stats.requests += 1
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(self.window_s)  # let requests that arrive together gather
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            try:
                results = await asyncio.to_thread(self._run, batch)
            except Exception as error:  # the batch failed: every request in it hears why
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)
            else:
                for item, result in zip(batch, results, strict=True):
                    if not item.future.done():  # the client may have gone away
                        item.future.set_result(result)
            finally:
                self.host.predictions_waiting = len(self._waiting)

    def _run(self, batch: list[_Waiting]) -> list[Prediction]:
        with self.host.use("predict") as lm:
            results = predict_many(
                lm, [w.ids for w in batch], [w.top_k for w in batch], [w.text for w in batch]
            )
        self.stats.forwards += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.stats.sizes = [*self.stats.sizes[-99:], len(batch)]
        return results
