"""Directions in the residual stream: where "basketball" appears, and what a sport is.

Two readings of the idea that facts live as directions in a d_model-dimensional space:

- **the answer's direction** (`answer_projection`): W_U[answer] is the direction the
  unembedding reads the answer from. For every residual stream (entering each block, and
  the final one) and every token we give the projection on its unit vector, the cosine,
  and the logit-lens logit (the same residual through the final norm): when and where
  does " basketball" appear?
- **difference-of-means directions** (`mean_directions`): for a relation ("X plays the
  sport of"), take the final-token residual of every prompt whose answer the model gets
  right, and for each answer the mean over its prompts minus the mean over the others'.
  We report the cosines between these directions, their cosine with the answer's readout
  direction g * W_U[answer] (g: the final norm's weight; also from final-normed residuals),
  and how much of the answer's logit above the all-prompts mean the residual's component
  along its class direction carries (final norm scale frozen, as in direct logit
  attribution). In-sample that share is close to 1 almost by construction (a prompt's
  offset from the mean is mostly its class mean's, which lies along the direction), so
  we also give it held out: each prompt left out of its own direction and mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import run_with_cache
from factscope.locate.lens import lens_residuals, lens_sites
from factscope.locate.prompts import answer_token, encode_prompt, predicted_answer
from factscope.model import Transformer
from factscope.norms import frozen_rms_scale
from factscope.read.names import relation_prompts
from factscope.result import Result
from factscope.tokenizer import Tokenizer, spell_tokens

if TYPE_CHECKING:
    from factscope.load import LoadedModel

DEFAULT_TEMPLATE = "{} plays the sport of"


@dataclass
class ProjectionResult(Result):
    """The residual streams of one prompt read along W_U[answer]. Rows (`layers`): the
    stream entering each block, then the final one; columns: tokens."""

    model: str
    prompt: str
    tokens: list[str]
    answer: dict[str, Any]
    layers: list[str]
    projection: list[list[float]]  # (R, T): resid . W_U[a] / |W_U[a]|
    cosine: list[list[float]]  # (R, T)
    lens_logit: list[list[float]]  # (R, T): final_norm(resid) . W_U[a]
    answer_rank: list[int]  # (R,) lens rank of the answer at the final token, 0 = top
    first_top_layer: int | None  # first row from which the answer stays the lens's top-1


@torch.no_grad()
def answer_projection(
    model: Transformer,
    tokens: Tensor,
    answer_id: int,
    *,
    tokenizer: Tokenizer | None = None,
    model_name: str = "",
    prompt: str = "",
) -> ProjectionResult:
    """Project every residual stream of `tokens` (1, T) on the answer's unembedding row."""
    resid = lens_residuals(model, tokens).float()  # (R, T, D)
    u = model.unembed.weight[answer_id].float()  # (D,)
    projection = resid @ (u / u.norm())  # (R, T)
    cosine = projection / torch.linalg.vector_norm(resid, dim=-1).clamp_min(1e-12)
    lens_logit = model.norm(resid) @ u  # (R, T)
    last = model.unembed_residual(resid[:, -1:])[:, 0].float()  # (R, V)
    rank = (last > last[:, answer_id : answer_id + 1]).sum(-1).tolist()  # (R,)
    first = None
    for row, r in enumerate(rank):
        if r == 0 and first is None:
            first = row
        elif r != 0:
            first = None
    spelled = spell_tokens(tokenizer, [answer_id])[0]
    return ProjectionResult(
        model=model_name,
        prompt=prompt,
        tokens=spell_tokens(tokenizer, tokens[0].tolist()),
        answer={"text": spelled, "id": answer_id, "token": spelled, "note": None},
        layers=[s.removeprefix("blocks.") for s in lens_sites(model)],
        projection=projection.tolist(),
        cosine=cosine.tolist(),
        lens_logit=lens_logit.tolist(),
        answer_rank=rank,
        first_top_layer=first,
    )


@dataclass
class MeanClass:
    """One answer of the relation and its difference-of-means direction."""

    answer: str
    id: int
    n_prompts: int
    n_known: int
    cos_with_unembedding: float  # cos(direction, g * W_U[answer])
    cos_normed_with_unembedding: float  # the same from final-normed residuals, with W_U[answer]
    share_explained: float  # sum over known prompts of the direction's logit / the whole's
    share_held_out: float  # the same with each prompt left out of its own direction and mean
    direction_norm: float


@dataclass
class MeanDirections(Result):
    """Difference-of-means directions of a relation's answers at one residual site."""

    template: str
    site: str
    n_prompts: int
    n_known: int
    classes: list[MeanClass]
    cosines: list[list[float]]  # (C, C) between directions
    prompts: list[dict[str, Any]]  # prompt, subject, answer, known, share
    notes: list[str] = field(default_factory=list)


def residual_site(model: Transformer, layer: int | None) -> str:
    """The residual site of `layer`: the stream entering block `layer`, or the final stream
    for None or n_layers."""
    L = model.cfg.n_layers
    if layer is None or layer == L:
        return f"blocks.{L - 1}.resid_post"
    if not 0 <= layer < L:
        raise FactscopeError(f"layer {layer} does not exist; choose 0..{L} ({L}: the final stream)")
    return f"blocks.{layer}.resid_pre"


@torch.no_grad()
def mean_directions(
    model: Transformer,
    tokenizer: Tokenizer,
    prompts: Sequence[tuple[str, str, str]],
    *,
    layer: int | None = None,
    template: str = "",
) -> MeanDirections:
    """Difference-of-means directions from (prompt, subject, answer) triples.

    A prompt is *known* when the model ranks its answer first among the relation's answers.
    Only known prompts enter the means; each answer needs at least one.
    """
    site = residual_site(model, layer)
    answers = list(dict.fromkeys(a for _, _, a in prompts))
    if len(answers) < 2:
        raise FactscopeError("difference of means needs prompts for at least two answers")
    ids = [answer_token(tokenizer, a).id for a in answers]
    resid = []
    known = []
    for prompt, _, answer in prompts:
        tokens = encode_prompt(model, tokenizer, prompt)
        logits, cache = run_with_cache(model, tokens, [site], logits_at="last")
        resid.append(cache[site][0, -1].float())
        known.append(int(logits[0, -1, ids].argmax()) == answers.index(answer))
    x = torch.stack(resid)  # (N, D)
    label = torch.tensor([answers.index(a) for _, _, a in prompts])  # (N,)
    ok = torch.tensor(known)
    mu = x[ok].mean(0) if ok.any() else x.mean(0)  # (D,)
    g = model.norm.weight.float()
    normed = model.norm(x)  # (N, D): what the unembedding reads, g included
    directions, classes = [], []
    shares, held_out = [float("nan")] * len(prompts), [float("nan")] * len(prompts)
    notes = []
    for c, (answer, answer_id) in enumerate(zip(answers, ids, strict=True)):
        inside, outside = ok & (label == c), ok & (label != c)
        if not inside.any() or not outside.any():
            notes.append(
                f"answer {answer!r}: no known prompt (or none outside it); direction left out"
            )
            directions.append(torch.full_like(mu, float("nan")))
            classes.append(
                MeanClass(
                    answer,
                    answer_id,
                    int((label == c).sum()),
                    int(inside.sum()),
                    *[float("nan")] * 5,
                )
            )
            continue
        d = x[inside].mean(0) - x[outside].mean(0)  # (D,)
        unit = d / d.norm()
        readout_dir = g * model.unembed.weight[answer_id].float()  # (D,)
        num = den = num_out = den_out = 0.0
        for n in inside.nonzero()[:, 0].tolist():
            scale = frozen_rms_scale(model.norm, x[n])  # (1,)
            r = scale * readout_dir  # (D,): logit = x . r with the scale frozen
            delta = x[n] - mu
            part, whole = float((delta @ unit) * (unit @ r)), float(delta @ r)
            shares[n] = part / whole if whole != 0 else float("nan")
            num, den = num + part, den + whole
            # held out: the direction and the mean computed without prompt n
            rest = inside.clone()
            rest[n] = False
            if rest.any():
                others = ok.clone()
                others[n] = False
                d_n = x[rest].mean(0) - x[outside].mean(0)
                u_n = d_n / d_n.norm()
                delta_n = x[n] - x[others].mean(0)
                part, whole = float((delta_n @ u_n) * (u_n @ r)), float(delta_n @ r)
                held_out[n] = part / whole if whole != 0 else float("nan")
                num_out, den_out = num_out + part, den_out + whole
        d_normed = normed[inside].mean(0) - normed[outside].mean(0)  # (D,)
        w_u = model.unembed.weight[answer_id].float()
        directions.append(unit)
        classes.append(
            MeanClass(
                answer=answer,
                id=answer_id,
                n_prompts=int((label == c).sum()),
                n_known=int(inside.sum()),
                cos_with_unembedding=float(unit @ readout_dir / readout_dir.norm()),
                cos_normed_with_unembedding=float(d_normed @ w_u / (d_normed.norm() * w_u.norm())),
                share_explained=num / den if den != 0 else float("nan"),
                share_held_out=num_out / den_out if den_out != 0 else float("nan"),
                direction_norm=float(d.norm()),
            )
        )
    unit_dirs = torch.stack(directions)  # (C, D)
    cosines = unit_dirs @ unit_dirs.T  # (C, C)
    return MeanDirections(
        template=template,
        site=site,
        n_prompts=len(prompts),
        n_known=int(ok.sum()),
        classes=classes,
        cosines=cosines.tolist(),
        prompts=[
            {"prompt": p, "subject": s, "answer": a, "known": k, "share": sh, "share_held_out": h}
            for (p, s, a), k, sh, h in zip(prompts, known, shares, held_out, strict=True)
        ],
        notes=notes,
    )


@dataclass
class DirectionsResult(Result):
    """`factscope directions`: the answer's projection on one prompt, and a relation's
    difference-of-means directions."""

    model: str
    projection: ProjectionResult | None
    means: MeanDirections | None

    def _repr_html_(self) -> str:
        from factscope.report.reading_html import directions_fragment

        return directions_fragment(self.to_dict())


def read_directions(
    loaded: LoadedModel,
    prompt: str,
    answer: str | None = None,
    *,
    relation: Sequence[tuple[str, str, str]] | None = None,
    template: str = DEFAULT_TEMPLATE,
    layer: int | None = None,
) -> DirectionsResult:
    """The answer's direction on `prompt`, and difference-of-means directions over
    `relation` (default: the shipped athletes with `template`)."""
    model, tokenizer = loaded.model, loaded.tokenizer
    tokens = encode_prompt(model, tokenizer, prompt)
    target = (
        answer_token(tokenizer, answer)
        if answer is not None
        else predicted_answer(model, tokenizer, tokens)
    )
    projection = answer_projection(
        model, tokens, target.id, tokenizer=tokenizer, model_name=loaded.name, prompt=prompt
    )
    projection.answer = target.to_dict()
    triples = list(relation) if relation is not None else relation_prompts(template)
    means = mean_directions(model, tokenizer, triples, layer=layer, template=template)
    return DirectionsResult(model=loaded.name, projection=projection, means=means)
