"""The target of an edit: the vector δ that, added at the subject's last token of one layer,
makes the model say the new answer (ROME's v*, `compute_v`; MEMIT's z, `compute_z`).

δ is optimised (Adam, lr 0.5, 20 steps by default) to maximise p(new answer) after each
context prefix, with ROME's KL term keeping the distribution at the subject's last token of
"{subject} is a" in place, a weight decay ‖δ‖/‖value‖², and ‖δ‖ clamped to a multiple of the
value's norm; the loop stops once the loss is below the early-stop loss.

Speed: nothing before the injection point depends on δ, so everything below it is computed
once (`layer_start`); each step recomputes only the positions from each row's subject token
on, in the blocks above the layer, and unembeds only the positions whose next token is scored.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from factscope.edit.fingerprint import weights_fingerprint
from factscope.edit.handle import mlp_of
from factscope.edit.request import PromptBatch
from factscope.hooks import hooks
from factscope.model import KVCache, Transformer

Injection = Literal["mlp_down", "resid"]


# ---- v*: the optimisation -------------------------------------------------------------------


class Adam:
    """torch.optim.Adam's update (betas 0.9, 0.999, eps 1e-8, bias-corrected) for one tensor.

    Written out because importing torch.optim pulls in torch._dynamo (seconds)."""

    def __init__(self, param: Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999)):
        self.param, self.lr, self.betas, self.eps, self.t = param, lr, betas, 1e-8, 0
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)

    @torch.no_grad()
    def step(self, grad: Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        self.param.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))


@dataclass(frozen=True)
class DeltaSettings:
    """How δ is optimised: Adam for `n_steps` at `lr`, the weight decay, the clamp on ‖δ‖ (a
    multiple of the value's norm), the KL term's weight and the loss that stops early."""

    n_steps: int
    lr: float
    weight_decay: float
    clamp_norm_factor: float
    kl_factor: float
    early_stop_loss: float


class TargetHyperParams(Protocol):
    """What ROME's and MEMIT's hyperparameters say about the target (ROME's `v_*` names)."""

    @property
    def v_num_grad_steps(self) -> int: ...
    @property
    def v_lr(self) -> float: ...
    @property
    def v_weight_decay(self) -> float: ...
    @property
    def clamp_norm_factor(self) -> float: ...
    @property
    def kl_factor(self) -> float: ...
    @property
    def early_stop_loss(self) -> float: ...


def delta_settings(hparams: TargetHyperParams) -> DeltaSettings:
    """The target's settings out of a method's hyperparameters."""
    return DeltaSettings(
        hparams.v_num_grad_steps, hparams.v_lr, hparams.v_weight_decay,
        hparams.clamp_norm_factor, hparams.kl_factor, hparams.early_stop_loss,
    )  # fmt: skip


@dataclass
class DeltaResult:
    """The optimised δ and how the optimisation went."""

    delta: Tensor  # (D,)
    init_norm: float  # ‖value at the bare prompt's subject token‖ (‖W k‖ or ‖h‖)
    losses: list[dict[str, float]]  # per step: loss, nll, kl, weight_decay, p_new
    steps: int


@dataclass
class LayerStart:
    """What the optimisation loop reuses: everything that δ cannot change.

    δ enters at each row's subject's last token (its "lookup" position), so positions
    before it are the clean run's at every layer: their keys and values above `layer` are
    kept, and each step recomputes only the positions from the lookup on. Rows sharing a
    lookup position form one group (one batched forward per group)."""

    injection: Injection
    base: Tensor  # (B, T, D) the value δ is added to: down_proj output, or block output
    resid_mid: Tensor  # (B, T, D) residual entering layer's MLP
    keys: list[Tensor | None]  # per layer, (B, K, T, dh) clean keys (layers above `layer`)
    values: list[Tensor | None]
    groups: list[tuple[Tensor, int]]  # (rows, lookup position)


@torch.no_grad()
def layer_start(
    model: Transformer, batch: PromptBatch, layer: int, injection: Injection
) -> LayerStart:
    """Run the batch once (clean), keeping what `forward_from_layer` reuses."""
    B, T = batch.tokens.shape
    positions = torch.arange(T, device=model.device)
    cache: dict[str, Tensor] = {}

    def record(x: Tensor, site: str) -> None:
        cache[site.split(".", 2)[2]] = x

    sites = [f"blocks.{layer}.{s}" for s in ("resid_mid", "mlp.post", "resid_post")]
    kv = KVCache.empty(model.cfg.n_layers)
    with hooks(model, {s: record for s in sites}):
        model.run_blocks(model.embed_tokens(batch.tokens), positions, kv_cache=kv)
    if injection == "mlp_down":
        base = mlp_of(model, layer).down_proj(cache["mlp.post"])  # before the post-norm
    else:
        base = cache["resid_post"]
    lookups = batch.lookup.tolist()
    groups = [
        (torch.tensor([r for r in range(B) if lookups[r] == p], device=model.device), p)
        for p in sorted(set(lookups))
    ]
    return LayerStart(injection, base, cache["resid_mid"], kv.keys, kv.values, groups)


def forward_from_layer(
    model: Transformer, batch: PromptBatch, layer: int, start: LayerStart, delta: Tensor
) -> Tensor:
    """The final residual stream (B, T, D) with δ added at every row's subject's last token,
    recomputing only the positions from that token on, from `layer`'s MLP output (for
    "mlp_down") or its block output ("resid") upward; positions before it are left zero
    (they are never scored)."""
    B, T = batch.tokens.shape
    out = torch.zeros(B, T, model.cfg.d_model, device=model.device, dtype=start.base.dtype)
    mlp = mlp_of(model, layer)
    for rows, p in start.groups:
        shifted = start.base[rows, p:].clone()  # (R, T - p, D)
        shifted[:, 0] = shifted[:, 0] + delta.to(shifted.dtype)
        if start.injection == "mlp_down":
            y = shifted if mlp.post_norm is None else mlp.post_norm(shifted)
            h = start.resid_mid[rows, p:] + mlp.out(y)
        else:
            h = shifted
        kv = KVCache.empty(model.cfg.n_layers)
        for j in range(layer + 1, model.cfg.n_layers):
            keys, values = start.keys[j], start.values[j]
            assert keys is not None and values is not None
            kv.keys[j], kv.values[j] = keys[rows, :, :p], values[rows, :, :p]
        positions = torch.arange(p, T, device=model.device)
        out[rows, p:] = model.run_blocks(h, positions, start=layer + 1, kv_cache=kv)
    return out


def row_means(values: Tensor, batch: PromptBatch) -> Tensor:
    """Mean of per-scored-position values over each rewriting row's positions, (n_rewrite,)."""
    n = batch.n_rewrite
    sums = torch.zeros(n, device=values.device, dtype=values.dtype).index_add(
        0, batch.target_rows, values
    )
    return sums / torch.bincount(batch.target_rows, minlength=n).clamp(min=1)


def optimise_delta(
    model: Transformer,
    batch: PromptBatch,
    layer: int,
    injection: Injection,
    settings: DeltaSettings,
) -> DeltaResult:
    """Optimise a vector δ added at every row's subject's last token in `layer` so the
    rewriting rows predict their targets (ROME's compute_v, MEMIT's compute_z).

    injection "mlp_down": δ is added to the output of down_proj (before Gemma's post-norm);
    "resid": to the block's output (the residual stream), as MEMIT does. Only the blocks
    from `layer` up are recomputed per step and only scored positions are unembedded."""
    n_steps, lr, weight_decay = settings.n_steps, settings.lr, settings.weight_decay
    clamp_norm_factor, kl_factor = settings.clamp_norm_factor, settings.kl_factor
    B = batch.tokens.shape[0]
    start = layer_start(model, batch, layer, injection)
    init = start.base[0, batch.lookup[0]].detach().float()  # the bare prompt's value
    delta = torch.zeros(model.cfg.d_model, device=model.device, requires_grad=True)
    opt = Adam(delta, lr)
    max_norm = clamp_norm_factor * init.norm()
    kl_init: Tensor | None = None
    kl_rows = torch.arange(batch.n_rewrite, B, device=model.device)
    losses: list[dict[str, float]] = []
    steps = 0
    for it in range(n_steps):
        h = forward_from_layer(model, batch, layer, start, delta)  # (B, T, D)
        scored = h[batch.target_rows, batch.target_pos]  # (N, D)
        log_p = torch.log_softmax(model.unembed_residual(scored[None])[0].float(), dim=-1)
        nll_each = -log_p.gather(1, batch.target_ids[:, None])[:, 0]  # (N,)
        per_row = row_means(nll_each, batch)  # CounterFact's length-normalised NLL per row
        nll = per_row.mean()
        kl = torch.zeros((), device=model.device)
        if len(kl_rows) and kl_factor:
            kl_h = h[kl_rows, batch.lookup[kl_rows]]  # (K, D) at the subject's last token
            kl_log = torch.log_softmax(model.unembed_residual(kl_h[None])[0].float(), dim=-1)
            if kl_init is None:
                kl_init = kl_log.detach().clone()
            # KL(current ‖ initial), as ROME's F.kl_div(init, current, log_target=True)
            kl = kl_factor * F.kl_div(kl_init, kl_log, log_target=True, reduction="batchmean")
        wd = weight_decay * delta.norm() / init.norm() ** 2
        loss = nll + kl + wd
        losses.append(
            {
                "loss": loss.item(),
                "nll": nll.item(),
                "kl": kl.item(),
                "weight_decay": wd.item(),
                "p_new": torch.exp(-per_row.detach()).mean().item(),
            }
        )
        steps = it + 1
        if loss.item() < settings.early_stop_loss or it == n_steps - 1:
            break
        (grad,) = torch.autograd.grad(loss, [delta])
        opt.step(grad)
        with torch.no_grad():
            if delta.norm() > max_norm:
                delta.mul_(max_norm / delta.norm())
    return DeltaResult(delta.detach().clone(), float(init.norm()), losses, steps)


# ---- reusing targets across runs ------------------------------------------------------------

TARGET_FORMAT = 1  # bump when what is saved, or how it is computed, changes


def target_cache_dir() -> Path:
    from factscope.weights.cache import cache_root

    return cache_root() / "edit-targets"


def cached_delta(
    model: Transformer,
    batch: PromptBatch,
    layer: int,
    injection: Injection,
    settings: DeltaSettings,
    *,
    fingerprint: str | None = None,
    use_cache: bool = True,
) -> DeltaResult:
    """`optimise_delta`, remembered on disk (`$FACTSCOPE_CACHE/edit-targets/`), as MEMIT's
    code caches its z per case: a λ sweep, MEMIT then AlphaEdit on the same facts, or a
    rerun of an evaluation optimises each target once.

    The key covers everything δ depends on: the weights (`weights_fingerprint`, so an
    edited model, as in sequential editing, never reuses the unedited one's targets), the
    batch's tokens, subject positions and scored tokens (prompt, prefixes, answer, KL
    prompts), the layer, the injection point and the optimiser's settings.
    `fingerprint`: the weights' digest when the caller already has it (it costs ~0.1 s)."""
    if not use_cache:
        return optimise_delta(model, batch, layer, injection, settings)
    if fingerprint is None:
        fingerprint = weights_fingerprint(model)
    h = hashlib.sha256(
        f"v{TARGET_FORMAT}|{fingerprint}|{layer}|{injection}|{astuple(settings)}".encode()
    )
    for t in (batch.tokens, batch.lookup, batch.target_rows, batch.target_pos, batch.target_ids):
        h.update(t.cpu().numpy().tobytes())
    h.update(repr((batch.n_rewrite, batch.lengths)).encode())
    path = target_cache_dir() / f"{h.hexdigest()[:32]}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        return DeltaResult(
            saved["delta"].to(model.device), float(saved["init_norm"]), list(saved["losses"]),
            int(saved["steps"]),
        )  # fmt: skip
    result = optimise_delta(model, batch, layer, injection, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(
        {
            "delta": result.delta.cpu(),
            "init_norm": result.init_norm,
            "losses": result.losses,
            "steps": result.steps,
        },
        tmp,
    )
    tmp.replace(path)
    return result
