"""How the answer is read out of the subject (Geva et al. 2023, "Dissecting Recall of
Factual Associations in Auto-Regressive Language Models").

The MLPs at the subject's tokens enrich its representation with attributes; attention at
the final token then *extracts* the attribute the relation asks for. Two measurements:

- **attention knockout** (`knockout_probs`, `knock_out`): block the final token from
  attending to some tokens (their attention scores set to -inf before the softmax, in every
  head, through the `blocks.{i}.attn.scores` hook site) over a window of layers around
  each layer, and watch p(answer). Geva et al. find a drop when the subject is blocked in
  the upper-middle layers, and little when other tokens are.
- **the heads that write the answer** (`answer_heads`): the heads with the largest direct
  contribution to the answer's logit, how much of their attention at the final token goes
  to the subject, the tokens their output promotes, and the tokens their OV circuit writes
  when it reads the last subject token (the "attribute extraction" view).

Blocking edges from the final token changes nothing before it, so every batch reuses the
keys and values of the other tokens (`SuffixRunner` with start T - 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import HookFn, run_with_cache
from factscope.locate.corruption import window_layers
from factscope.locate.lens import direct_logit_attribution
from factscope.locate.prompts import answer_token, encode_prompt, predicted_answer
from factscope.model import Attention, Transformer
from factscope.norms import frozen_rms_scale
from factscope.read.reading import FactReading, fact_fields
from factscope.read.suffix import ForwardCount, SuffixRunner
from factscope.tokenizer import Tokenizer, spell_tokens

if TYPE_CHECKING:
    from factscope.load import LoadedModel

SOURCES: tuple[str, ...] = ("subject", "non-subject", "last")

Blocked = tuple[
    Sequence[int], Sequence[int]
]  # (layers, key positions) the final token may not read


def knockout_probs(
    model: Transformer,
    tokens: Tensor,
    answer_id: int,
    rows: Sequence[Blocked],
    *,
    batch_size: int = 64,
    count: ForwardCount | None = None,
) -> Tensor:
    """p(answer) for each row with the final token's attention to `keys` blocked in
    `layers` (every head): (R,). A row that blocks nothing is the clean run."""
    T, L = tokens.shape[1], model.cfg.n_layers
    for layers, keys in rows:
        if any(not 0 <= k < T for k in keys):
            raise FactscopeError(f"a blocked token is outside the prompt (0..{T - 1})")
        if any(not 0 <= layer < L for layer in layers):
            raise FactscopeError(f"a blocked layer does not exist; this model has 0..{L - 1}")
        if len(set(keys)) == T and layers:
            raise FactscopeError("cannot block every token: the final token must attend somewhere")
    runner = SuffixRunner(model, tokens, T - 1, count)
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        masks: dict[int, Tensor] = {}
        for r, (layers, keys) in enumerate(batch):
            for layer in layers:
                if layer not in masks:
                    masks[layer] = torch.zeros(len(batch), T, dtype=torch.bool)
                masks[layer][r, list(keys)] = True

        def block(x: Tensor, site: str, masks: dict[int, Tensor] = masks) -> Tensor:
            mask = masks[int(site.split(".")[1])].to(x.device)  # (B, S)
            return x.masked_fill(mask[:, None, None, :], float("-inf"))  # x: (B, H, 1, S)

        fns: dict[str, HookFn] = {f"blocks.{layer}.attn.scores": block for layer in masks}
        with torch.no_grad():
            out.append(runner.answer_probs(answer_id, len(batch), fns).cpu())
    return torch.cat(out) if out else torch.empty(0)


def source_positions(tokens: Tensor, span: tuple[int, int], has_bos: bool) -> dict[str, list[int]]:
    """Key positions per source: the subject's tokens, the other tokens (not the final one,
    nor BOS, an attention sink whose removal breaks any model), and the final token."""
    T = tokens.shape[1]
    subject = list(range(*span))
    first = 1 if has_bos else 0
    others = [t for t in range(first, T - 1) if t not in subject]
    return {"subject": subject, "non-subject": others, "last": [T - 1]}


@dataclass
class HeadReadout:
    """One head at the final token: its direct logit contribution, its attention to the
    subject, the tokens its output promotes, the tokens its OV circuit writes from the last
    subject token."""

    layer: int
    head: int
    dla: float
    attn_to_subject: float  # sum of the final token's attention weights on subject tokens
    writes: list[tuple[str, float]]
    ov_subject: list[tuple[str, float]]


@dataclass
class KnockoutResult(FactReading):
    """p(answer) with the final token's attention to each source blocked in a window of
    `window` layers centred on each layer (`windows[i]` = [first, last] layer)."""

    window: int
    starts: list[int]  # the centre layer of each window
    windows: list[list[int]]  # [first, last] layer of each window
    sources: dict[str, list[int]]  # blocked key positions per source
    clean_p: float
    probs: dict[str, list[float]]  # source -> p per window
    relative_change: dict[str, list[float]]  # source -> (p - clean) / clean per window
    heads: list[HeadReadout]
    forward_passes: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        from factscope.report.reading_html import knockout_fragment

        return knockout_fragment(self.to_dict())


@torch.no_grad()
def answer_heads(
    model: Transformer,
    tokens: Tensor,
    answer_id: int,
    span: tuple[int, int],
    n_heads: int = 5,
    n_tokens: int = 8,
    tokenizer: Tokenizer | None = None,
) -> list[HeadReadout]:
    """The `n_heads` heads with the largest direct contribution to the answer's logit."""
    cfg = model.cfg
    L, H, dh = cfg.n_layers, cfg.n_heads, cfg.d_head
    if not 1 <= n_heads <= L * H:
        raise FactscopeError(f"--heads {n_heads} is out of range; choose 1..{L * H}")
    dla = torch.tensor(direct_logit_attribution(model, tokens, answer_id).heads)  # (L, H)
    order = dla.flatten().argsort(descending=True)[:n_heads]
    sites = [f"blocks.{i}.attn.{s}" for i in range(L) for s in ("pattern", "z", "v")]
    _, cache = run_with_cache(model, tokens, sites, logits_at="last")
    last_subject = span[1] - 1
    group = H // cfg.n_kv_heads
    directions = []
    found = []
    for flat in order.tolist():
        layer, head = divmod(int(flat), H)
        attention = cast(Attention, model.blocks[layer].attn)
        w_o = attention.o_proj.weight.view(-1, H, dh)[:, head]  # (D, dh)
        z = cache[f"blocks.{layer}.attn.z"][0, -1, head]  # (dh,)
        v = cache[f"blocks.{layer}.attn.v"][0, last_subject, head // group]  # (dh,)
        out, ov = w_o @ z, w_o @ v  # (D,) each
        if attention.post_norm is not None:  # the post-norm's frozen scale, as in DLA
            total = attention.o_proj(cache[f"blocks.{layer}.attn.z"][0, -1].flatten())
            gain = frozen_rms_scale(attention.post_norm, total)[0] * attention.post_norm.weight
            out, ov = out * gain, ov * gain
        directions += [out, ov]
        pattern = cache[f"blocks.{layer}.attn.pattern"][0, head, -1]  # (S,)
        found.append(
            (layer, head, float(dla[layer, head]), float(pattern[span[0] : span[1]].sum()))
        )
    logits = model.unembed.weight.float() @ (
        torch.stack(directions, 1).float() * model.norm.weight.float()[:, None]
    )
    top = logits.topk(n_tokens, dim=0)  # (k, 2n)

    def tokens_of(j: int) -> list[tuple[str, float]]:
        ids, vals = top.indices[:, j].tolist(), top.values[:, j].tolist()
        return list(zip(spell_tokens(tokenizer, ids), vals, strict=True))

    return [
        HeadReadout(layer, head, d, a, tokens_of(2 * j), tokens_of(2 * j + 1))
        for j, (layer, head, d, a) in enumerate(found)
    ]


def knock_out(
    loaded: LoadedModel,
    prompt: str,
    subject: str,
    answer: str | None = None,
    *,
    window: int | None = None,
    n_heads: int = 5,
    batch_size: int = 64,
) -> KnockoutResult:
    """Attention knockout of the final token's edges to each source, for a window of
    `window` layers (default 5, or every layer if fewer) centred on each layer, and the
    `n_heads` heads that write the answer."""
    model, tokenizer = loaded.model, loaded.tokenizer
    L = model.cfg.n_layers
    tokens = encode_prompt(model, tokenizer, prompt)
    span = tokenizer.find_subject_span(prompt, subject)
    window = min(5, L) if window is None else window
    if not 1 <= window <= L:
        raise FactscopeError(f"--window {window} is out of range; choose 1..{L} layers")
    target = (
        answer_token(tokenizer, answer)
        if answer is not None
        else predicted_answer(model, tokenizer, tokens)
    )
    has_bos = tokenizer.bos_id is not None and int(tokens[0, 0]) == tokenizer.bos_id
    sources = source_positions(tokens, span, has_bos)
    notes = [target.note] if target.note else []
    if span[1] == tokens.shape[1]:
        notes.append("the subject ends the prompt: the 'last' source is its last token too")
    windows = [window_layers(layer, window, L) for layer in range(L)]
    rows: list[Blocked] = [((), ())]
    for source in SOURCES:
        rows += [(list(w), sources[source]) for w in windows]
    count = ForwardCount()
    p = knockout_probs(model, tokens, target.id, rows, batch_size=batch_size, count=count)
    clean = float(p[0])
    grid = p[1:].view(len(SOURCES), L)
    probs = {source: grid[i].tolist() for i, source in enumerate(SOURCES)}
    heads = answer_heads(model, tokens, target.id, span, n_heads, tokenizer=tokenizer)
    count.add(2, tokens.shape[1])  # the DLA run and the pattern cache
    return KnockoutResult(
        **fact_fields(loaded.name, prompt, subject, target, tokenizer, tokens, span),
        window=window,
        starts=list(range(L)),
        windows=[[w[0], w[-1]] for w in windows],
        sources=sources,
        clean_p=clean,
        probs=probs,
        relative_change={s: [(x - clean) / clean for x in v] for s, v in probs.items()},
        heads=heads,
        forward_passes=count.to_dict(),
        notes=notes,
    )
