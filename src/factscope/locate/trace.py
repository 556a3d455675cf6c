"""Causal tracing (Meng et al. 2022, "ROME"): which hidden states carry a fact?

Corrupt the subject: add Gaussian noise to the embeddings of the subject's tokens, so the
model no longer knows who "Michael Jordan" is and p(" basketball") drops. Then, one cell at
a time, restore a single piece of the clean run in the corrupted run and see how much of the
answer's probability comes back:

- kind "hidden": the residual stream after block l (`blocks.{l}.resid_post`) at token t;
- kind "mlp" / "attn": the MLP / attention output (`blocks.{j}.mlp.out`, `.attn.out`) at
  token t for every layer j in a window of `window` layers centred on l (ROME's window:
  `window_layers`).

`scores[t][l]` is p(answer) with cell (t, l) restored, averaged over the noise samples; its
excess over the corrupted p is the cell's *indirect effect*.

Two implementations, equal to float precision (tests/test_trace.py checks it):

- `trace_fact_reference`: ROME's algorithm, one full forward of every noisy prompt per cell.
- `trace_fact`: the fast one. Restoring at (t, l) changes nothing before token t (attention
  is causal) and nothing below the first restored layer. So we run the clean prompt once and
  the noisy prompts once (keeping their residual streams and keys/values), and per cell only
  recompute tokens t..T-1 from the first restored layer up, attending to the corrupted run's
  cached keys/values for tokens < t. Many cells and all noise samples go through one batched
  forward, and only the final position is unembedded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Unpack

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import hooks
from factscope.locate.attribution import approx_trace
from factscope.locate.corruption import (
    CleanRun,
    CorruptedRun,
    Corruption,
    Kind,
    Method,
    TraceOptions,
    TraceResult,
    TraceSpec,
    answer_probability,
    clean_run,
    corrupt_embed_hook,
    corrupted_run,
    estimate_noise_std,
    restored_sites,
    window_layers,
)
from factscope.locate.prompts import answer_token, encode_prompt, predicted_answer
from factscope.model import KVCache, Transformer
from factscope.progress import progress_bar

if TYPE_CHECKING:
    from factscope.load import LoadedModel


# ---- the fast tracer -------------------------------------------------------------------------


def _first_restored_layer(kind: Kind, layer: int, window: int, n_layers: int) -> int:
    """The first block whose input differs from the corrupted run when cell `layer` is
    restored (n_layers: only the final residual changes)."""
    if kind == "hidden":
        return layer + 1
    return window_layers(layer, window, n_layers).start


@torch.no_grad()
def _restore_and_rerun(
    model: Transformer,
    kind: Kind,
    t: int,
    layers: Sequence[int],
    window: int,
    clean: CleanRun,
    corrupt: CorruptedRun,
    answer_id: int,
    unembed_rows: int,
) -> Tensor:
    """p(answer) for cells (t, l) for l in `layers`, every noise sample: (len(layers), S).

    Only tokens t..T-1 are recomputed, from each cell's first restored layer upward, as one
    batch that grows as the layers of later cells begin: row (cell c, sample s) joins at
    block `first(c)` with the corrupted run's residual there (for "hidden" with the clean
    block output at token t), and attends to sample s's cached keys/values for tokens < t,
    which no restoration at t can change.
    """
    L = model.cfg.n_layers
    S, T, _ = corrupt.resid_in[0].shape
    positions = torch.arange(t, T, device=model.device)
    first = [_first_restored_layer(kind, l, window, L) for l in layers]
    windows = [window_layers(l, window, L) for l in layers]

    x: Tensor | None = None  # (R, T - t, D), rows of the cells begun so far
    row_cell: list[int] = []  # index into `layers` of each row
    row_sample: list[int] = []
    for j in range(min(first), L + 1):
        joining = [c for c in range(len(layers)) if first[c] == j]
        if joining:
            start = corrupt.resid_in[j][:, t:].repeat(len(joining), 1, 1)  # (n*S, T-t, D)
            if kind == "hidden":  # restore the clean output of block j - 1 at token t
                start[:, 0] = clean.resid_post[j - 1][0, t]
            x = start if x is None else torch.cat([x, start])
            row_cell += [c for c in joining for _ in range(S)]
            row_sample += list(range(S)) * len(joining)
        if j == L:
            break
        assert x is not None
        samples = torch.tensor(row_sample, device=model.device)
        kv = KVCache.empty(L)
        if t > 0:  # tokens before t: exactly the corrupted run's keys and values
            kv.keys[j] = corrupt.keys[j][samples, :, :t]
            kv.values[j] = corrupt.values[j][samples, :, :t]
        fns = {}
        if kind != "hidden":
            inside = [j in windows[c] for c in row_cell]
            if any(inside):
                rows = torch.tensor(inside, device=model.device)
                fns[f"blocks.{j}.{kind}.out"] = _restore_rows(rows, clean.states(kind)[j][0, t])
        with hooks(model, fns):
            x = model.blocks[j](x, positions, kv)

    assert x is not None
    last = x[:, -1]  # (R, D)
    p = torch.cat(
        [
            answer_probability(model, last[i : i + unembed_rows], answer_id)
            for i in range(0, last.shape[0], unembed_rows)
        ]
    )
    out = torch.empty(len(layers), S, dtype=p.dtype, device=p.device)
    out[torch.tensor(row_cell), torch.tensor(row_sample)] = p
    return out


def _restore_rows(rows: Tensor, clean_state: Tensor) -> Callable[[Tensor, str], Tensor]:
    """A hook setting the first position (token t) of the selected rows to the clean state."""

    def restore(x: Tensor, site: str) -> Tensor:
        x = x.clone()
        x[rows, 0] = clean_state
        return x

    return restore


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


@torch.no_grad()
def trace_fact(
    model: Transformer,
    tokens: Tensor,
    subject_span: tuple[int, int],
    answer_id: int,
    *,
    batch_size: int = 256,
    progress: bool = False,
    **options: Unpack[TraceOptions],
) -> dict[Kind, TraceResult]:
    """Causal trace of p(answer_id) after `tokens` (1, T), subject tokens `subject_span`,
    with `options` as `Corruption.of` takes them (kinds, samples, window, noise_std, seed).

    Returns one TraceResult per kind with scores (T, n_layers). Noise: `subject_noise` with
    `seed`, std `noise_std` (default `estimate_noise_std(model)`; `trace_prompt` measures it
    on subject names with the tokenizer). At most `batch_size` rows (cells x samples) run
    through the blocks at once, which bounds memory. Tokens before the subject are the same
    in the clean and corrupted runs, so their cells score the corrupted p without running.
    """
    setup = Corruption.of(model, tokens, subject_span, answer_id, **options)
    T, L = setup.tokens.shape[1], model.cfg.n_layers
    samples, window = setup.samples, setup.window
    clean = clean_run(model, setup.tokens, answer_id)
    noise = setup.noise(model.cfg.d_model)
    corrupt = corrupted_run(model, setup.tokens, setup.subject_span, answer_id, noise)
    corrupted_p = float(corrupt.p.mean())
    cells_per_batch = max(1, batch_size // samples)
    tokens_traced = range(setup.subject_span[0], T)
    n_steps = len(setup.kinds) * len(tokens_traced) * math.ceil(L / cells_per_batch)
    bar = progress_bar(n_steps, progress, "causal trace", "batch")
    results: dict[Kind, TraceResult] = {}
    try:
        for kind in setup.kinds:
            scores = torch.full((T, L), corrupted_p, dtype=torch.float64)
            for t in tokens_traced:
                for layers in _chunks(range(L), cells_per_batch):
                    p = _restore_and_rerun(
                        model, kind, t, layers, window, clean, corrupt, answer_id, 64
                    )
                    scores[t, layers] = p.mean(dim=1).double().cpu()
                    bar.update(1)
            results[kind] = setup.result(kind, "exact", clean.p, corrupted_p, scores)
    finally:
        bar.close()
    return results


# ---- the reference: ROME's algorithm, one full forward per cell ------------------------------


@torch.no_grad()
def trace_fact_reference(
    model: Transformer,
    tokens: Tensor,
    subject_span: tuple[int, int],
    answer_id: int,
    **options: Unpack[TraceOptions],
) -> dict[Kind, TraceResult]:
    """The same trace as `trace_fact`, computed the slow, obvious way (ROME's
    `trace_with_patch` per cell): every cell runs all noisy prompts through the whole model,
    with the noise added at `embed` and the clean state written over the restored sites."""
    setup = Corruption.of(model, tokens, subject_span, answer_id, **options)
    T, L = setup.tokens.shape[1], model.cfg.n_layers
    samples, window = setup.samples, setup.window
    noise = setup.noise(model.cfg.d_model)
    noisy = setup.tokens.expand(samples, -1)
    clean = clean_run(model, setup.tokens, answer_id)
    states = {
        **{f"blocks.{j}.resid_post": clean.resid_post[j] for j in range(L)},
        **{f"blocks.{j}.attn.out": clean.attn_out[j] for j in range(L)},
        **{f"blocks.{j}.mlp.out": clean.mlp_out[j] for j in range(L)},
    }

    def run(restore: dict[str, list[int]]) -> float:
        fns: dict[str, Any] = {"embed": corrupt_embed_hook(noise, setup.subject_span)}
        for site, positions in restore.items():
            fns[site] = _restore_positions(positions, states[site])
        with hooks(model, fns):
            logits = model(noisy)  # (S, T, V), every position, as ROME does
        return float(torch.softmax(logits[:, -1].float(), dim=-1)[:, answer_id].mean())

    corrupted_p = run({})
    results: dict[Kind, TraceResult] = {}
    for kind in setup.kinds:
        scores = torch.empty(T, L, dtype=torch.float64)
        for t in range(T):
            for l in range(L):
                scores[t, l] = run({site: [t] for site in restored_sites(kind, l, window, L)})
        results[kind] = setup.result(kind, "exact", clean.p, corrupted_p, scores)
    return results


def _restore_positions(
    positions: list[int], clean_state: Tensor
) -> Callable[[Tensor, str], Tensor]:
    """A hook writing the clean state (1, T, D) over `positions` of every row."""

    def restore(x: Tensor, site: str) -> Tensor:
        x = x.clone()
        x[:, positions] = clean_state[:, positions]
        return x

    return restore


# ---- from text -------------------------------------------------------------------------------


def trace_prompt(
    lm: LoadedModel,
    prompt: str,
    subject: str,
    answer: str | None = None,
    *,
    method: Method = "exact",
    batch_size: int = 256,
    progress: bool = False,
    **options: Unpack[TraceOptions],
) -> dict[Kind, TraceResult]:
    """Causal trace of `prompt` with `subject` corrupted, scoring `answer`: `trace_spec` of
    `TraceSpec(prompt, subject, answer, **options)`."""
    spec = TraceSpec(prompt, subject, answer, **options)
    return trace_spec(lm, spec, method=method, batch_size=batch_size, progress=progress)


def trace_spec(
    lm: LoadedModel,
    spec: TraceSpec,
    *,
    method: Method = "exact",
    batch_size: int = 256,
    progress: bool = False,
) -> dict[Kind, TraceResult]:
    """Causal trace of `spec.prompt` with `spec.subject` corrupted, scoring `spec.answer`
    (default: the model's own top next token; a multi-token answer is scored by its first
    token and the result's `answer.note` says so). `noise_std` defaults to 3 x the std of the
    embeddings of `SUBJECT_NAMES`. `method="approx"` uses attribution patching
    (locate/attribution.py)."""
    model, tokenizer = lm.model, lm.tokenizer
    tokens = encode_prompt(model, tokenizer, spec.prompt)
    span = tokenizer.find_subject_span(spec.prompt, spec.subject)
    scored = (
        predicted_answer(model, tokenizer, tokens)
        if spec.answer is None
        else answer_token(tokenizer, spec.answer)
    )
    options = spec.options()
    if spec.noise_std is None:
        options["noise_std"] = estimate_noise_std(model, tokenizer)
    if method == "approx":
        results = approx_trace(model, tokens, span, scored.id, **options)
    elif method == "exact":
        results = trace_fact(
            model, tokens, span, scored.id, batch_size=batch_size, progress=progress, **options
        )
    else:
        raise FactscopeError(f"unknown trace method {method!r}; use exact or approx")
    labels = [tokenizer.token_str(i) for i in tokens[0].tolist()]
    return {
        kind: dataclasses.replace(
            r,
            model=lm.name,
            prompt=spec.prompt,
            subject=spec.subject,
            answer=scored,
            tokens=labels,
        )
        for kind, r in results.items()
    }


__all__ = ["trace_fact", "trace_fact_reference", "trace_prompt", "trace_spec"]
