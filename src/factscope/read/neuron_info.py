"""One neuron up close: is it an AND of the subject's names, and what does it read and write?

3Blue1Brown's picture: at "Jordan", a row of the MLP's up-projection asks "is this Michael
Jordan?", the non-linearity makes that an AND of the two names, and the matching column of
the down-projection writes a "basketball" direction into the residual stream. The AND test
compares the neuron's activation on the full name with its activation on one name alone and
on other names; `written_tokens` and `read_tokens` read its down column and its input rows
through the (un)embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from factscope.model import Block, Transformer
from factscope.read.names import Variant
from factscope.read.neuron_scores import mlp_at
from factscope.tokenizer import Tokenizer, spell_tokens

# A neuron is an AND of the two names when its response to the full name, above its
# response to neither name, is at least 1 / AND_FRACTION times its response to either name
# alone (both >> either alone).
AND_FRACTION = 0.5


@dataclass
class AndTest:
    """A neuron's activation on the prompt (`both` names) and on the name variants.

    ratio_first = (first - neither) / (both - neither), likewise ratio_last: how much of the
    full name's response one name alone gives. AND: both ratios below AND_FRACTION.
    """

    both: float
    by_kind: dict[str, list[float]]  # kind -> activation per variant
    mean: dict[str, float]  # kind -> mean activation
    ratio_first: float | None
    ratio_last: float | None
    verdict: str
    # the neuron's two questions separately: "both" and mean per kind of the gate and up
    # pre-activations (gate is None in a plain MLP, where up is the only question)
    gate_mean: dict[str, float] | None = None
    up_mean: dict[str, float] | None = None


def and_verdict(
    both: float, first: float | None, last: float | None, neither: float | None
) -> tuple[str, float | None, float | None]:
    """(verdict, ratio_first, ratio_last) from a neuron's mean activations per variant kind."""
    if neither is None or (first is None and last is None):
        return "incomplete: needs 'neither' and a one-name variant", None, None
    gap = both - neither
    if abs(gap) <= AND_FRACTION * max(abs(both), abs(neither)) or gap == 0.0:
        return "not specific: other names drive it about as much", None, None
    r_first = None if first is None else (first - neither) / gap
    r_last = None if last is None else (last - neither) / gap
    strong_first = r_first is not None and r_first >= AND_FRACTION
    strong_last = r_last is not None and r_last >= AND_FRACTION
    if strong_first and strong_last:
        return "OR: either name alone drives it", r_first, r_last
    if strong_first:
        return "first name alone drives it", r_first, r_last
    if strong_last:
        return "last name alone drives it", r_first, r_last
    if r_first is None or r_last is None:
        return "incomplete: one-name variant missing", r_first, r_last
    direction = "raises" if gap > 0 else "lowers"
    return f"AND: both names >> either alone (the full name {direction} it)", r_first, r_last


@dataclass
class NeuronInfo:
    """One top neuron: its score, its activations, the AND test, what it reads and writes."""

    layer: int
    index: int
    position: str  # "subject" or "final"
    rank: int  # 0 = top
    score: float
    gate: float | None  # gate pre-activation on the prompt (None: plain MLP)
    up: float
    act: float  # the neuron's activation, input of the down-projection
    mean_act: float  # its mean over the reference names at this position
    ablated_p: float  # p(answer) with this neuron alone mean-ablated
    and_test: AndTest | None
    promotes: list[tuple[str, float]]  # tokens its down column raises through the unembedding
    suppresses: list[tuple[str, float]]
    gate_tokens: (
        list[tuple[str, float]] | None
    )  # tokens whose embeddings best align with its gate row
    up_tokens: list[tuple[str, float]]


@torch.no_grad()
def written_tokens(
    model: Transformer, neurons: Sequence[tuple[int, int]], k: int, tokenizer: Tokenizer | None
) -> list[tuple[list[tuple[str, float]], list[tuple[str, float]]]]:
    """(promoted, suppressed) tokens of each neuron's output direction (Geva et al. 2022):
    W_U (g_final * g_post * w_down), the logits one unit of the neuron adds (norm scales,
    positive numbers that do not change the order, left out)."""
    if not neurons:
        return []
    columns = []
    for layer, index in neurons:
        mlp = mlp_at(model, layer)
        w = mlp.down_proj.weight[:, index].float()  # (D,)
        if mlp.post_norm is not None:
            w = w * mlp.post_norm.weight.float()
        columns.append(w * model.norm.weight.float())
    logits = model.unembed.weight.float() @ torch.stack(columns, 1)  # (V, n)
    top = logits.topk(k, dim=0)
    bottom = (-logits).topk(k, dim=0)
    out = []
    for j in range(len(neurons)):
        promoted = list(
            zip(
                spell_tokens(tokenizer, top.indices[:, j].tolist()),
                top.values[:, j].tolist(),
                strict=True,
            )
        )
        suppressed = list(
            zip(
                spell_tokens(tokenizer, bottom.indices[:, j].tolist()),
                (-bottom.values[:, j]).tolist(),
                strict=True,
            )
        )
        out.append((promoted, suppressed))
    return out


def _norm_gain(norm: torch.nn.Module, dim: int) -> Tensor:
    """A norm's per-feature gain (float32), ones where there is no norm."""
    weight = getattr(norm, "weight", None)
    return torch.ones(dim) if not isinstance(weight, Tensor) else weight.float()


@torch.no_grad()
def read_tokens(
    model: Transformer, rows: Tensor, layers: Sequence[int], k: int, tokenizer: Tokenizer | None
) -> list[list[tuple[str, float]]]:
    """Tokens whose embeddings align best (cosine) with each input row (n, D) of an MLP:
    the row is applied to mlp_norm(x), so its direction in embedding space is g_mlp * row."""
    weight = model.embedding.weight.float()  # (V, D)
    blocks = [cast(Block, model.blocks[layer]) for layer in layers]
    # no pre-MLP norm (OLMo 2): the row reads the residual itself, gain 1
    gains = torch.stack([_norm_gain(b.mlp_norm, weight.shape[1]) for b in blocks])  # (n, D)
    directions = rows.float() * gains  # (n, D)
    norms = torch.linalg.vector_norm(weight, dim=1).clamp_min(1e-12)  # (V,)
    cos = (weight @ directions.T) / norms[:, None] / torch.linalg.vector_norm(directions, dim=1)
    top = cos.topk(k, dim=0)  # (k, n)
    return [
        list(
            zip(
                spell_tokens(tokenizer, top.indices[:, j].tolist()),
                top.values[:, j].tolist(),
                strict=True,
            )
        )
        for j in range(rows.shape[0])
    ]


def _kind_means(values: list[float], variants: Sequence[Variant]) -> dict[str, float]:
    """{"both": value on the prompt, kind: mean over that kind's variants}."""
    by_kind: dict[str, list[float]] = {}
    for v, a in zip(variants, values[1:], strict=True):
        by_kind.setdefault(v.kind, []).append(a)
    return {"both": values[0], **{k: sum(x) / len(x) for k, x in by_kind.items()}}


def and_test_of(
    post: list[float],
    variants: Sequence[Variant],
    gate: list[float] | None = None,
    up: list[float] | None = None,
) -> AndTest:
    """The AND test of one neuron from its activations on [prompt, *variants]."""
    by_kind: dict[str, list[float]] = {}
    for v, a in zip(variants, post[1:], strict=True):
        by_kind.setdefault(v.kind, []).append(a)
    mean = {k: sum(v) / len(v) for k, v in by_kind.items()}
    verdict, r_first, r_last = and_verdict(
        post[0], mean.get("first"), mean.get("last"), mean.get("neither")
    )
    return AndTest(
        post[0],
        by_kind,
        mean,
        r_first,
        r_last,
        verdict,
        gate_mean=None if gate is None else _kind_means(gate, variants),
        up_mean=None if up is None else _kind_means(up, variants),
    )


__all__ = [
    "AND_FRACTION",
    "AndTest",
    "NeuronInfo",
    "and_test_of",
    "and_verdict",
    "read_tokens",
    "written_tokens",
]
