"""Read the residual stream in the vocabulary: the logit lens and direct logit attribution.

Logit lens (nostalgebraist 2020): put the residual stream entering each block, and the one
leaving the last block, through the model's own final norm and unembedding, as if the
model stopped there. Row 0 is the embedding alone; the last row is the model's real output.

Direct logit attribution (DLA): the final residual at the last position is a sum of what
each component wrote into it,

    resid_final = embed + sum_l (attn_out_l + mlp_out_l)

and the answer's logit is RMSNorm(resid_final) . W_U[answer]. RMSNorm is not linear, so we
use the standard linearisation: freeze its scale at the value the real run computed,
s = 1 / sqrt(mean(resid_final^2) + eps), and credit each component c with

    dla(c) = s * (c * g) . W_U[answer]         (g: the final norm's weight)

These terms add up to the real logit exactly (up to float rounding). With a baseline token
the direction is W_U[answer] - W_U[baseline] and the terms add up to the logit difference.

Per head: attention's output is o_proj(z) = sum_h W_O[:, h] z_h, one term per head. Gemma
adds an RMSNorm after o_proj (`attn.post_norm`); we freeze that norm's scale too, at the
value computed from the layer's whole output, so head_h = W_O[:, h] z_h * s_post * g_post
and the heads of a layer add up to its attention output exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import run_with_cache
from factscope.load import LoadedModel
from factscope.locate.prompts import AnswerToken, answer_token, encode_prompt, predicted_answer
from factscope.model import Attention, LayerNorm, RMSNorm, Transformer
from factscope.norms import frozen_rms_scale, norm_readout
from factscope.result import Result
from factscope.tokenizer import Tokenizer, spell_tokens


def _check_tokens(model: Transformer, tokens: Tensor) -> None:
    if tokens.ndim != 2 or tokens.shape[0] != 1:
        raise FactscopeError(f"tokens must have shape (1, T), got {tuple(tokens.shape)}")
    if tokens.shape[1] == 0:
        raise FactscopeError("the prompt has no tokens; give some text")


def _check_vocab(model: Transformer, token_id: int, what: str) -> None:
    if not 0 <= token_id < model.cfg.vocab_size:
        raise FactscopeError(
            f"{what} id {token_id} is outside the vocabulary (0..{model.cfg.vocab_size - 1})"
        )


def lens_sites(model: Transformer) -> list[str]:
    """The residual streams the lens reads: each block's resid_pre, then the final resid_post."""
    L = model.cfg.n_layers
    return [f"blocks.{i}.resid_pre" for i in range(L)] + [f"blocks.{L - 1}.resid_post"]


@torch.no_grad()
def lens_residuals(model: Transformer, tokens: Tensor) -> Tensor:
    """Residual streams at every lens site: tokens (1, T) -> (L + 1, T, D)."""
    sites = lens_sites(model)
    _, cache = run_with_cache(model, tokens, sites, logits_at="last")
    return torch.cat([cache[s] for s in sites])  # (L + 1, T, D)


@dataclass
class LensResult(Result):
    """The logit lens at the last position, one row per residual stream (`layers`).

    Row i < L is the residual entering block i (row 0: embeddings only); row L is the
    final residual, whose lens is the model's real output. With all positions, `top1_*`
    give the lens's top token at every (row, position).
    """

    model: str
    prompt: str | None
    ids: list[int]
    tokens: list[str]
    answer: dict[str, Any]  # text, id, token
    layers: list[str]  # site names of the rows
    top_ids: list[list[int]]  # (rows, k)
    top_tokens: list[list[str]]  # (rows, k)
    top_probs: list[list[float]]  # (rows, k)
    answer_rank: list[int]  # (rows,), 0 = top-1
    answer_prob: list[float]  # (rows,)
    answer_logit: list[float]  # (rows,)
    top1_ids: list[list[int]] | None = None  # (rows, T)
    top1_tokens: list[list[str]] | None = None  # (rows, T)
    top1_probs: list[list[float]] | None = None  # (rows, T)
    notes: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        """The logit lens as the reports draw it, inline in a notebook."""
        from factscope.report.html import render_fragment
        from factscope.report.locate_html import lens_sections

        return render_fragment(lens_sections(self.to_dict()))

    def first_top1_row(self) -> int | None:
        """The first row from which the answer stays the lens's top-1 token, else None."""
        first = None
        for row, rank in enumerate(self.answer_rank):
            if rank == 0 and first is None:
                first = row
            elif rank != 0:
                first = None
        return first


@torch.no_grad()
def logit_lens(
    model: Transformer,
    tokens: Tensor,
    answer_id: int | None = None,
    top_k: int = 5,
    *,
    all_positions: bool = False,
    tokenizer: Tokenizer | None = None,
    model_name: str = "",
) -> LensResult:
    """Each residual stream of `tokens` (1, T) read through the final norm and unembedding.

    `answer_id` defaults to the model's own top prediction. `tokenizer` only spells tokens.
    """
    _check_tokens(model, tokens)
    if top_k < 1:
        raise FactscopeError(f"top_k must be at least 1, got {top_k}")
    resid = lens_residuals(model, tokens)  # (R, T, D), R = L + 1
    last = model.unembed_residual(resid[:, -1:])[:, 0].float()  # (R, V)
    if answer_id is None:
        answer_id = int(last[-1].argmax())
    _check_vocab(model, answer_id, "answer")
    probs = last.softmax(-1)  # (R, V)
    top_probs, top_ids = probs.topk(min(top_k, probs.shape[-1]), dim=-1)  # (R, k)
    answer_logit = last[:, answer_id]  # (R,)
    answer_rank = (last > answer_logit[:, None]).sum(-1)  # (R,)

    result = LensResult(
        model=model_name,
        prompt=None,
        ids=tokens[0].tolist(),
        tokens=spell_tokens(tokenizer, tokens[0].tolist()),
        answer={"text": None, "id": answer_id, "token": spell_tokens(tokenizer, [answer_id])[0]},
        layers=lens_sites(model),
        top_ids=top_ids.tolist(),
        top_tokens=[spell_tokens(tokenizer, row) for row in top_ids.tolist()],
        top_probs=top_probs.tolist(),
        answer_rank=answer_rank.tolist(),
        answer_prob=probs[:, answer_id].tolist(),
        answer_logit=answer_logit.tolist(),
    )
    if all_positions:
        rows = []
        for r in range(resid.shape[0]):  # one row at a time: (T, V) logits, not (R, T, V)
            p = model.unembed_residual(resid[r : r + 1])[0].float().softmax(-1)  # (T, V)
            rows.append(p.max(-1))
        result.top1_ids = [row.indices.tolist() for row in rows]
        result.top1_probs = [row.values.tolist() for row in rows]
        result.top1_tokens = [spell_tokens(tokenizer, ids) for ids in result.top1_ids]
    return result


@dataclass
class DLAResult(Result):
    """Direct logit attribution of the answer at the last position.

    `logit` is the model's real logit of the answer (minus the baseline's, if given);
    `embed + sum(attn) + sum(mlp)` equals it up to float rounding (`total`, `error`).
    `heads[l][h]` add up to `attn[l]`. `final_scale` is the frozen 1/rms of the final norm.
    """

    model: str
    prompt: str | None
    ids: list[int]
    tokens: list[str]
    answer: dict[str, Any]  # text, id, token
    baseline: dict[str, Any] | None  # text, id, token of the subtracted token, or None
    logit: float  # real logit (difference) from the forward pass
    total: float  # sum of all components
    error: float  # total - logit
    final_scale: float
    embed: float
    attn: list[float]  # (L,)
    mlp: list[float]  # (L,)
    heads: list[list[float]]  # (L, H)
    norm_bias: float = 0.0  # the final LayerNorm's bias . direction, a constant (GPT-2, Pythia)
    notes: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        """The attribution as the reports draw it, inline in a notebook."""
        from factscope.report.html import render_fragment
        from factscope.report.locate_html import dla_sections

        return render_fragment(dla_sections(self.to_dict()))

    def components(self) -> dict[str, float]:
        """Every component by name: embed, attn.0, mlp.0, attn.1, ..."""
        named = {"embed": self.embed}
        for layer, (a, m) in enumerate(zip(self.attn, self.mlp, strict=True)):
            named[f"attn.{layer}"], named[f"mlp.{layer}"] = a, m
        if self.norm_bias:
            named["norm_bias"] = self.norm_bias
        return named

    def top_components(self, k: int = 5) -> list[tuple[str, float]]:
        """The k components with the largest attribution (most positive first)."""
        return sorted(self.components().items(), key=lambda kv: -kv[1])[:k]


@torch.no_grad()
def direct_logit_attribution(
    model: Transformer,
    tokens: Tensor,
    answer_id: int,
    baseline_id: int | None = None,
    *,
    tokenizer: Tokenizer | None = None,
    model_name: str = "",
) -> DLAResult:
    """Split the answer's logit at the last position of `tokens` (1, T) into components.

    Components: the embedding, each layer's attention output (and its heads) and each
    layer's MLP output, scored with the final norm's scale frozen (see the module doc).
    The decomposition is computed in float64.
    """
    _check_tokens(model, tokens)
    _check_vocab(model, answer_id, "answer")
    if baseline_id is not None:
        _check_vocab(model, baseline_id, "baseline")
    cfg = model.cfg
    L, H, dh = cfg.n_layers, cfg.n_heads, cfg.d_head
    sites = ["blocks.0.resid_pre", f"blocks.{L - 1}.resid_post", "final_norm", "logits"]
    sites += [f"blocks.{i}.{s}" for i in range(L) for s in ("attn.z", "attn.out", "mlp.out")]
    _, cache = run_with_cache(model, tokens, sites, logits_at="last")

    w_u = model.unembed.weight.double()
    direction = w_u[answer_id] - (w_u[baseline_id] if baseline_id is not None else 0)  # (D,)
    logits = cache["logits"][0, -1].double()
    logit = logits[answer_id] - (logits[baseline_id] if baseline_id is not None else 0)
    if cfg.final_softcap is not None:  # Gemma 2: split the logit before its tanh cap
        logit = cache["final_norm"][0, -1].double() @ direction

    final = cache[f"blocks.{L - 1}.resid_post"][0, -1]  # (D,)
    norm = cast(RMSNorm | LayerNorm, model.norm)
    scale = frozen_rms_scale(norm, final).double()  # (1,)
    readout = norm_readout(norm, scale, direction)  # (D,): dla(c) = c . readout
    bias = getattr(norm, "bias", None)
    norm_bias = 0.0 if bias is None else float(bias.double() @ direction)

    def dla(c: Tensor) -> Tensor:
        return c.double() @ readout

    embed = dla(cache["blocks.0.resid_pre"][0, -1])
    attn = torch.stack([dla(cache[f"blocks.{i}.attn.out"][0, -1]) for i in range(L)])
    mlp = torch.stack([dla(cache[f"blocks.{i}.mlp.out"][0, -1]) for i in range(L)])
    heads = torch.empty(L, H, dtype=torch.float64)
    for i in range(L):
        attention = cast(Attention, model.blocks[i].attn)
        z = cache[f"blocks.{i}.attn.z"][0, -1].double()  # (H, dh)
        w_o = attention.o_proj.weight.double().view(-1, H, dh)  # (D, H, dh)
        per_head = torch.einsum("dhk,hk->hd", w_o, z)  # (H, D): head h's term of o_proj(z)
        post = attention.post_norm
        if post is not None:  # Gemma: freeze the post-norm's scale at the whole output's
            total = attention.o_proj(cache[f"blocks.{i}.attn.z"][0, -1].flatten())  # (D,)
            per_head = per_head * frozen_rms_scale(post, total).double() * post.weight.double()
        heads[i] = per_head @ readout  # (H,)
    total_sum = float(embed + attn.sum() + mlp.sum()) + norm_bias
    return DLAResult(
        model=model_name,
        prompt=None,
        ids=tokens[0].tolist(),
        tokens=spell_tokens(tokenizer, tokens[0].tolist()),
        answer={"text": None, "id": answer_id, "token": spell_tokens(tokenizer, [answer_id])[0]},
        baseline=None
        if baseline_id is None
        else {"text": None, "id": baseline_id, "token": spell_tokens(tokenizer, [baseline_id])[0]},
        logit=float(logit),
        total=total_sum,
        error=total_sum - float(logit),
        final_scale=float(scale),
        embed=float(embed),
        attn=attn.tolist(),
        mlp=mlp.tolist(),
        heads=heads.tolist(),
        norm_bias=norm_bias,
    )


def _answer_dict(answer: AnswerToken) -> dict[str, Any]:
    return {"text": answer.text, "id": answer.id, "token": answer.token}


def lens_prompt(
    loaded: LoadedModel,
    prompt: str,
    answer: str | None = None,
    top_k: int = 5,
    *,
    all_positions: bool = False,
) -> LensResult:
    """`logit_lens` on a prompt; `answer` (first token scored) defaults to the prediction."""
    model, tokenizer = loaded.model, loaded.tokenizer
    tokens = encode_prompt(model, tokenizer, prompt)
    target = answer_token(tokenizer, answer) if answer is not None else None
    result = logit_lens(
        model,
        tokens,
        None if target is None else target.id,
        top_k,
        all_positions=all_positions,
        tokenizer=tokenizer,
        model_name=loaded.name,
    )
    result.prompt = prompt
    if target is not None:
        result.answer = _answer_dict(target)
        result.notes += [target.note] if target.note else []
    return result


def attribute_prompt(
    loaded: LoadedModel, prompt: str, answer: str | None = None, baseline: str | None = None
) -> DLAResult:
    """`direct_logit_attribution` on a prompt; `answer` defaults to the model's prediction,
    `baseline` (optional) is a second answer whose logit is subtracted."""
    model, tokenizer = loaded.model, loaded.tokenizer
    tokens = encode_prompt(model, tokenizer, prompt)
    if answer is None:
        target = predicted_answer(model, tokenizer, tokens)
    else:
        target = answer_token(tokenizer, answer)
    base = answer_token(tokenizer, baseline) if baseline is not None else None
    result = direct_logit_attribution(
        model,
        tokens,
        target.id,
        None if base is None else base.id,
        tokenizer=tokenizer,
        model_name=loaded.name,
    )
    result.prompt = prompt
    result.answer = _answer_dict(target)
    result.baseline = None if base is None else _answer_dict(base)
    result.notes += [t.note for t in (target, base) if t is not None and t.note]
    return result
