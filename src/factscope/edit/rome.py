"""ROME (Meng et al. 2022): rewrite one fact with a rank-one change of one MLP.

The MLP's output projection `down_proj` of layer L is read as a key–value memory: the key k
is the neuron activations at the subject's last token (`blocks.{L}.mlp.post`), the value
W k what the MLP writes into the residual stream there. To make "Michael Jordan plays the
sport of" end in " baseball":

1. k*: the key at the subject's last token, averaged over the bare prompt and 20 prefixes
   the model writes itself (ten of 5 tokens, ten of 10, top-k 5 sampling), as ROME does;
2. v*: the value that makes the model say the new answer. A vector δ is added to the
   output of `down_proj` at the subject's last token of every prefixed prompt and optimised
   (Adam, 20 steps, lr 0.5) to maximise p(new answer) after each prefix, with ROME's KL term
   keeping the distribution at the subject's last token of "{subject} is a" in place (what
   the model thinks the subject *is*), a weight decay ‖δ‖/‖W k‖², and ‖δ‖ clamped to
   4 ‖W k‖; the loop stops once the loss is below 0.05. v* = W k* + δ;
3. the closed form: W' = W + (v* − W k*) (C⁻¹ k*)ᵀ / (k*ᵀ C⁻¹ k*), with C = E[k kᵀ] over a
   corpus (stats.py). It stores v* at k* exactly (W' k* = v*) and changes W least for the
   keys of ordinary text. The averaged k* is used in the update too, not the bare prompt's
   key: the "r-ROME" fix (Gupta et al. 2024) for the model collapse the mismatch causes.

Gemma's post-MLP RMSNorm: the MLP writes post_norm(W k) into the residual stream, so the
value that is optimised and stored is the `down_proj` OUTPUT before the norm. In the loop
δ is added there and the norm applied after it, as in the model; after the update
W' k* = W k* + δ exactly, the norm sees the same vector as in the loop, and the edited
model reproduces the optimised output at k* exactly (the norm is scale-invariant but not
linear, so adding δ after the norm would not be reproducible by any change of W).

Speed: nothing before layer L's MLP depends on δ, so the residual stream entering the
MLP of layer L is computed once; each step recomputes only the MLP output at layer L and
the blocks above it, and unembeds only the positions whose next token is scored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from factscope.edit.handle import mlp_of
from factscope.edit.request import (
    EditRequest,
    answer_ids,
    build_batch,
    context_templates,
    keys_at,
)
from factscope.edit.stats import KeyStats
from factscope.edit.target import DeltaResult, cached_delta, delta_settings
from factscope.errors import FactscopeError

if TYPE_CHECKING:
    from factscope.load import LoadedModel


# ---- hyperparameters ------------------------------------------------------------------------


@dataclass(frozen=True)
class ROMEHyperParams:
    """ROME's settings; the defaults are the authors' (hparams/ROME/gpt2-xl.json)."""

    layer: int | None = None  # None: the caller picks (the CLI: the causal trace's peak)
    v_num_grad_steps: int = 20
    v_lr: float = 0.5
    v_weight_decay: float = 0.5
    clamp_norm_factor: float = 4.0
    kl_factor: float = 0.0625
    early_stop_loss: float = 5e-2
    context_template_lengths: tuple[tuple[int, int], ...] = ((5, 10), (10, 10))  # (tokens, count)
    context_top_k: int = 5
    kl_prompt: str = "{} is a"
    mom2_adjustment: bool = True  # False: C = I
    stats_tokens: int = 100_000
    corpus: str = "self"  # the model's own text (corpus.py) or a file
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- the rank-one update --------------------------------------------------------------------


def rank_one_update(
    W: Tensor, key: Tensor, value: Tensor, stats: KeyStats | None
) -> tuple[Tensor, Tensor]:
    """ROME's closed form for W (D, F): the smallest change (in C's metric) with W' k = v.

    Returns (Λ, u) with ΔW = Λ uᵀ: u = C⁻¹k / (kᵀC⁻¹k), Λ = v − W k; both float64.
    `stats` None means C = I."""
    k = key.double().reshape(-1)
    if stats is None:
        c_inv_k = k.clone()
    else:
        C = stats.moment.to(k.device)
        try:
            c_inv_k = torch.linalg.solve(C, k)
        except RuntimeError:
            raise FactscopeError(
                f"the key statistics of layer {stats.layer} are singular; "
                "compute them over more tokens"
            ) from None
    u = c_inv_k / (c_inv_k @ k)
    lam = value.double().reshape(-1) - W.double() @ k
    return lam, u


@dataclass
class ROMEResult:
    """What one ROME edit computed (plain data through `to_dict`)."""

    request: EditRequest
    layer: int
    key: Tensor  # k* (F,)
    value: Tensor  # v* (D,)
    lam: Tensor  # (D,)
    u: Tensor  # (F,)
    optimisation: DeltaResult
    n_contexts: int
    hparams: ROMEHyperParams

    @property
    def delta_weight(self) -> Tensor:
        """ΔW = Λ uᵀ, (D, F) float64."""
        return torch.outer(self.lam, self.u)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "rome",
            "request": dataclasses.asdict(self.request),
            "layer": self.layer,
            "n_contexts": self.n_contexts,
            "steps": self.optimisation.steps,
            "losses": self.optimisation.losses,
            "delta_norm": float(self.optimisation.delta.norm()),
            "init_norm": self.optimisation.init_norm,
            "update_norm": float(self.lam.norm() * self.u.norm()),
            "hparams": self.hparams.to_dict(),
        }

    def _repr_html_(self) -> str:
        from factscope.report.edit_html import result_html

        return result_html(self.to_dict())


def compute_rome(
    lm: LoadedModel,
    request: EditRequest,
    layer: int,
    stats: KeyStats | None,
    hparams: ROMEHyperParams = ROMEHyperParams(),
) -> ROMEResult:
    """Compute (not apply) ROME's rank-one update of layer `layer`'s down_proj."""
    request.check()
    model, tok = lm.model, lm.tokenizer
    if not 0 <= layer < model.cfg.n_layers:
        raise FactscopeError(
            f"layer {layer} is out of range; this model has layers 0..{model.cfg.n_layers - 1}"
        )
    contexts = context_templates(
        model, tok, hparams.context_template_lengths, hparams.context_top_k, hparams.seed
    )
    target = answer_ids(tok, request.prompt, request.new)
    batch = build_batch(
        tok, contexts, request.prompt, request.subject, target, [hparams.kl_prompt], model.device
    )
    k_star = keys_at(model, batch, layer)[: batch.n_rewrite].mean(0)  # (F,)
    result = cached_delta(model, batch, layer, "mlp_down", delta_settings(hparams))
    W = mlp_of(model, layer).down_proj.weight.detach()
    with torch.no_grad():
        v_star = W.float() @ k_star.float() + result.delta  # the value to store at k*
    lam, u = rank_one_update(W, k_star, v_star, stats if hparams.mom2_adjustment else None)
    return ROMEResult(request, layer, k_star, v_star, lam, u, result, len(contexts), hparams)
