"""Rewrite a fact: ROME, MEMIT and AlphaEdit, reversible, with CounterFact-style evaluation.

    from factscope.edit import EditRequest, edit
    request = EditRequest("Michael Jordan plays the sport of", "Michael Jordan", "baseball")
    handle = edit(lm, request)
    ...                    # the model in memory now says " baseball"
    handle.undo()          # the exact original weights again

Modules: corpus.py (the text the statistics are measured on), stats.py (C = E[k kᵀ]),
rome.py (one fact, one layer, rank one), memit.py (many facts over a range of layers, and
AlphaEdit's null-space projection), handle.py (undo and save), evaluate.py (ES, PS, NS, S,
GE, perplexity drift).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from factscope.edit.handle import EditHandle
from factscope.edit.request import EditRequest
from factscope.edit.rome import ROMEHyperParams
from factscope.errors import FactscopeError

if TYPE_CHECKING:
    from factscope.load import LoadedModel

METHODS = ("rome", "memit", "alphaedit")


def default_layer(
    lm: LoadedModel, request: EditRequest, method: str = "approx", samples: int = 10
) -> int:
    """The edit layer from the causal trace: the layer whose MLP (window of 10 layers, as in
    ROME's figure) restores most of p(answer) at the subject's last token. Scores the
    model's own answer to the prompt (the fact being overwritten). method "approx":
    attribution patching (one backward pass, seconds); "exact": ROME's trace (minutes on
    a CPU: 7 min for gemma-3-270m on our busy 2-core machine)."""
    from factscope.locate.trace import trace_prompt

    if method not in ("approx", "exact"):
        raise FactscopeError(f"trace method {method!r} is not known; use approx or exact")
    trace = trace_prompt(
        lm,
        request.prompt,
        request.subject,
        kinds=["mlp"],
        samples=samples,
        method=method,  # type: ignore[arg-type]
    )
    row = trace["mlp"].ie_last_subject_token
    return max(range(len(row)), key=row.__getitem__)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise FactscopeError(f"unknown edit method {method!r}; use one of {', '.join(METHODS)}")
    return method


def edit(
    lm: LoadedModel,
    requests: EditRequest | Sequence[EditRequest],
    method: str = "rome",
    layer: int | None = None,
    *,
    hparams: Any = None,
    stats: Any = None,
    progress: bool = False,
) -> EditHandle:
    """Apply `requests` to the model in memory with `method`; returns the handle to undo.

    ROME applies its requests one after another (each a rank-one update of `layer`);
    MEMIT and AlphaEdit apply them as one batch over the layers ending at `layer`.
    `layer` None: ROME's causal-trace default (see `default_layer`) on the first request.
    `stats`: a dict layer -> KeyStats to use instead of the cached corpus statistics."""
    check_method(method)
    batch = [requests] if isinstance(requests, EditRequest) else list(requests)
    if not batch:
        raise FactscopeError("no edit requests given")
    for r in batch:
        r.check()
    if layer is None:
        layer = hparams.layer if hparams is not None and hparams.layer is not None else None
    if layer is None:
        layer = default_layer(lm, batch[0])
    n_layers = lm.cfg.n_layers
    if not 0 <= layer < n_layers:
        raise FactscopeError(
            f"layer {layer} is out of range; this model has layers 0..{n_layers - 1}"
        )
    if method == "rome":
        return _edit_rome(lm, batch, layer, hparams or ROMEHyperParams(), stats, progress)
    from factscope.edit.memit import apply_memit, memit_hparams

    hp = hparams or memit_hparams(lm.name)
    return apply_memit(lm, batch, layer, hp, method=method, stats=stats, progress=progress)


def _edit_rome(
    lm: LoadedModel,
    batch: list[EditRequest],
    layer: int,
    hparams: ROMEHyperParams,
    stats: Any,
    progress: bool,
) -> EditHandle:
    from factscope.edit.rome import compute_rome
    from factscope.edit.stats import layer_stats

    layer_c = None
    if hparams.mom2_adjustment:
        layer_c = (stats or {}).get(layer) or layer_stats(
            lm.model, lm.tokenizer, [layer], hparams.corpus, hparams.stats_tokens,
            progress=progress,
        )[layer]  # fmt: skip
    handle = EditHandle.begin(lm.model, "rome", [layer])
    try:
        for request in batch:
            result = compute_rome(lm, request, layer, layer_c, hparams)
            handle.add_delta(layer, result.delta_weight)
            handle.results.append(result)
    except BaseException:
        handle.undo()
        raise
    return handle


__all__ = ["METHODS", "EditHandle", "EditRequest", "ROMEHyperParams", "default_layer", "edit"]
