"""Activation patching: which activations carry the difference between two prompts?

Run a CLEAN prompt ("Michael Jordan plays the sport of" -> " basketball") and a CORRUPT one
of the same length ("Tom Brady plays the sport of" -> " football"). Then rerun the corrupt
prompt with one activation replaced by its value from the clean run, and measure how far
the answer moves back towards the clean one:

    logit diff  ld = logit(A_clean) - logit(A_corrupt)     at the last position
    score          = (ld_patched - ld_corrupt) / (ld_clean - ld_corrupt)
                     0: the patch changed nothing, 1: it restored the clean answer fully

Kinds of activation (`kinds=`), each patched per cell:

    resid      blocks.{l}.resid_pre       per (layer, position)   the whole residual stream
                                          entering block l (as TransformerLens'
                                          `get_act_patch_resid_pre`); `resid_pre` of block 0
                                          is the embedding, so every layer's input is covered
    attn       blocks.{l}.attn.out        per (layer, position)   what attention adds
    mlp        blocks.{l}.mlp.out         per (layer, position)   what the MLP adds
    heads      blocks.{l}.attn.z[..., h]  per (layer, head), all positions at once
    heads_pos  blocks.{l}.attn.z[t, h]    per (layer, head, position)

A head is patched through its slice of `attn.z`, the value mix before `o_proj`. On Gemma the
attention output is `post_norm(o_proj(z))`, an RMSNorm over the sum of heads, so a patched
head also changes the norm's scale: the patch is still a well-defined intervention (the
model runs with that head's clean values), but head scores need not add up to the
attention-output score. Patching all heads of a layer at all positions equals patching its
attention output exactly, on every family.

How it is fast: a patch at layer l changes nothing below l, so the corrupt run's
`resid_pre` of block l is computed once and only blocks l.. are rerun, many patches to one
batch (`batch_size` rows per forward). Only the last position is read out, and only
through the two answer rows of the unembedding (the full one of Gemma is 262,144 x 640).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import hooks, run_with_cache
from factscope.load import LoadedModel
from factscope.locate.prompts import answer_token, encode_prompt
from factscope.model import Transformer
from factscope.tokenizer import Tokenizer, spell_tokens

# kind -> (site template, what one cell of the score grid is)
PATCH_KINDS: dict[str, tuple[str, str]] = {
    "resid": ("blocks.{l}.resid_pre", "layer x position"),
    "attn": ("blocks.{l}.attn.out", "layer x position"),
    "mlp": ("blocks.{l}.mlp.out", "layer x position"),
    "heads": ("blocks.{l}.attn.z", "layer x head (z[:, :, head], all positions)"),
    "heads_pos": ("blocks.{l}.attn.z", "layer x head x position (z[:, position, head])"),
}
DEFAULT_KINDS = ("resid", "attn", "mlp", "heads")


@dataclass
class PatchResult:
    """Scores of patching clean activations into the corrupt run, one grid per kind.

    `logit_diffs[kind]` holds the raw patched logit differences and `scores[kind]` the
    normalised ones, both shaped as `shapes[kind]` says (NaN scores, written as null in
    JSON, when the clean and corrupt logit differences are equal).
    """

    model: str
    clean_prompt: str | None
    corrupt_prompt: str | None
    clean_ids: list[int]
    corrupt_ids: list[int]
    clean_tokens: list[str]
    corrupt_tokens: list[str]
    answers: list[dict[str, Any]]  # [clean answer, corrupt answer]: text, id, token
    clean_logit_diff: float  # logit(A_clean) - logit(A_corrupt) on the clean prompt
    corrupt_logit_diff: float  # the same on the corrupt prompt
    sites: dict[str, str]  # kind -> site template, e.g. "blocks.{l}.resid_pre"
    shapes: dict[str, str]  # kind -> "layer x position" ...
    logit_diffs: dict[str, list[Any]] = field(default_factory=dict)
    scores: dict[str, list[Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _nan_to_none(dataclasses.asdict(self))

    def _repr_html_(self) -> str:
        """The patching heatmaps as the reports draw them, inline in a notebook."""
        from factscope.report.html import render_fragment
        from factscope.report.locate_html import patch_sections

        return render_fragment(patch_sections(self.to_dict()))

    def top_cells(self, kind: str, k: int = 5) -> list[tuple[tuple[int, ...], float]]:
        """The k cells of `kind` with the highest score: [((layer, pos|head, ...), score)]."""
        grid = torch.tensor(self.scores[kind], dtype=torch.float64).nan_to_num(float("-inf"))
        values, flat = grid.flatten().topk(min(k, grid.numel()))
        cells = [tuple(int(i) for i in torch.unravel_index(f, grid.shape)) for f in flat]
        return list(zip(cells, values.tolist(), strict=True))


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def logit_diff_last(model: Transformer, resid: Tensor, answer_ids: tuple[int, int]) -> Tensor:
    """logit(a) - logit(b) at the last position of the residual stream resid (B, T, D) -> (B,).

    Only the two answer rows of the unembedding are used: final_norm(x) @ (W_U[a] - W_U[b]).
    """
    a, b = answer_ids
    w = model.unembed.weight  # (V, D)
    direction = w[a] - w[b]  # (D,)
    return model.norm(resid[:, -1]) @ direction  # (B,)


def _final_resid(model: Transformer, tokens: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Residual after the last block (1, T, D) and every block's resid_pre/attn.out/mlp.out/z."""
    L = model.cfg.n_layers
    sites = [f"blocks.{i}.{s}" for i in range(L) for s in ("resid_pre", "attn.out", "mlp.out")]
    sites += [f"blocks.{i}.attn.z" for i in range(L)] + [f"blocks.{L - 1}.resid_post"]
    _, cache = run_with_cache(model, tokens, sites, logits_at="last")
    return cache[f"blocks.{L - 1}.resid_post"], cache


def _check_tokens(clean_tokens: Tensor, corrupt_tokens: Tensor) -> None:
    for name, t in (("clean", clean_tokens), ("corrupt", corrupt_tokens)):
        if t.ndim != 2 or t.shape[0] != 1:
            raise FactscopeError(
                f"{name} tokens must have shape (1, T), got {tuple(t.shape)}; patch one pair"
            )
    if clean_tokens.shape != corrupt_tokens.shape:
        raise FactscopeError(
            f"the clean prompt is {clean_tokens.shape[1]} tokens and the corrupt prompt "
            f"{corrupt_tokens.shape[1]}; patching compares them position by position, so "
            "choose subjects of equal token length (e.g. 'Michael Jordan' / 'Tom Brady')"
        )


def _patch_masks(kind: str, T: int, H: int) -> tuple[Tensor, tuple[int, ...]]:
    """One boolean mask per cell over the site's (T,) or (T, H) grid; and the grid shape.

    Where a mask is True the clean activation replaces the corrupt one.
    """
    if kind in ("resid", "attn", "mlp"):
        return torch.eye(T, dtype=torch.bool), (T,)  # (N=T, T): cell t patches position t
    if kind == "heads":
        masks = torch.eye(H, dtype=torch.bool)[:, None, :].expand(H, T, H)  # (N=H, T, H)
        return masks, (H,)
    if kind == "heads_pos":
        masks = torch.eye(H * T, dtype=torch.bool).view(H * T, H, T).transpose(1, 2)
        return masks, (H, T)  # (N=H*T, T, H): cell (h, t) patches head h at position t
    raise FactscopeError(f"unknown patch kind {kind!r}; use some of {', '.join(PATCH_KINDS)}")


@torch.no_grad()
def patched_logit_diffs(
    model: Transformer,
    layer: int,
    site: str,
    corrupt_resid_pre: Tensor,
    clean_act: Tensor,
    masks: Tensor,
    answer_ids: tuple[int, int],
    batch_size: int = 64,
) -> Tensor:
    """Logit differences of the corrupt run with clean values patched in at `site`.

    Starts from the corrupt run's residual entering block `layer` (1, T, D) and reruns
    blocks layer.. once per mask, `batch_size` masks per forward. `clean_act` (1, T, ...) is
    the clean run's activation at `site` (a site of block `layer`); mask n (T[, H]) picks
    the cells of row n to take from it. Returns (N,) logit differences.
    """
    T = corrupt_resid_pre.shape[1]
    positions = torch.arange(T, device=corrupt_resid_pre.device)
    out = []
    for start in range(0, masks.shape[0], batch_size):
        chunk = masks[start : start + batch_size].to(clean_act.device)  # (n, T[, H])
        while chunk.ndim < clean_act.ndim:
            chunk = chunk[..., None]  # broadcast over the trailing feature dims

        def patch(x: Tensor, _site: str, chunk: Tensor = chunk) -> Tensor:
            return torch.where(chunk, clean_act, x)

        x = corrupt_resid_pre.expand(chunk.shape[0], -1, -1)  # (n, T, D)
        with hooks(model, {site: patch}):
            x = model.run_blocks(x, positions, start=layer)
        out.append(logit_diff_last(model, x, answer_ids))
    return torch.cat(out)


@torch.no_grad()
def patch_activations(
    model: Transformer,
    clean_tokens: Tensor,
    corrupt_tokens: Tensor,
    answer_ids: tuple[int, int],
    kinds: Sequence[str] = DEFAULT_KINDS,
    batch_size: int = 64,
    *,
    tokenizer: Tokenizer | None = None,
    model_name: str = "",
) -> PatchResult:
    """Patch each clean activation of `kinds` into the corrupt run; score the logit diff.

    clean_tokens, corrupt_tokens: (1, T) each, the same T. answer_ids: (clean answer,
    corrupt answer) token ids. Score grids are (L, T) for resid/attn/mlp, (L, H) for heads
    and (L, H, T) for heads_pos. `tokenizer` only spells tokens in the result.
    """
    _check_tokens(clean_tokens, corrupt_tokens)
    for kind in kinds:
        _patch_masks(kind, 1, 1)  # validates the name
    cfg = model.cfg
    L, H, T = cfg.n_layers, cfg.n_heads, clean_tokens.shape[1]
    clean_final, clean = _final_resid(model, clean_tokens)
    corrupt_final, corrupt = _final_resid(model, corrupt_tokens)
    ld_clean = float(logit_diff_last(model, clean_final, answer_ids)[0])
    ld_corrupt = float(logit_diff_last(model, corrupt_final, answer_ids)[0])
    denom = ld_clean - ld_corrupt

    logit_diffs: dict[str, list[Any]] = {}
    scores: dict[str, list[Any]] = {}
    for kind in kinds:
        masks, cell_shape = _patch_masks(kind, T, H)
        grid = torch.empty(L, *cell_shape, dtype=torch.float64)
        for layer in range(L):
            site = PATCH_KINDS[kind][0].format(l=layer)
            diffs = patched_logit_diffs(
                model,
                layer,
                site,
                corrupt[f"blocks.{layer}.resid_pre"],
                clean[site],
                masks,
                answer_ids,
                batch_size,
            )
            grid[layer] = diffs.double().view(cell_shape)
        logit_diffs[kind] = grid.tolist()
        scores[kind] = ((grid - ld_corrupt) / denom if denom != 0 else grid * math.nan).tolist()

    notes = []
    if denom == 0:
        notes.append("clean and corrupt logit differences are equal: scores are undefined")
    return PatchResult(
        model=model_name,
        clean_prompt=None,
        corrupt_prompt=None,
        clean_ids=clean_tokens[0].tolist(),
        corrupt_ids=corrupt_tokens[0].tolist(),
        clean_tokens=spell_tokens(tokenizer, clean_tokens[0].tolist()),
        corrupt_tokens=spell_tokens(tokenizer, corrupt_tokens[0].tolist()),
        answers=[
            {"text": None, "id": i, "token": spell_tokens(tokenizer, [i])[0]} for i in answer_ids
        ],
        clean_logit_diff=ld_clean,
        corrupt_logit_diff=ld_corrupt,
        sites={k: PATCH_KINDS[k][0] for k in kinds},
        shapes={k: PATCH_KINDS[k][1] for k in kinds},
        logit_diffs=logit_diffs,
        scores=scores,
        notes=notes,
    )


def patch_prompts(
    loaded: LoadedModel,
    clean_prompt: str,
    corrupt_prompt: str,
    answers: tuple[str, str],
    kinds: Sequence[str] = DEFAULT_KINDS,
    batch_size: int = 64,
) -> PatchResult:
    """`patch_activations` on two prompts and their answers (" basketball", " football").

    Each answer is scored by its first token (see locate/prompts.py); a note says so.
    """
    model, tokenizer = loaded.model, loaded.tokenizer
    clean = encode_prompt(model, tokenizer, clean_prompt)
    corrupt = encode_prompt(model, tokenizer, corrupt_prompt)
    if clean.shape != corrupt.shape:
        raise FactscopeError(
            f"clean prompt {clean_prompt!r} is {clean.shape[1]} tokens "
            f"{spell_tokens(tokenizer, clean[0].tolist())} but corrupt prompt "
            f"{corrupt_prompt!r} is {corrupt.shape[1]} "
            f"{spell_tokens(tokenizer, corrupt[0].tolist())}; patching compares "
            "positions one to one, so choose subjects of equal token length"
        )
    a, b = (answer_token(tokenizer, text) for text in answers)
    if a.id == b.id:
        raise FactscopeError(
            f"both answers start with the token {a.token!r}; give answers whose first tokens "
            "differ (the metric is the difference of their logits)"
        )
    result = patch_activations(
        model,
        clean,
        corrupt,
        (a.id, b.id),
        kinds,
        batch_size,
        tokenizer=tokenizer,
        model_name=loaded.name,
    )
    result.clean_prompt, result.corrupt_prompt = clean_prompt, corrupt_prompt
    result.answers = [{"text": x.text, "id": x.id, "token": x.token} for x in (a, b)]
    result.notes += [x.note for x in (a, b) if x.note]
    return result
