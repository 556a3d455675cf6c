"""Attention patterns per head: where each head of one layer looks from every token, and,
over every layer, which heads look from the last token at the subject.

A head's pattern at `blocks.{l}.attn.pattern` is a (T, T) matrix: row t is the softmax
weights with which query token t reads the tokens 0..t. The heads that move a fact to the
last token (the "mover" heads of the Flow view) put much of the last row's weight on the
subject's tokens; `to_subject[l][h]` is that weight, summed over the subject.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from factscope.errors import FactscopeError
from factscope.hooks import run_with_cache
from factscope.load import LoadedModel
from factscope.locate.prompts import encode_prompt
from factscope.result import Result
from factscope.tokenizer import spell_tokens


@dataclass(frozen=True)
class SubjectHead:
    """A head ranked by how much the last token attends to the subject through it."""

    layer: int
    head: int
    to_subject: float  # the last token's attention weight on the subject's tokens, summed
    source: int  # the subject token it attends to most


@dataclass(frozen=True)
class AttentionResult(Result):
    """Every head's pattern at one layer, and the last token's attention on the subject at
    every layer and head."""

    model: str
    prompt: str
    tokens: list[str]
    subject: str
    subject_span: tuple[int, int]
    n_layers: int
    n_heads: int
    to_subject: list[list[float]]  # (L, H)
    top_heads: list[SubjectHead]  # the most subject-attending heads, strongest first
    layer: int  # the layer whose patterns are given (default: the strongest head's)
    patterns: list[list[list[float]]]  # (H, T, T): [head][query][key]


@torch.no_grad()
def attention_of_fact(
    lm: LoadedModel, prompt: str, subject: str, *, layer: int | None = None, top: int = 5
) -> AttentionResult:
    """The attention patterns of every head of `layer` on `prompt` (default: the layer of
    the head whose last token attends most to `subject`), and the `top` heads by that
    attention over all layers."""
    model, tokenizer = lm.model, lm.tokenizer
    L = model.cfg.n_layers
    if layer is not None and not 0 <= layer < L:
        raise FactscopeError(f"layer must be between 0 and {L - 1} (the model has {L} layers)")
    tokens = encode_prompt(model, tokenizer, prompt)  # (1, T)
    start, stop = tokenizer.find_subject_span(prompt, subject)
    sites = [f"blocks.{i}.attn.pattern" for i in range(L)]
    _, cache = run_with_cache(model, tokens, sites)
    patterns = torch.stack([cache[site][0].float() for site in sites])  # (L, H, T, T)
    on_subject = patterns[:, :, -1, start:stop]  # (L, H, n_subject): the last query's row
    to_subject = on_subject.sum(-1)  # (L, H)
    H = to_subject.shape[1]
    order = torch.argsort(to_subject.flatten(), descending=True)[:top]
    heads = []
    for index in order.tolist():
        l, h = divmod(index, H)
        heads.append(
            SubjectHead(l, h, float(to_subject[l, h]), start + int(on_subject[l, h].argmax()))
        )
    shown = heads[0].layer if layer is None else layer
    return AttentionResult(
        model=lm.name,
        prompt=prompt,
        tokens=spell_tokens(tokenizer, tokens[0].tolist()),
        subject=subject,
        subject_span=(start, stop),
        n_layers=L,
        n_heads=H,
        to_subject=to_subject.tolist(),
        top_heads=heads,
        layer=shown,
        patterns=patterns[shown].tolist(),
    )
