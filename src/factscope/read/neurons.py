"""The neurons that store a fact: score every MLP neuron, look closely at the top ones.

`find_neurons` reads one prompt in three steps, each in its own module: score every neuron
at the last subject token and the final token (neuron_scores.py), look at the top ones up
close, with the AND test of the subject's names and the tokens each reads and writes
(neuron_info.py), and confirm the scores by ablating the top-k against k random neurons of
the same layers (ablation.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import run_with_cache
from factscope.locate.lens import direct_logit_attribution
from factscope.locate.prompts import answer_token, encode_prompt, predicted_answer
from factscope.progress import Bar, progress_bar
from factscope.read.ablation import (
    ABLATION_MODES,
    AblationCurve,
    AblationMode,
    ablated_answer_probs,
    ablation_curve,
    default_ks,
    neuron_set,
)
from factscope.read.names import Variant, build_variants, names_data, replace_subject
from factscope.read.neuron_info import NeuronInfo, and_test_of, read_tokens, written_tokens
from factscope.read.neuron_scores import (
    METHOD_NAMES,
    POSITIONS,
    SubjectMethod,
    final_contributions,
    mean_activations,
    mlp_at,
    mlp_sites,
    ranking,
    subject_attribution,
)
from factscope.read.reading import FactReading, fact_fields
from factscope.read.suffix import ForwardCount

if TYPE_CHECKING:
    from factscope.load import LoadedModel


@dataclass
class NeuronsResult(FactReading):
    """Every neuron scored at the last subject token and at the final token, the top ones up
    close, and ablation curves. `scores[position]` is (L, F), to 6 significant digits (the
    top neurons' `score` has full precision); `methods` names each score."""

    positions: dict[str, int]  # "subject" / "final" -> token index
    gated: bool
    clean_p: float
    clean_logit: float
    methods: dict[str, str]
    scores: dict[str, list[list[float]]]  # position -> (L, F)
    mlp_dla: list[float]  # (L,) MLP terms of direct_logit_attribution
    layer_sums: list[float]  # (L,) sums of each layer's final-token scores
    sum_rel_error: float  # max over layers |sum - dla| / max |dla|
    top: dict[str, list[NeuronInfo]]
    variants: list[dict[str, Any]]  # kind, name, prompt, p_answer
    reference_names: list[str]  # names whose runs give the mean activations
    ablation: list[AblationCurve]
    forward_passes: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        from factscope.report.reading_html import neurons_fragment

        return neurons_fragment(self.to_dict())


def reference_names(subject: str, n: int = 24) -> list[str]:
    """Other people's names, "<first> <last>" from the shipped lists, none sharing a word
    with the subject: the population the mean activation is taken over."""
    data = names_data()
    words = set(subject.split())
    firsts = [f for f in data["first_names"] if f not in words]
    lasts = [x for x in data["last_names"] if x not in words]
    names = [f"{f} {x}" for f, x in zip(firsts, reversed(lasts), strict=False)]
    return names[:n]


def find_neurons(
    loaded: LoadedModel,
    prompt: str,
    subject: str,
    answer: str | None = None,
    *,
    top: int = 10,
    method: SubjectMethod = "grad_x_act",
    ig_steps: int = 20,
    variants: list[tuple[str, str]] | None = None,
    ks: Sequence[int] | None = None,
    max_k: int | None = None,
    draws: int = 5,
    modes: Sequence[AblationMode] = ABLATION_MODES,
    n_tokens: int = 8,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
) -> NeuronsResult:
    """Score every MLP neuron for the fact in `prompt` and read the `top` ones up close.

    `answer` defaults to the model's prediction; `variants` to names built from the shipped
    list (no AND test when the subject is one word and none are given). The ablation curve
    runs k in `ks`, or `default_ks(max_k)` (max_k: 200, or every neuron if fewer).
    """
    model, tokenizer = loaded.model, loaded.tokenizer
    cfg = model.cfg
    n_neurons = cfg.n_layers * cfg.d_mlp
    if not 1 <= top <= n_neurons:
        raise FactscopeError(f"--top {top} is out of range; choose 1..{n_neurons} neurons")
    tokens = encode_prompt(model, tokenizer, prompt)
    span = tokenizer.find_subject_span(prompt, subject)
    if max_k is not None and not 1 <= max_k <= n_neurons:
        raise FactscopeError(f"--max-k {max_k} is out of range; choose 1..{n_neurons} neurons")
    ks = list(ks) if ks is not None else default_ks(min(200, n_neurons) if max_k is None else max_k)
    bad = [k for k in ks if not 1 <= k <= n_neurons]
    if bad:
        raise FactscopeError(
            f"k = {bad[0]} is out of range; ablate between 1 and {n_neurons} neurons"
        )
    target = (
        answer_token(tokenizer, answer)
        if answer is not None
        else predicted_answer(model, tokenizer, tokens)
    )
    T = tokens.shape[1]
    where = {"subject": span[1] - 1, "final": T - 1}
    count = ForwardCount()
    notes = [target.note] if target.note else []

    with torch.no_grad():
        clean_logits = model(tokens, logits_at="last")[0, -1].float()
    count.add(1, T)
    clean_p = float(clean_logits.log_softmax(-1)[target.id].exp())

    names, means = _reference_means(loaded, prompt, subject, count)

    final_scores = final_contributions(model, tokens, target.id)
    count.add(1, T)
    subject_scores = subject_attribution(
        model, tokens, target.id, where["subject"], means["subject"], method, ig_steps, count
    )
    dla = direct_logit_attribution(model, tokens, target.id)
    count.add(1, T)
    sums = final_scores.sum(1)
    dla_mlp = torch.tensor(dla.mlp, dtype=torch.float64)
    rel = float((sums - dla_mlp.to(sums.device)).abs().max() / dla_mlp.abs().max().clamp_min(1e-30))
    scores = {"subject": subject_scores.cpu(), "final": final_scores.cpu()}
    methods = {"subject": METHOD_NAMES[method], "final": METHOD_NAMES["final"]}

    variant_list, acts, variant_p = _variant_run(
        loaded, tokens, prompt, subject, variants, target.id, notes, count
    )

    # top neurons per position, each confirmed by ablating it alone
    max_needed = max([*ks, top])
    rankings = {pos: ranking(scores[pos], max_needed) for pos in POSITIONS}
    bar = _progress(progress, POSITIONS, ks, draws, len(modes), top, batch_size)
    top_info: dict[str, list[NeuronInfo]] = {}
    curves: list[AblationCurve] = []
    for pos in POSITIONS:
        chosen = rankings[pos][:top]
        top_info[pos] = _top_neurons(
            loaded, tokens, target.id, pos, where[pos], chosen, scores[pos], means[pos], acts,
            variant_list, n_tokens=n_tokens, batch_size=batch_size, count=count, progress=bar,
        )  # fmt: skip
        curves += ablation_curve(
            model,
            tokens,
            target.id,
            where[pos],
            rankings[pos],
            ks,
            {m: torch.zeros_like(means[pos]) if m == "zero" else means[pos] for m in modes},
            position_name=pos,
            draws=draws,
            seed=seed,
            batch_size=batch_size,
            count=count,
            progress=bar,
        )
    bar.close()
    return NeuronsResult(
        **fact_fields(loaded.name, prompt, subject, target, tokenizer, tokens, span),
        positions=where,
        gated=cfg.gated_mlp,
        clean_p=clean_p,
        clean_logit=float(clean_logits[target.id]),
        methods=methods,
        scores={pos: _rounded(s) for pos, s in scores.items()},
        mlp_dla=dla.mlp,
        layer_sums=sums.tolist(),
        sum_rel_error=rel,
        top=top_info,
        variants=[
            {**v.to_dict(), "p_answer": p} for v, p in zip(variant_list, variant_p[1:], strict=True)
        ],
        reference_names=names,
        ablation=curves,
        forward_passes=count.to_dict(),
        notes=notes,
    )


def _reference_means(
    loaded: LoadedModel, prompt: str, subject: str, count: ForwardCount
) -> tuple[list[str], dict[str, Tensor]]:
    """The population of other names (`reference_names`) and each neuron's mean activation
    over the prompt with each of them, at the last subject token and the final token:
    position -> (L, F)."""
    model, tokenizer = loaded.model, loaded.tokenizer
    names = [n for n in reference_names(subject) if n != subject]
    ref_prompts = []
    for name in names:
        text = replace_subject(prompt, subject, name)
        ref_tokens = encode_prompt(model, tokenizer, text)
        ref_span = tokenizer.find_subject_span(text, name)
        ref_prompts.append((ref_tokens, ref_span[1] - 1, ref_tokens.shape[1] - 1))
    means = {
        "subject": mean_activations(model, [(t, s) for t, s, _ in ref_prompts]),
        "final": mean_activations(model, [(t, f) for t, _, f in ref_prompts]),
    }
    count.calls += len({t.shape[1] for t, _, _ in ref_prompts})
    count.rows += len(ref_prompts)
    return names, means


def _variant_run(
    loaded: LoadedModel,
    tokens: Tensor,
    prompt: str,
    subject: str,
    variants: list[tuple[str, str]] | None,
    answer_id: int,
    notes: list[str],
    count: ForwardCount,
) -> tuple[list[Variant], dict[str, Tensor], list[float]]:
    """The AND test's variants of the subject's name, run once as a batch with the prompt
    first: the variants, every neuron's activations per kind (B, L, T, F), p(answer) per row.
    No variants (a one-word subject, none given) leaves a note instead."""
    model, tokenizer, cfg = loaded.model, loaded.tokenizer, loaded.model.cfg
    T = tokens.shape[1]
    variant_list: list[Variant] = []
    try:
        variant_list = build_variants(tokenizer, prompt, subject, variants)
    except FactscopeError as e:
        if variants is not None:
            raise
        notes.append(f"no AND test: {e}")
    acts: dict[str, Tensor] = {}
    kinds = ("gate", "up", "post") if cfg.gated_mlp else ("up", "post")
    batch = torch.cat([tokens] + [encode_prompt(model, tokenizer, v.prompt) for v in variant_list])
    with torch.no_grad():
        logits, cache = run_with_cache(model, batch, mlp_sites(model, kinds), logits_at="last")
    count.add(batch.shape[0], T)
    for kind in kinds:
        acts[kind] = torch.stack([cache[s] for s in mlp_sites(model, (kind,))], 1)  # (B, L, T, F)
    variant_p = logits[:, -1].float().log_softmax(-1)[:, answer_id].exp().tolist()
    return variant_list, acts, variant_p


def _top_neurons(
    loaded: LoadedModel,
    tokens: Tensor,
    answer_id: int,
    pos: str,
    t: int,
    chosen: list[tuple[int, int]],
    scores: Tensor,
    mean: Tensor,
    acts: dict[str, Tensor],
    variant_list: list[Variant],
    *,
    n_tokens: int,
    batch_size: int,
    count: ForwardCount,
    progress: Bar,
) -> list[NeuronInfo]:
    """The `chosen` neurons at token `t` up close, in rank order: each ablated alone (to its
    mean), its AND test, the tokens it writes and reads."""
    model, tokenizer, cfg = loaded.model, loaded.tokenizer, loaded.model.cfg
    single = ablated_answer_probs(
        model,
        tokens,
        answer_id,
        t,
        [neuron_set([n]) for n in chosen],
        mean,
        batch_size=batch_size,
        count=count,
        progress=progress,
    )
    writes = written_tokens(model, chosen, n_tokens, tokenizer)
    up_rows = torch.stack([mlp_at(model, l).up_proj.weight[i] for l, i in chosen])
    up_reads = read_tokens(model, up_rows, [l for l, _ in chosen], n_tokens, tokenizer)
    gate_reads: list[list[tuple[str, float]]] | None = None
    if cfg.gated_mlp:
        gate_rows = torch.stack([mlp_at(model, l).gate_proj.weight[i] for l, i in chosen])
        gate_reads = read_tokens(model, gate_rows, [l for l, _ in chosen], n_tokens, tokenizer)
    infos = []
    for rank, (layer, index) in enumerate(chosen):
        post = acts["post"][:, layer, t, index].tolist()  # (B,): prompt, then variants
        gate_acts = acts["gate"][:, layer, t, index].tolist() if cfg.gated_mlp else None
        up_acts = acts["up"][:, layer, t, index].tolist()
        and_test = and_test_of(post, variant_list, gate_acts, up_acts) if variant_list else None
        infos.append(
            NeuronInfo(
                layer=layer,
                index=index,
                position=pos,
                rank=rank,
                score=float(scores[layer, index]),
                gate=float(acts["gate"][0, layer, t, index]) if cfg.gated_mlp else None,
                up=float(acts["up"][0, layer, t, index]),
                act=post[0],
                mean_act=float(mean[layer, index]),
                ablated_p=float(single[rank]),
                and_test=and_test,
                promotes=writes[rank][0],
                suppresses=writes[rank][1],
                gate_tokens=None if gate_reads is None else gate_reads[rank],
                up_tokens=up_reads[rank],
            )
        )
    return infos


def _rounded(grid: Tensor, digits: int = 6) -> list[list[float]]:
    """A (L, F) score grid as lists of floats with `digits` significant digits: the JSON of
    a Gemma 3 270M run holds 2 x 36,864 of them, and 6 digits halve its size."""
    return [[float(f"{v:.{digits}g}") for v in row] for row in grid.tolist()]


def _progress(
    enabled: bool,
    positions: Sequence[str],
    ks: Sequence[int],
    draws: int,
    modes: int,
    top: int,
    batch_size: int,
) -> Bar:
    rows = len(ks) * (1 + draws) + 1
    total = len(positions) * (modes * math.ceil(rows / batch_size) + math.ceil(top / batch_size))
    return progress_bar(total, enabled, "neuron ablations", "batch")


__all__ = ["NeuronsResult", "find_neurons", "reference_names"]
