"""MEMIT (Meng et al. 2023) and AlphaEdit (Fang et al. 2025): many facts at once.

MEMIT writes a batch of facts into the output projections of a range of layers (the five
layers ending at ROME's layer, by default):

1. for each fact, z: the residual stream after the LAST edit layer at the subject's last
   token that makes the model say the new answer — ROME's optimisation with δ added to
   the block output (authors' defaults: 20 steps, lr 0.5, clamp 0.75 ‖h‖, KL 0.0625);
2. layer by layer, from the first: the keys K (F, n) of the facts (averaged over the bare
   prompt and 5 prefixes of 10 tokens the model writes), the residual R = z − h still
   missing at the last edit layer (recomputed after each layer's update), and the least-
   squares update that writes an equal share R / (layers left) at this layer while keeping
   the corpus keys' outputs:  ΔW = R Kᵀ (λ C + K Kᵀ)⁻¹, solved in float64, λ =
   `mom2_update_weight`.

AlphaEdit projects the update onto the null space of the preserved keys: P = U₀U₀ᵀ over
the eigenvectors of C whose eigenvalue is below `nullspace_threshold` (authors: 2e-2), so
that ΔW k = 0 for every key in the span the corpus uses; keys of earlier edits (sequential
editing) are kept in the solve through their running sum K_p K_pᵀ:
    ΔW = R Kᵀ P (K Kᵀ P + K_p K_pᵀ P + α I)⁻¹     (α = `L2`, authors: 10)

Gemma's post-MLP norm: a layer's share r is a change of the MLP *output*, after the
RMSNorm, and the norm can produce only the outputs {g ⊙ v : ‖v‖² = D}. The wanted output
o + r is replaced by the nearest output the norm can produce, and that is turned into a
change of down_proj's output (`postnorm.nearest_reachable`, derived there); what is still
missing is left to the next layers, which recompute R. Each result records, per layer, how
far o + r lay off the norm's reach (ρ) and how much of r the update achieved at the facts'
bare prompts (`reached` = ‖o' − o‖/‖r‖, `error` = ‖o' − (o + r)‖/‖r‖).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from factscope.edit.fingerprint import weights_fingerprint
from factscope.edit.handle import EditHandle, mlp_of
from factscope.edit.postnorm import nearest_reachable
from factscope.edit.request import EditRequest, PromptBatch, answer_ids, build_batch, keys_at
from factscope.edit.stats import KeyStats
from factscope.edit.target import cached_delta, delta_settings
from factscope.errors import FactscopeError
from factscope.hooks import hooks
from factscope.model import Transformer
from factscope.progress import progress_bar

if TYPE_CHECKING:
    from factscope.load import LoadedModel


@dataclass(frozen=True)
class MEMITHyperParams:
    """MEMIT's settings (authors' hparams/MEMIT/gpt2-xl.json) and AlphaEdit's additions
    (hparams/AlphaEdit/EleutherAI_gpt-j-6B.json)."""

    n_layers: int = 5  # consecutive layers ending at the given layer
    v_num_grad_steps: int = 20
    v_lr: float = 0.5
    v_weight_decay: float = 0.5
    clamp_norm_factor: float = 0.75
    kl_factor: float = 0.0625
    early_stop_loss: float = 5e-2
    mom2_update_weight: float = 20000.0
    context_template_lengths: tuple[tuple[int, int], ...] = ((10, 5),)
    context_seeds: tuple[str, ...] = ("The", "Therefore", "Because", "I", "You")
    context_top_k: int = 5
    kl_prompt: str = "{} is a"
    mom2_adjustment: bool = True  # False: C = I
    stats_tokens: int = 100_000
    corpus: str = "self"  # the model's own text (corpus.py) or a file
    nullspace_threshold: float = 2e-2  # AlphaEdit
    # AlphaEdit, per model: instead of the absolute threshold, the null space is the smallest
    # eigen-directions of C holding at most this share of the keys' energy tr C
    nullspace_energy: float | None = None
    L2: float = 10.0  # AlphaEdit
    seed: int = 0
    layer: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Per model, the settings measured to work there: the best score S on a tuning half of the
# facts the model knows (scripts/edit_lambda_sweep.py; docs/results/edit-lambda/result.json,
# checked by tests/test_edit_defaults.py). Every other model gets the authors' settings, as
# does `--authors-hparams` on the command line.
TUNED: dict[str, dict[str, Any]] = {
    "gemma-3-270m": {"mom2_update_weight": 5000.0, "nullspace_energy": 0.05},
}


def memit_hparams(
    model: str | None = None, *, authors: bool = False, **changes: Any
) -> MEMITHyperParams:
    """MEMIT / AlphaEdit settings for `model`: the authors' defaults, with the model's
    measured ones (`TUNED`) unless `authors`, then `changes` (those that are not None)."""
    tuned = {} if authors else TUNED.get(model or "", {})
    given = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(MEMITHyperParams(), **{**tuned, **given})


def edit_layers(last: int, n_layers: int) -> list[int]:
    """The `n_layers` consecutive layers ending at `last` (clipped at layer 0)."""
    return list(range(max(0, last - n_layers + 1), last + 1))


# ---- the closed forms -----------------------------------------------------------------------


def memit_update(keys: Tensor, resid: Tensor, C: Tensor, mom2_update_weight: float) -> Tensor:
    """MEMIT's ΔW (D, F) = R Kᵀ (λ C + K Kᵀ)⁻¹ for keys K (F, n) and residuals R (D, n),
    in float64."""
    K, R = keys.double(), resid.double()
    adj_k = torch.linalg.solve(mom2_update_weight * C.double() + K @ K.T, K)  # (F, n)
    return R @ adj_k.T


def nullspace_projector(
    C: Tensor, threshold: float, energy: float | None = None
) -> tuple[Tensor, int, float]:
    """AlphaEdit's P = U₀U₀ᵀ over the eigenvectors of C with eigenvalue < threshold
    (F, F) float64, the null space's dimension, and the share of the keys' energy
    E‖k‖² = tr C that lies in it: E‖P k‖² / E‖k‖², how much of the preserved keys the
    update can still reach (the threshold is absolute, so this depends on the model).
    With `energy`, the threshold is chosen per C instead: the smallest eigen-directions
    whose eigenvalues sum to at most that share of tr C."""
    eigenvalues, vectors = torch.linalg.eigh(C.double())  # ascending
    if energy is None:
        small = eigenvalues < threshold
    else:
        positive = eigenvalues.clamp(min=0)
        small = positive.cumsum(0) <= energy * positive.sum()
    null = vectors[:, small]  # (F, r)
    energy = float(eigenvalues[small].clamp(min=0).sum() / eigenvalues.clamp(min=0).sum())
    return null @ null.T, int(null.shape[1]), energy


def alphaedit_update(keys: Tensor, resid: Tensor, P: Tensor, previous: Tensor, L2: float) -> Tensor:
    """AlphaEdit's ΔW (D, F) = R Kᵀ P (K Kᵀ P + K_p K_pᵀ P + α I)⁻¹, in float64.

    Solved as the authors do, (P (K Kᵀ + K_p K_pᵀ) + α I) X = P K Rᵀ with ΔW = Xᵀ (the two
    agree by transposition, P and K Kᵀ being symmetric). ΔW = ΔW P, so ΔW k = 0 for any key
    k with P k = 0: the preserved keys' outputs do not move."""
    K, R, P = keys.double(), resid.double(), P.double()
    F = K.shape[0]
    A = P @ (K @ K.T + previous.double()) + L2 * torch.eye(F, dtype=torch.float64)
    return torch.linalg.solve(A, P @ K @ R.T).T


# ---- state kept across sequential AlphaEdit calls -------------------------------------------


@dataclass
class AlphaEditState:
    """Per layer: the null-space projector of the corpus keys, and Σ K Kᵀ of every fact
    edited so far (sequential editing keeps earlier edits' keys in the solve)."""

    projectors: dict[int, Tensor] = field(default_factory=dict)  # (F, F)
    null_dims: dict[int, int] = field(default_factory=dict)
    null_energy: dict[int, float] = field(default_factory=dict)  # share of tr C in the null space
    previous: dict[int, Tensor] = field(default_factory=dict)  # (F, F) Σ K_p K_pᵀ
    n_edits: int = 0

    @classmethod
    def from_stats(
        cls, stats: dict[int, KeyStats], threshold: float, energy: float | None = None
    ) -> AlphaEditState:
        state = cls()
        for l, s in stats.items():
            P, dim, energy_in = nullspace_projector(s.moment, threshold, energy)
            state.projectors[l], state.null_dims[l], state.null_energy[l] = P, dim, energy_in
            state.previous[l] = torch.zeros_like(P)
        return state


# ---- the edit -------------------------------------------------------------------------------


@dataclass
class MEMITResult:
    """What a MEMIT / AlphaEdit batch computed (plain data through `to_dict`)."""

    method: str
    requests: list[EditRequest]
    layers: list[int]
    z_losses: list[list[dict[str, float]]]
    z_error: list[float]  # mean ‖R‖ per layer before its update
    update_norms: list[float]
    null_dims: dict[int, int]
    hparams: MEMITHyperParams
    null_energy: dict[int, float] = field(default_factory=dict)
    # per layer, per fact: ‖R‖ before the layer's update, ρ, and the share of the layer's
    # wanted output change r achieved at the bare prompt (reached, error: see the docstring)
    fact_z_error: list[list[float]] = field(default_factory=list)
    rho: list[list[float]] = field(default_factory=list)
    reached: list[list[float]] = field(default_factory=list)
    error: list[list[float]] = field(default_factory=list)

    def fact_report(self, i: int) -> dict[str, Any]:
        """What the batch did for its i-th fact: per layer (in `layers` order) its ‖R‖, ρ
        and the reached share and error of its wanted output change, with λ and the
        null space."""
        return {
            "method": self.method,
            "layers": self.layers,
            "mom2_update_weight": self.hparams.mom2_update_weight,
            "z_error": [zs[i] for zs in self.fact_z_error],
            "rho": [r[i] for r in self.rho],
            "reached": [r[i] for r in self.reached],
            "error": [e[i] for e in self.error],
            "null_dims": {str(k): v for k, v in self.null_dims.items()},
            "null_energy": {str(k): v for k, v in self.null_energy.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "requests": [dataclasses.asdict(r) for r in self.requests],
            "layers": self.layers,
            "final_losses": [ls[-1] if ls else {} for ls in self.z_losses],
            "z_error": self.z_error,
            "update_norms": self.update_norms,
            "null_dims": {str(k): v for k, v in self.null_dims.items()},
            "null_energy": {str(k): v for k, v in self.null_energy.items()},
            "rho": [_mean(r) for r in self.rho],
            "reached": [_mean(r) for r in self.reached],
            "error": [_mean(e) for e in self.error],
            "hparams": self.hparams.to_dict(),
        }

    def _repr_html_(self) -> str:
        from factscope.report.edit_html import result_html

        return result_html(self.to_dict())


def memit_templates(lm: LoadedModel, hparams: MEMITHyperParams) -> list[str]:
    """["{}"] + 5 texts of 10 tokens from "The", "Therefore", ... (MEMIT's prefixes)."""
    from factscope.edit.corpus import sample_continuations
    from factscope.generate import Sampling

    key = ("memit", hparams.context_template_lengths, hparams.context_seeds, hparams.seed)
    cached = _MEMIT_TEMPLATES.get((id(lm.model), key))
    if cached is not None:
        return list(cached)
    generator = torch.Generator(device=lm.model.device).manual_seed(hparams.seed)
    templates = ["{}"]
    for n, count in hparams.context_template_lengths:
        seeds = [hparams.context_seeds[i % len(hparams.context_seeds)] for i in range(count)]
        new = sample_continuations(
            lm, seeds, n - 1, Sampling(temperature=1.0, top_k=hparams.context_top_k), generator
        )
        for s, ids in zip(seeds, new, strict=True):
            text = (s + lm.tokenizer.decode(ids)).replace("{", " ").replace("}", " ")
            templates.append(text.strip() + ". {}")
    _MEMIT_TEMPLATES[(id(lm.model), key)] = templates
    return list(templates)


_MEMIT_TEMPLATES: dict[tuple[int, Any], list[str]] = {}


def _fact_batches(
    lm: LoadedModel, requests: Sequence[EditRequest], templates: list[str], kl_prompt: str
) -> list[PromptBatch]:
    return [
        build_batch(
            lm.tokenizer,
            templates,
            r.prompt,
            r.subject,
            answer_ids(lm.tokenizer, r.prompt, r.new),
            [kl_prompt],
            lm.model.device,
        )
        for r in requests
    ]


@torch.no_grad()
def _bare_states(
    model: Transformer, batches: list[PromptBatch], layer: int, z_layer: int
) -> tuple[Tensor, Tensor, Tensor]:
    """At each fact's bare prompt (row 0), subject's last token: the down_proj output y and
    MLP output o of `layer`, and the residual h after `z_layer`. (n, D) each."""
    ys, outs, hs = [], [], []
    cache: dict[str, Tensor] = {}

    def record(x: Tensor, site: str) -> None:
        cache[site] = x

    for b in batches:
        tokens = b.tokens[:1, : b.lengths[0]]

        sites = [
            f"blocks.{layer}.mlp.post",
            f"blocks.{layer}.mlp.out",
            f"blocks.{z_layer}.resid_post",
        ]
        positions = torch.arange(tokens.shape[1], device=model.device)
        with hooks(model, {s: record for s in sites}):
            model.run_blocks(model.embed_tokens(tokens), positions, stop=z_layer + 1)
        t = int(b.lookup[0])
        ys.append(mlp_of(model, layer).down_proj(cache[sites[0]][0, t]))
        outs.append(cache[sites[1]][0, t])
        hs.append(cache[sites[2]][0, t])
    return torch.stack(ys), torch.stack(outs), torch.stack(hs)


def _down_proj_targets(
    model: Transformer, layer: int, y: Tensor, o: Tensor, r: Tensor
) -> tuple[Tensor, Tensor]:
    """The change of down_proj's output (n, D) that moves the MLP output o as near to o + r
    as the layer can, and ρ per fact (n,) (1 without a post-norm).

    Without a post-norm that is r itself. With Gemma's post-norm o = g ⊙ y / rms(y), it is
    y' − y for the down_proj output y' whose normed value is the reachable output nearest
    to o + r (`postnorm.nearest_reachable`; coordinates where g is 0 keep their value)."""
    norm = mlp_of(model, layer).post_norm
    if norm is None:
        return r.double(), torch.ones(r.shape[0], dtype=torch.float64)
    target = nearest_reachable(norm.weight, y, o.double() + r.double())
    return target.y - y.double(), target.rho


@torch.no_grad()
def _mlp_outputs(model: Transformer, batches: list[PromptBatch], layer: int) -> Tensor:
    """The MLP output of `layer` at each fact's bare prompt, subject's last token, (n, D)."""
    outs = []
    site = f"blocks.{layer}.mlp.out"
    cache: dict[str, Tensor] = {}

    def record(x: Tensor, name: str) -> None:
        cache[name] = x

    for b in batches:
        tokens = b.tokens[:1, : b.lengths[0]]
        positions = torch.arange(tokens.shape[1], device=model.device)
        with hooks(model, {site: record}):
            model.run_blocks(model.embed_tokens(tokens), positions, stop=layer + 1)
        outs.append(cache[site][0, int(b.lookup[0])])
    return torch.stack(outs)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def apply_memit(
    lm: LoadedModel,
    requests: Sequence[EditRequest],
    last_layer: int,
    hparams: MEMITHyperParams = MEMITHyperParams(),
    *,
    method: str = "memit",
    stats: dict[int, KeyStats] | None = None,
    state: AlphaEditState | None = None,
    progress: bool = False,
    cache_targets: bool = True,
) -> EditHandle:
    """Write `requests` into the model (in place) with MEMIT or AlphaEdit; return the handle.

    `stats`: C per layer (default: the cached corpus statistics; C = I when
    `hparams.mom2_adjustment` is False). `state`: AlphaEdit's running state for sequential
    editing (created from the statistics when None, and updated in place). `cache_targets`:
    reuse each fact's z from the disk cache when the same weights and prompts made it
    before (`target.cached_delta`)."""
    from factscope.edit.stats import identity_stats, layer_stats

    if method not in ("memit", "alphaedit"):
        raise FactscopeError(f"unknown batch edit method {method!r}; use memit or alphaedit")
    model = lm.model
    layers = edit_layers(last_layer, hparams.n_layers)
    z_layer = layers[-1]
    if stats is None or any(l not in stats for l in layers):
        if hparams.mom2_adjustment:
            stats = layer_stats(
                model,
                lm.tokenizer,
                layers,
                hparams.corpus,
                hparams.stats_tokens,
                progress=progress,
            )
        else:
            stats = {l: identity_stats(model, l) for l in layers}
    if method == "alphaedit" and state is None:
        state = AlphaEditState.from_stats(
            {l: stats[l] for l in layers}, hparams.nullspace_threshold, hparams.nullspace_energy
        )

    if method == "alphaedit":
        assert state is not None
        empty = [l for l in layers if state.null_dims.get(l, 0) == 0]
        if empty:
            raise FactscopeError(
                f"AlphaEdit's null space is empty at layer(s) {empty} (no eigenvalue of C below "
                f"{hparams.nullspace_threshold}): no direction is free to edit; raise the "
                "threshold or use corpus statistics instead of C = I"
            )
    templates = memit_templates(lm, hparams)
    batches = _fact_batches(lm, requests, templates, hparams.kl_prompt)

    # 1. z for every fact: the residual after the last edit layer that says the new answer
    zs, z_losses = [], []
    fingerprint = weights_fingerprint(model) if cache_targets else None
    bar = progress_bar(len(batches), progress, "z (target residuals)", leave=True)
    for b in batches:
        d = cached_delta(
            model,
            b,
            z_layer,
            "resid",
            delta_settings(hparams),
            fingerprint=fingerprint,
            use_cache=cache_targets,
        )
        z_losses.append(d.losses)
        zs.append(d.delta)
        bar.update(1)
    bar.close()
    _, _, h0 = _bare_states(model, batches, z_layer, z_layer)
    z = h0.double() + torch.stack(zs).double()  # (n, D)

    handle = EditHandle.begin(model, method, layers)
    z_error, update_norms = [], []
    fact_z_error, rhos, reached, errors = [], [], [], []
    try:
        for i, layer in enumerate(layers):
            # keys: mean over the bare prompt and the mean over the prefixed prompts
            K = torch.stack([_memit_key(model, b, layer) for b in batches], dim=1)  # (F, n)
            y, o, h = _bare_states(model, batches, layer, z_layer)
            R = z - h.double()  # (n, D) still missing at the last edit layer
            z_error.append(float(R.norm(dim=1).mean()))
            fact_z_error.append(R.norm(dim=1).tolist())
            r = R / (len(layers) - i)  # (n, D) this layer's share of the missing change
            share, rho = _down_proj_targets(model, layer, y, o, r)  # (n, D), (n,)
            rhos.append(rho.tolist())
            if method == "memit":
                delta = memit_update(K, share.T, stats[layer].moment, hparams.mom2_update_weight)
            else:
                assert state is not None
                delta = alphaedit_update(
                    K, share.T, state.projectors[layer], state.previous[layer], hparams.L2
                )
            update_norms.append(float(delta.norm()))
            handle.add_delta(layer, delta)
            achieved = _mlp_outputs(model, batches, layer).double()  # (n, D) after the update
            size = r.norm(dim=1).clamp(min=1e-300)
            reached.append(((achieved - o.double()).norm(dim=1) / size).tolist())
            errors.append(((achieved - o.double() - r).norm(dim=1) / size).tolist())
        if method == "alphaedit":
            assert state is not None
            for layer in layers:  # remember the edited facts' keys (after the update)
                K = torch.stack([_memit_key(model, b, layer) for b in batches], dim=1).double()
                state.previous[layer] = state.previous[layer] + K @ K.T
            state.n_edits += len(requests)
    except BaseException:
        handle.undo()
        raise
    null_dims = dict(state.null_dims) if state is not None else {}
    null_energy = dict(state.null_energy) if state is not None else {}
    handle.results.append(
        MEMITResult(
            method, list(requests), layers, z_losses, z_error, update_norms, null_dims, hparams,
            null_energy, fact_z_error, rhos, reached, errors,
        )
    )  # fmt: skip
    return handle


def _memit_key(model: Transformer, batch: PromptBatch, layer: int) -> Tensor:
    """MEMIT's key of one fact: the mean of (bare-prompt key, mean of prefixed keys), (F,)."""
    k = keys_at(model, batch, layer)[: batch.n_rewrite]  # (n_templates, F)
    return torch.stack([k[0], k[1:].mean(0)]).mean(0) if len(k) > 1 else k[0]
