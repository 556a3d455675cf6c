"""Text generation with a KV cache: greedy, temperature, top-k and top-p sampling."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from factscope.model import KVCache, Transformer


@dataclass(frozen=True)
class Sampling:
    """How to pick the next token. temperature 0 means greedy (argmax)."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None


def pick_token(logits: Tensor, sampling: Sampling, generator: torch.Generator | None) -> Tensor:
    """Choose one token per row of logits (B, V) -> (B,)."""
    if sampling.temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / sampling.temperature
    if sampling.top_k is not None:
        kth = torch.topk(logits, min(sampling.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens ranked above it already hold top_p of the mass
        drop_sorted = probs.cumsum(dim=-1) - probs >= sampling.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate_tokens(
    model: Transformer,
    tokens: Tensor,
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    stop_token: int | None = None,
    use_cache: bool = True,
) -> Iterator[int]:
    """Yield new token ids continuing `tokens` (1, T), one at a time.

    With `use_cache` each step feeds only the newest token and reuses the keys and values
    of the earlier ones; without it each step reruns the whole sequence (for checking).
    """
    generator = None
    if sampling.seed is not None:
        generator = torch.Generator(device=tokens.device).manual_seed(sampling.seed)
    kv_cache = KVCache.empty(model.cfg.n_layers) if use_cache else None
    sequence = tokens
    step_input = tokens
    for _ in range(max_new_tokens):
        if sequence.shape[1] >= model.cfg.context_length:
            return
        if kv_cache is not None:
            logits = model(step_input, kv_cache=kv_cache, logits_at="last")[:, -1]
        else:
            logits = model(sequence, logits_at="last")[:, -1]
        next_token = pick_token(logits, sampling, generator)  # (1,)
        yield int(next_token)
        if stop_token is not None and int(next_token) == stop_token:
            return
        step_input = next_token[:, None]
        sequence = torch.cat([sequence, step_input], dim=1)
