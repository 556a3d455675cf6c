"""What a dictionary's latents say about one prompt: which fire, what they mean, what they do.

`inspect_prompt` runs the prompt with the dictionary's reconstruction spliced in and gives:

- the latents active at each token (the largest few);
- for the top latents at the last subject token and at the last token, a dashboard: the
  top-activating contexts in the corpus's activations, the histogram of its activations
  there, the tokens its decoder direction promotes and suppresses through the unembedding
  (direction x final-norm gain, then W_U: the direct effect, as a logit lens would read it);
- attribution of log p(answer) to each (token, latent): gradient x activation, checked
  against ablating that one latent at that one token (the true change);
- interventions: `intervene` ablates a latent or adds its decoder direction with a chosen
  scale (steering), and gives p(answer) and the top predictions before and after.

`feature_specificity` asks the AND-test question of the top features: over the known
athletes, how many other subjects activate them, beside the top neurons of read/neurons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.features.activations import DiskStore
from factscope.features.metrics import splice
from factscope.features.sae import SparseDictionary
from factscope.result import Result

if TYPE_CHECKING:
    from factscope.load import LoadedModel


@dataclass
class Dashboard:
    """One latent: where it fires in the corpus and what its direction writes."""

    latent: int
    position: str  # "subject" or "last"
    activation: float
    contexts: list[dict[str, Any]] = field(default_factory=list)  # {left, token, right, act}
    histogram: dict[str, list[float]] = field(default_factory=dict)  # {edges, counts}
    frequency: float = 0.0  # share of corpus tokens where it fires
    promotes: list[tuple[str, float]] = field(default_factory=list)
    suppresses: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class FeaturesResult(Result):
    prompt: str
    tokens: list[str]
    subject_position: int | None
    answer: str | None
    active: list[list[tuple[int, float]]]  # per token: (latent, activation), largest first
    p_clean: float | None
    p_spliced: float | None
    dashboards: list[Dashboard]
    attribution: list[dict[str, Any]]  # {position, latent, act, grad_x_act, ablation_delta}
    interventions: list[dict[str, Any]]
    top_predictions: list[tuple[str, float]]


def _answer_id(lm: LoadedModel, answer: str) -> int:
    ids = lm.tokenizer.encode(answer, add_bos=False)
    if not ids:
        raise FactscopeError("--answer is empty; give the token the prompt should predict")
    return ids[0]


def _last_logits(
    lm: LoadedModel,
    tokens: Tensor,
    sae: SparseDictionary | None,
    edit: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Last-position logits (V,), clean (sae None) or with the dictionary spliced in."""
    with torch.no_grad():
        if sae is None:
            return lm.model(tokens, logits_at="last")[0, -1].float()
        with splice(lm.model, sae, edit=edit):
            return lm.model(tokens, logits_at="last")[0, -1].float()


def _top(lm: LoadedModel, logits: Tensor, n: int = 5) -> list[tuple[str, float]]:
    probs = logits.softmax(-1)
    values, ids = probs.topk(n)
    return [
        (lm.tokenizer.decode([int(i)]), round(float(v), 5))
        for v, i in zip(values, ids, strict=True)
    ]


def direction_tokens(
    lm: LoadedModel, sae: SparseDictionary, latent: int, n: int = 8
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The tokens latent's decoder direction promotes and suppresses most (direct effect
    through the final norm's gain and the unembedding)."""
    model = lm.model
    with torch.no_grad():
        d = sae.W_dec[latent] * model.norm.weight.float()
        logits = model.unembed.weight.float() @ d  # (V,)
    up, down = logits.topk(n), (-logits).topk(n)
    spell = lm.tokenizer.decode
    return (
        [(spell([int(i)]), round(float(v), 4)) for v, i in zip(up.values, up.indices, strict=True)],
        [
            (spell([int(i)]), round(-float(v), 4))
            for v, i in zip(down.values, down.indices, strict=True)
        ],
    )


def corpus_activations(
    sae: SparseDictionary, store: DiskStore, latents: Sequence[int], max_tokens: int
) -> tuple[Tensor, Tensor]:
    """Activations (N, len(latents)) of the chosen latents over the first `max_tokens`
    tokens of the store, and the store's token ids (n_seq, T)."""
    site = "mlp-in" if sae.cfg.transcoder else sae.cfg.site
    rows, tokens, have = [], [], 0
    idx = torch.tensor(list(latents), dtype=torch.int64)
    with torch.no_grad():
        for i in range(store.n_shards):
            shard = store.shard(i, [site, "tokens"])
            rows.append(sae.encode(shard[site].float())[:, idx])
            tokens.append(shard["tokens"])
            have += shard[site].shape[0]
            if have >= max_tokens:
                break
    return torch.cat(rows), torch.cat(tokens)


def _contexts(
    lm: LoadedModel, acts: Tensor, tokens: Tensor, n: int, window: int = 12
) -> list[dict[str, Any]]:
    body = tokens.shape[1] - 1
    best = acts.topk(min(n, acts.shape[0]))
    out = []
    for value, row in zip(best.values, best.indices, strict=True):
        if value <= 0:
            break
        seq, pos = divmod(int(row), body)
        pos += 1  # row r is position r % body + 1 (BOS not recorded)
        ids = tokens[seq].tolist()
        out.append(
            {
                "left": lm.tokenizer.decode(ids[max(1, pos - window) : pos]),
                "token": lm.tokenizer.decode([ids[pos]]),
                "right": lm.tokenizer.decode(ids[pos + 1 : pos + 4]),
                "act": round(float(value), 4),
            }
        )
    return out


def check_fits(lm: LoadedModel, sae: SparseDictionary, name: str = "the SAE") -> None:
    """Refuse a dictionary that cannot read this model (another width, a layer it lacks)."""
    if sae.cfg.d_in != lm.cfg.d_model or sae.cfg.layer >= lm.cfg.n_layers:
        raise FactscopeError(
            f"{name} reads d_in={sae.cfg.d_in} at layer {sae.cfg.layer}; {lm.name} has "
            f"d_model={lm.cfg.d_model} and {lm.cfg.n_layers} layers"
        )


def inspect_prompt(
    lm: LoadedModel,
    sae: SparseDictionary,
    prompt: str,
    subject: str | None = None,
    answer: str | None = None,
    store: DiskStore | None = None,
    top: int = 5,
    per_token: int = 5,
    context_tokens: int = 65_536,
    n_contexts: int = 8,
    steer_scale: float = 10.0,
) -> FeaturesResult:
    """See the module docstring; `store` (the corpus activations) enables the contexts."""
    check_fits(lm, sae)
    tokens = lm.encode(prompt)
    spelled = [lm.tokenizer.decode([int(t)]) for t in tokens[0]]
    subject_pos = lm.tokenizer.find_subject_span(prompt, subject)[1] - 1 if subject else None
    with torch.no_grad(), splice(lm.model, sae) as seen:
        logits = lm.model(tokens, logits_at="last")[0, -1].float()
    latents = seen["latents"][0]  # (T, d_sae)
    active = []
    for row in latents:
        values, ids = row.topk(min(per_token, row.shape[0]))
        active.append(
            [(int(i), round(float(v), 4)) for v, i in zip(values, ids, strict=True) if v > 0]
        )

    answer_id = _answer_id(lm, answer) if answer else int(logits.argmax())
    answer_text = answer if answer else lm.tokenizer.decode([answer_id])
    clean = _last_logits(lm, tokens, None)
    p_clean = float(clean.softmax(-1)[answer_id])
    p_spliced = float(logits.softmax(-1)[answer_id])

    # top latents at the subject's last token and at the last token
    chosen: list[tuple[str, int, float]] = []
    for name, pos in (("subject", subject_pos), ("last", tokens.shape[1] - 1)):
        if pos is None:
            continue
        for latent, act in active[pos][:top]:
            chosen.append((name, latent, act))
    dashboards = []
    corpus_acts = corpus_tok = None
    if store is not None and chosen:
        corpus_acts, corpus_tok = corpus_activations(
            sae, store, [c[1] for c in chosen], context_tokens
        )
    for j, (name, latent, act) in enumerate(chosen):
        promotes, suppresses = direction_tokens(lm, sae, latent)
        board = Dashboard(latent, name, act, promotes=promotes, suppresses=suppresses)
        if corpus_acts is not None and corpus_tok is not None:
            column = corpus_acts[:, j]
            board.contexts = _contexts(lm, column, corpus_tok, n_contexts)
            nonzero = column[column > 0].numpy()
            board.frequency = float((column > 0).float().mean())
            if nonzero.size:
                counts, edges = np.histogram(nonzero, bins=20)
                board.histogram = {
                    "edges": [round(float(e), 4) for e in edges],
                    "counts": counts.tolist(),
                }
        dashboards.append(board)

    attribution = attribute(lm, sae, tokens, answer_id, top=2 * top)
    interventions = []
    for name, latent, _ in chosen[: 2 * top]:
        pos = subject_pos if name == "subject" else tokens.shape[1] - 1
        for mode, scale in (("ablate", 0.0), ("steer", steer_scale)):
            interventions.append(
                intervene(lm, sae, tokens, latent, pos, answer_id, mode, scale) | {"from": name}
            )
    return FeaturesResult(
        prompt=prompt,
        tokens=spelled,
        subject_position=subject_pos,
        answer=answer_text,
        active=active,
        p_clean=p_clean,
        p_spliced=p_spliced,
        dashboards=dashboards,
        attribution=attribution,
        interventions=interventions,
        top_predictions=_top(lm, logits),
    )


def attribute(
    lm: LoadedModel, sae: SparseDictionary, tokens: Tensor, answer_id: int, top: int = 10
) -> list[dict[str, Any]]:
    """log p(answer) attributed to each (token, latent) by gradient x activation, the top
    `top` by size, each checked by zeroing that latent at that token (spliced runs)."""
    held: dict[str, Tensor] = {}

    def leaf(latents: Tensor) -> Tensor:
        latents = latents.detach().requires_grad_(True)
        held["latents"] = latents
        return latents

    with torch.enable_grad(), splice(lm.model, sae, edit=leaf):
        logits = lm.model(tokens, logits_at="last")[0, -1].float()
        logp = logits.log_softmax(-1)[answer_id]
        logp.backward()
    latents = held["latents"]
    assert latents.grad is not None
    gxa = (latents.grad * latents).detach()[0]  # (T, d_sae)
    gxa[0] = 0.0  # BOS is kept clean by the splice
    flat = gxa.abs().flatten().topk(top)
    base = float(logp.detach())
    rows = []
    for idx in flat.indices.tolist():
        pos, latent = divmod(idx, gxa.shape[1])
        if gxa[pos, latent] == 0:
            continue

        def zero(x: Tensor, pos: int = pos, latent: int = latent) -> Tensor:
            x = x.clone()
            x[:, pos, latent] = 0.0
            return x

        after = float(_last_logits(lm, tokens, sae, zero).log_softmax(-1)[answer_id])
        rows.append(
            {
                "position": pos,
                "latent": latent,
                "act": round(float(latents[0, pos, latent].detach()), 4),
                "grad_x_act": round(float(gxa[pos, latent]), 5),
                "ablation_delta": round(base - after, 5),  # what the latent added to log p
            }
        )
    return rows


def intervene(
    lm: LoadedModel,
    sae: SparseDictionary,
    tokens: Tensor,
    latent: int,
    position: int | None,
    answer_id: int,
    mode: str = "ablate",
    scale: float = 10.0,
) -> dict[str, Any]:
    """Ablate a latent (set it to 0) or steer with it (add `scale` to it) at `position`
    (None: every token but BOS); p(answer) and the top predictions before and after."""
    if not 0 <= latent < sae.cfg.d_sae:
        raise FactscopeError(
            f"latent {latent} is out of range; the SAE has {sae.cfg.d_sae} latents"
        )
    where = slice(1, None) if position is None else slice(position, position + 1)

    def edit(x: Tensor) -> Tensor:
        x = x.clone()
        x[:, where, latent] = 0.0 if mode == "ablate" else x[:, where, latent] + scale
        return x

    before = _last_logits(lm, tokens, sae)
    after = _last_logits(lm, tokens, sae, edit)
    return {
        "latent": latent,
        "position": position,
        "mode": mode,
        "scale": scale if mode == "steer" else 0.0,
        "p_before": round(float(before.softmax(-1)[answer_id]), 6),
        "p_after": round(float(after.softmax(-1)[answer_id]), 6),
        "top_before": _top(lm, before),
        "top_after": _top(lm, after),
    }


def feature_specificity(
    lm: LoadedModel,
    sae: SparseDictionary,
    result: FeaturesResult,
    neurons: Sequence[tuple[int, int]] = (),
    dataset: str = "athlete_sport",
    known_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Over the dataset's subjects (the known ones if `known_ids`), at each subject's last
    token: does the top subject latent fire, and does each top neuron (layer, index) reach
    half of its activation on the prompt's subject (same sign)? Also, at the last token,
    the top last-token latent by answer group. Counts per answer."""
    from factscope.hooks import run_with_cache
    from factscope.study.datasets import load_dataset

    data = load_dataset(dataset)
    records = [r for r in data.records if known_ids is None or r.id in set(known_ids)]
    subj = [b for b in result.dashboards if b.position == "subject"]
    last = [b for b in result.dashboards if b.position == "last"]
    if not subj or result.subject_position is None:
        raise FactscopeError("no latent fires at the subject's last token; nothing to compare")
    feature, last_feature = subj[0].latent, (last[0].latent if last else None)
    sites = [f"blocks.{layer}.mlp.post" for layer, _ in neurons]
    tokens = lm.encode(result.prompt)
    _, cache = run_with_cache(lm.model, tokens, sites)
    ref = {
        (l, i): float(cache[f"blocks.{l}.mlp.post"][0, result.subject_position, i])
        for l, i in neurons
    }
    rows = []
    for rec in records:
        toks = lm.encode(rec.prompt)
        pos = lm.tokenizer.find_subject_span(rec.prompt, rec.subject)[1] - 1
        with torch.no_grad(), splice(lm.model, sae) as seen:
            lm.model(toks, logits_at="last")
        lat = seen["latents"][0]
        _, cache = run_with_cache(lm.model, toks, sites)  # the neurons of the clean run
        row: dict[str, Any] = {
            "subject": rec.subject,
            "answer": rec.answer,
            "feature": round(float(lat[pos, feature]), 4),
        }
        if last_feature is not None:
            row["last_feature"] = round(float(lat[-1, last_feature]), 4)
        for (layer, index), on_subject in ref.items():
            a = float(cache[f"blocks.{layer}.mlp.post"][0, pos, index])
            row[f"neuron L{layer}.{index}"] = round(a, 4)
            row[f"neuron L{layer}.{index} active"] = bool(on_subject != 0 and a / on_subject >= 0.5)
        rows.append(row)
    summary: dict[str, Any] = {
        "subject_feature": feature,
        "last_feature": last_feature,
        "neurons": [list(n) for n in neurons],
        "n_subjects": len(rows),
    }
    summary["subject_feature_fires"] = sum(row["feature"] > 0 for row in rows)
    by_answer: dict[str, dict[str, int]] = {}
    for row in rows:
        g = by_answer.setdefault(row["answer"], {"n": 0, "feature": 0, "last_feature": 0})
        g["n"] += 1
        g["feature"] += int(row["feature"] > 0)
        g["last_feature"] += int(row.get("last_feature", 0) > 0)
        for layer, index in neurons:
            key = f"neuron L{layer}.{index}"
            g[key] = g.get(key, 0) + int(row[f"{key} active"])
    summary["by_answer"] = by_answer
    for layer, index in neurons:
        key = f"neuron L{layer}.{index}"
        summary[f"{key} active"] = sum(row[f"{key} active"] for row in rows)
    summary["rows"] = rows
    return summary
