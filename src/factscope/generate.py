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
    """Choose one token per row of logits (B, V) -> (B,).

    Top-k and top-p sample among their candidates only (a multinomial draw over Gemma's
    262,144 probabilities costs more than a small batch's forward)."""
    if sampling.temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / sampling.temperature
    token_ids: Tensor | None = None  # (B, k): the vocabulary id of each candidate
    if sampling.top_k is not None:
        logits, token_ids = logits.topk(min(sampling.top_k, logits.shape[-1]), dim=-1)
    probs = logits.softmax(dim=-1)
    if sampling.top_p is not None:
        probs, order = nucleus(probs, sampling.top_p)
        token_ids = order if token_ids is None else token_ids.gather(-1, order)
    pick = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
    return (pick if token_ids is None else token_ids.gather(-1, pick)).squeeze(-1)


NUCLEUS_CANDIDATES = (2048, 32768)


def nucleus(probs: Tensor, top_p: float) -> tuple[Tensor, Tensor]:
    """Top-p: the smallest set of most likely tokens that holds `top_p` of the mass.

    A token is kept when the tokens ranked above it hold less than top_p. Returns (B, k)
    probabilities in descending order, zero where dropped, and their token ids. Sorting all
    of Gemma's 262,144 probabilities costs 25 ms a row, more than a small batch's forward,
    so the nucleus is looked for among the 2,048, then 32,768 most likely tokens; the full
    sort runs only for rows flatter than that. The set is the full sort's."""
    vocab = probs.shape[-1]
    for k in (*NUCLEUS_CANDIDATES, vocab):
        if k >= vocab:
            top, token_ids = probs.sort(dim=-1, descending=True)
            break
        top, token_ids = probs.topk(k, dim=-1)
        if bool((top.sum(dim=-1) >= top_p).all()):  # the k-th token's rank is past the set
            break
    keep = top.cumsum(dim=-1) - top < top_p
    return top * keep, token_ids


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
