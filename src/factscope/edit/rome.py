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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from factscope.edit.fingerprint import model_identity
from factscope.edit.handle import mlp_of
from factscope.edit.stats import KeyStats
from factscope.errors import FactscopeError
from factscope.generate import Sampling, pick_token
from factscope.hooks import hooks
from factscope.model import KVCache, Transformer

if TYPE_CHECKING:
    from factscope.load import LoadedModel
    from factscope.tokenizer import Tokenizer

Injection = Literal["mlp_down", "resid"]


# ---- what to edit ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EditRequest:
    """One fact to rewrite: `prompt` mentions `subject` and should continue with `new`.

    `new` and `old` are answers as a person types them ("baseball"); `target_text` adds the
    tokenizer's leading space when the prompt does not end in one."""

    prompt: str
    subject: str
    new: str
    old: str | None = None
    id: str = ""

    def check(self) -> None:
        if not self.subject.strip():
            raise FactscopeError("the subject is empty; give the words of the prompt it names")
        if self.subject not in self.prompt:
            raise FactscopeError(
                f"subject {self.subject!r} does not occur in prompt {self.prompt!r}; "
                "give it exactly as written in the prompt (case and spaces matter)"
            )
        if not self.new.strip():
            raise FactscopeError("the new answer is empty; give the answer to teach, e.g. baseball")
        if self.old is not None and self.new.strip() == self.old.strip():
            raise FactscopeError(
                f"the new answer {self.new.strip()!r} equals the old one; give a different answer"
            )


def target_text(prompt: str, answer: str) -> str:
    """The answer as the model would continue `prompt`: " baseball" after "... of"."""
    answer = answer.strip()
    return answer if prompt.endswith((" ", "\n")) else " " + answer


def answer_ids(tokenizer: Tokenizer, prompt: str, answer: str) -> list[int]:
    """Token ids of the answer as a continuation of the prompt (no BOS)."""
    ids = tokenizer.encode(target_text(prompt, answer), add_bos=False)
    if not ids:
        raise FactscopeError(f"answer {answer!r} encodes to no tokens; give some text")
    return ids


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


# ---- context prefixes -----------------------------------------------------------------------

_TEMPLATE_CACHE: dict[str, list[str]] = {}


@torch.inference_mode()
def context_templates(
    model: Transformer,
    tokenizer: Tokenizer,
    lengths: Sequence[tuple[int, int]] = ((5, 10), (10, 10)),
    top_k: int = 5,
    seed: int = 0,
) -> list[str]:
    """["{}"] + the model's own short texts, each followed by ". {}", as ROME makes them.

    For each (n, count) in `lengths`, `count` texts of n tokens sampled (top-k) from the start
    token alone (BOS, or EOS for checkpoints without one). Cached per model in this process,
    so every edit of a session, and every edit of an evaluation, uses the same prefixes."""
    key = f"{model_identity(model)}|{tuple(lengths)}|{top_k}|{seed}"
    if key in _TEMPLATE_CACHE:
        return list(_TEMPLATE_CACHE[key])
    start = tokenizer.bos_id if tokenizer.bos_id is not None else model.cfg.eos_token_id
    start_ids = [start] if start is not None else tokenizer.encode("The", add_bos=False)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    sampling = Sampling(temperature=1.0, top_k=top_k)
    templates = ["{}"]
    for n, count in lengths:
        tokens = torch.tensor([start_ids] * count, device=model.device)  # (count, 1)
        kv = KVCache.empty(model.cfg.n_layers)
        step, new = tokens, []
        for _ in range(n):
            logits = model(step, kv_cache=kv, logits_at="last")[:, -1]  # (count, V)
            step = pick_token(logits, sampling, generator)[:, None]
            new.append(step)
        for row in torch.cat(new, dim=1).tolist():
            text = tokenizer.decode(row).replace("{", " ").replace("}", " ")
            for special in ("<bos>", "<eos>", "<|endoftext|>", "<|im_end|>", "<|im_start|>"):
                text = text.replace(special, " ")
            templates.append(text.strip() + ". {}")
    _TEMPLATE_CACHE[key] = templates
    return list(templates)


# ---- batched prompts ------------------------------------------------------------------------


@dataclass
class PromptBatch:
    """Prompts as one right-padded batch (attention is causal, so padding after a prompt
    cannot change it). Rows 0..n_rewrite-1 are "context + prompt + answer[:-1]" and are
    scored on the answer's tokens; the rows after them are KL prompts."""

    tokens: Tensor  # (B, T)
    lookup: Tensor  # (B,) index of the subject's last token in each row
    target_rows: Tensor  # (N,) row of each scored position
    target_pos: Tensor  # (N,) position whose next token is scored
    target_ids: Tensor  # (N,) the token it should be
    n_rewrite: int
    lengths: list[int] = field(default_factory=list)


def build_batch(
    tokenizer: Tokenizer,
    contexts: Sequence[str],
    prompt: str,
    subject: str,
    answer: Sequence[int],
    kl_prompts: Sequence[str] = (),
    device: torch.device | str = "cpu",
) -> PromptBatch:
    """The rewriting rows (one per context template) and KL rows (subject formatted in)."""
    rows: list[list[int]] = []
    lookup: list[int] = []
    t_rows: list[int] = []
    t_pos: list[int] = []
    t_ids: list[int] = []
    for c, template in enumerate(contexts):
        text = template.format(prompt)
        ids = tokenizer.encode(text)
        lookup.append(tokenizer.find_subject_span(text, subject)[1] - 1)
        for j, a in enumerate(answer):
            t_rows.append(c)
            t_pos.append(len(ids) - 1 + j)
            t_ids.append(a)
        rows.append(ids + list(answer[:-1]))
    for template in kl_prompts:
        text = template.format(subject)
        rows.append(tokenizer.encode(text))
        lookup.append(tokenizer.find_subject_span(text, subject)[1] - 1)
    T = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
    return PromptBatch(
        tokens.to(device),
        torch.tensor(lookup, device=device),
        torch.tensor(t_rows, device=device),
        torch.tensor(t_pos, device=device),
        torch.tensor(t_ids, device=device),
        len(contexts),
        [len(r) for r in rows],
    )


@torch.no_grad()
def keys_at(model: Transformer, batch: PromptBatch, layer: int) -> Tensor:
    """The key (input of down_proj) at each row's subject's last token, (B, F)."""
    cache: dict[str, Tensor] = {}

    def record(x: Tensor, site: str) -> None:
        cache["k"] = x

    positions = torch.arange(batch.tokens.shape[1], device=model.device)
    with hooks(model, {f"blocks.{layer}.mlp.post": record}):
        model.run_blocks(model.embed_tokens(batch.tokens), positions, stop=layer + 1)
    rows = torch.arange(batch.tokens.shape[0], device=model.device)
    return cache["k"][rows, batch.lookup]


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
    n_steps: int,
    lr: float,
    weight_decay: float,
    clamp_norm_factor: float,
    kl_factor: float,
    early_stop_loss: float,
) -> DeltaResult:
    """Optimise a vector δ added at every row's subject's last token in `layer` so the
    rewriting rows predict their targets (ROME's compute_v, MEMIT's compute_z).

    injection "mlp_down": δ is added to the output of down_proj (before Gemma's post-norm);
    "resid": to the block's output (the residual stream), as MEMIT does. Only the blocks
    from `layer` up are recomputed per step and only scored positions are unembedded."""
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
        if loss.item() < early_stop_loss or it == n_steps - 1:
            break
        (grad,) = torch.autograd.grad(loss, [delta])
        opt.step(grad)
        with torch.no_grad():
            if delta.norm() > max_norm:
                delta.mul_(max_norm / delta.norm())
    return DeltaResult(delta.detach().clone(), float(init.norm()), losses, steps)


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
    result = optimise_delta(
        model, batch, layer, "mlp_down", hparams.v_num_grad_steps, hparams.v_lr,
        hparams.v_weight_decay, hparams.clamp_norm_factor, hparams.kl_factor,
        hparams.early_stop_loss,
    )  # fmt: skip
    W = mlp_of(model, layer).down_proj.weight.detach()
    with torch.no_grad():
        v_star = W.float() @ k_star.float() + result.delta  # the value to store at k*
    lam, u = rank_one_update(W, k_star, v_star, stats if hparams.mom2_adjustment else None)
    return ROMEResult(request, layer, k_star, v_star, lam, u, result, len(contexts), hparams)
