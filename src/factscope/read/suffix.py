"""Re-running one prompt with many interventions at one position, cheaply.

An intervention at position `start` changes nothing before it (attention is causal), so the
keys and values of tokens 0..start-1 are computed once and shared by every re-run; only the
suffix start..T-1 runs again. The neuron ablations (ablation.py) and the readout of heads and
neurons (readout.py) both run this way, and count the forward passes they make.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import HookFn, hooks
from factscope.model import KVCache, Transformer


@dataclass
class ForwardCount:
    """Forward passes run: `calls` batched calls of the model, `rows` sequences in them,
    `tokens` token positions computed (a reused prefix is counted once)."""

    calls: int = 0
    rows: int = 0
    tokens: int = 0
    backward: int = 0

    def add(self, rows: int, tokens: int) -> None:
        self.calls += 1
        self.rows += rows
        self.tokens += rows * tokens

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class SuffixRunner:
    """Run one prompt many times with different hooks, recomputing only tokens start..T-1.

    An intervention at position `start` changes nothing before it (attention is causal), so
    the keys and values of tokens 0..start-1 are computed once and shared by every row.
    """

    def __init__(
        self, model: Transformer, tokens: Tensor, start: int, count: ForwardCount | None = None
    ) -> None:
        if not 0 <= start < tokens.shape[1]:
            raise FactscopeError(
                f"position {start} is outside the prompt (0..{tokens.shape[1] - 1})"
            )
        self.model, self.tokens, self.start = model, tokens, start
        self.count = count if count is not None else ForwardCount()
        self.prefix = KVCache.empty(model.cfg.n_layers)
        if start > 0:
            with torch.no_grad():
                positions = torch.arange(start, device=tokens.device)
                model.run_blocks(
                    model.embed_tokens(tokens[:, :start]), positions, kv_cache=self.prefix
                )
            self.count.add(1, start)

    def logits(self, rows: int, fns: dict[str, HookFn] | None = None) -> Tensor:
        """Final-position logits of `rows` copies of the suffix with hooks: (rows, V).

        Hooks see suffix activations, (rows, T - start, ...): position p is index p - start.
        """
        kv = KVCache(
            [None if k is None else k.expand(rows, -1, -1, -1) for k in self.prefix.keys],
            [None if v is None else v.expand(rows, -1, -1, -1) for v in self.prefix.values],
        )
        suffix = self.tokens[:, self.start :].expand(rows, -1)  # (rows, T - start)
        with hooks(self.model, fns or {}):
            logits = self.model(suffix, kv_cache=kv, logits_at="last")[:, -1]
        self.count.add(rows, suffix.shape[1])
        return logits

    def answer_probs(
        self, answer_id: int, rows: int, fns: dict[str, HookFn] | None = None
    ) -> Tensor:
        """p(answer) at the final position for each row: (rows,)."""
        return self.logits(rows, fns).float().log_softmax(-1)[:, answer_id].exp()


__all__ = ["ForwardCount", "SuffixRunner"]
