"""The sparse dictionary: an encoder to many sparse latents and a decoder back.

    latents = act((x - b_dec·[apply_b_dec_to_input]) @ W_enc + b_enc)   (N, d_sae)
    x_hat   = latents @ W_dec + b_dec                                    (N, d_out)

An SAE reconstructs its input (d_out = d_in); a transcoder reads an MLP's input and
predicts the MLP's output, so its latents stand in for the MLP's neurons (Dunefsky et al.
2024). Each row of W_dec is a latent's direction in the output space. The activation:

    topk      keep the k largest pre-activations (ReLU'd), zero the rest (Gao et al. 2024)
    jumprelu  z * [z > threshold], the threshold learned through a straight-through
              estimator, with an L0 penalty (Rajamanoharan et al. 2024; Gemma Scope)
    relu      ReLU with an L1 penalty on latents x decoder norms (Anthropic, 2023-24)

Weights use SAELens's names and shapes: W_enc (d_in, d_sae), b_enc (d_sae,), W_dec
(d_sae, d_out), b_dec (d_out,), threshold (d_sae,). Training runs on activations divided
by a scalar (`in_scale`, `out_scale`: the inputs' mean norm over sqrt(d)), which
`fold_scales` multiplies back into the weights before saving.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from factscope.errors import FactscopeError

Kind = Literal["topk", "jumprelu", "relu"]
KINDS: tuple[str, ...] = ("topk", "jumprelu", "relu")


@dataclass(frozen=True)
class SAEConfig:
    """What a dictionary is and where it reads (saved as SAELens's cfg.json fields)."""

    d_in: int
    d_sae: int
    kind: str = "topk"
    k: int = 32  # topk: active latents per token
    d_out: int | None = None  # None: an SAE (d_out = d_in); set for a transcoder
    transcoder: bool = False
    apply_b_dec_to_input: bool = True
    layer: int = 0
    site: str = "resid"  # resid | mlp-out (SAE) or mlp-in -> mlp-out (transcoder)
    model: str = ""
    jump_bandwidth: float = 0.05  # jumprelu: width of the straight-through rectangle

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FactscopeError(f"unknown SAE kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.kind == "topk" and not 1 <= self.k <= self.d_sae:
            raise FactscopeError(
                f"--k must be between 1 and --latents ({self.d_sae}), got {self.k}"
            )

    @property
    def out_dim(self) -> int:
        return self.d_in if self.d_out is None else self.d_out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEConfig:
        known = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        return cls(**known)


class _JumpReLU(torch.autograd.Function):
    """z * [z > θ]: the usual gradient in z, a rectangle-kernel estimate in θ."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return z * (z > threshold)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        near = ((z - threshold).abs() < eps / 2).to(z.dtype)
        grad_z = grad * (z > threshold)
        grad_t = (-(threshold / eps) * near * grad).sum(0)
        return grad_z, grad_t, None


class _Step(torch.autograd.Function):
    """[z > θ], the L0 count: zero gradient in z, a rectangle-kernel estimate in θ."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        near = ((z - threshold).abs() < eps / 2).to(z.dtype)
        return None, (-(1.0 / eps) * near * grad).sum(0), None


def _code_pattern(indices: Tensor, values: Tensor, d_sae: int) -> Tensor:
    """The sparse code (N, d_sae) as a CSR matrix: row n holds `values[n]` (N, k) at the
    latents `indices[n]` (N, k, no repeats; a sampled product needs no order)."""
    n, k = indices.shape
    crow = torch.arange(0, n * k + 1, k, device=indices.device)
    with warnings.catch_warnings():  # torch calls its CSR support "beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            crow, indices.reshape(-1), values.reshape(-1), (n, d_sae), check_invariants=False
        )


def _code_pattern_t(indices: Tensor, values: Tensor, d_sae: int) -> Tensor:
    """The transposed code (d_sae, N) as a CSR matrix: row i holds the tokens that chose
    latent i. Built by a stable argsort of int32 ids (torch sorts int64 ids of this small
    range ~200x slower, and a transposed CSR product sorts them that way)."""
    n, k = indices.shape
    flat = indices.reshape(-1)
    order = flat.to(torch.int32).argsort(stable=True)
    crow = torch.zeros(d_sae + 1, dtype=torch.int64, device=indices.device)
    crow[1:] = torch.bincount(flat, minlength=d_sae).cumsum(0)
    with warnings.catch_warnings():  # torch calls its CSR support "beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            crow, order // k, values.reshape(-1)[order], (d_sae, n), check_invariants=False
        )


class _ChosenPreActs(torch.autograd.Function):
    """values[n, j] = (x @ W_enc + b_enc)[n, indices[n, j]], read from the dense `pre`
    computed once to choose the latents; its backward touches only the k chosen latents
    of each token (2 x N x k x d_in FLOPs per gradient instead of 2 x N x d_sae x d_in)."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, W_enc: Tensor, b_enc: Tensor, pre: Tensor, indices: Tensor
    ) -> Tensor:
        ctx.save_for_backward(x, W_enc, indices)
        return pre.gather(1, indices)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor, Tensor, None, None]:
        x, W_enc, indices = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        grad_x = None
        if ctx.needs_input_grad[0]:  # (N, d_in): sum_j grad[n, j] W_enc[:, indices[n, j]]
            grad_x = F.embedding_bag(
                indices, W_enc.T.contiguous(), per_sample_weights=grad, mode="sum"
            )
        grad_w = (_code_pattern_t(indices, grad, d_sae) @ x).T.contiguous()  # (d_in, d_sae)
        grad_b = torch.zeros(d_sae, device=grad.device).index_add_(
            0, indices.reshape(-1), grad.reshape(-1)
        )
        return grad_x, grad_w, grad_b, None, None


class _SparseDecode(torch.autograd.Function):
    """sum_j values[n, j] W_dec[indices[n, j]]: the decoder on a k-sparse code, as an
    embedding bag (2 x N x k x d_out FLOPs instead of 2 x N x d_sae x d_out); the
    backward is a sampled product for the values and a sparse product for W_dec."""

    @staticmethod
    def forward(ctx: Any, values: Tensor, indices: Tensor, W_dec: Tensor) -> Tensor:
        ctx.save_for_backward(values, indices, W_dec)
        return F.embedding_bag(indices, W_dec, per_sample_weights=values, mode="sum")

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, Tensor]:
        values, indices, W_dec = ctx.saved_tensors
        d_sae = W_dec.shape[0]
        pattern = _code_pattern(indices, torch.ones_like(values), d_sae)
        grad_values = torch.sparse.sampled_addmm(pattern, grad, W_dec.T, beta=0.0)
        grad_w = _code_pattern_t(indices, values, d_sae) @ grad  # (d_sae, d_out)
        return grad_values.values().view_as(values), None, grad_w


def sparse_topk(pre: Tensor, k: int) -> Tensor:
    """The latents (N, k) of each row's k largest pre-activations."""
    return pre.topk(k, dim=-1, sorted=False).indices


class SparseDictionary(nn.Module):
    """An SAE or a transcoder (see the module docstring)."""

    in_scale: Tensor
    out_scale: Tensor

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d_in, d_sae, d_out = cfg.d_in, cfg.d_sae, cfg.out_dim
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_out))
        self.b_dec = nn.Parameter(torch.zeros(d_out))
        # jumprelu's per-latent threshold (scaled units); unused by the other kinds
        self.threshold = nn.Parameter(
            torch.full((d_sae,), 0.001 if cfg.kind == "jumprelu" else 0.0)
        )
        self.register_buffer("in_scale", torch.ones(()))
        self.register_buffer("out_scale", torch.ones(()))

    def init_weights(self, seed: int = 0, b_dec: Tensor | None = None) -> None:
        """Decoder rows random unit vectors, encoder their transpose (tied init), b_dec
        the data's centre if given (in the scaled units)."""
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            w = torch.randn(self.cfg.d_sae, self.cfg.out_dim, generator=gen)
            self.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
            if self.cfg.d_in == self.cfg.out_dim:
                self.W_enc.copy_(self.W_dec.T)
            else:
                v = torch.randn(self.cfg.d_in, self.cfg.d_sae, generator=gen)
                self.W_enc.copy_(v / v.norm(dim=0, keepdim=True))
            self.b_enc.zero_()
            if b_dec is not None:
                self.b_dec.copy_(b_dec)

    def encoder_input(self, x: Tensor) -> Tensor:
        """(N, d_in) model units -> what the encoder multiplies, in the scaled units."""
        x = x / self.in_scale
        if self.cfg.apply_b_dec_to_input and not self.cfg.transcoder:
            x = x - self.b_dec
        return x

    def pre_acts(self, x: Tensor) -> Tensor:
        """(N, d_in) -> (N, d_sae) pre-activations, in the scaled units."""
        return self.encoder_input(x) @ self.W_enc + self.b_enc

    def activate(self, pre: Tensor) -> Tensor:
        """Pre-activations -> sparse latents (N, d_sae)."""
        kind = self.cfg.kind
        if kind == "topk":
            values, indices = pre.topk(self.cfg.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, indices, values.relu())
        if kind == "jumprelu":
            if torch.is_grad_enabled() and self.threshold.requires_grad:
                return _JumpReLU.apply(pre, self.threshold, self.cfg.jump_bandwidth)
            return pre * (pre > self.threshold)
        return pre.relu()

    def encode(self, x: Tensor) -> Tensor:
        """Input activations (N, d_in) -> latents (N, d_sae), in the scaled units."""
        return self.activate(self.pre_acts(x))

    def decode(self, latents: Tensor) -> Tensor:
        """Latents (N, d_sae) -> the reconstruction (N, d_out) in the model's units."""
        return (latents @ self.W_dec + self.b_dec) * self.out_scale

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def clamp_threshold(self) -> None:
        """jumprelu thresholds stay positive (a latent at 0 would fire on any positive z)."""
        if self.cfg.kind == "jumprelu":
            self.threshold.clamp_(min=1e-6)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Every latent's decoder direction (row of W_dec) back to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Drop the part of W_dec's gradient along each row, which would only change its
        norm (undone by `normalize_decoder` anyway; Bricken et al. 2023)."""
        if self.W_dec.grad is None:
            return
        w = self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.W_dec.grad.sub_((self.W_dec.grad * w).sum(1, keepdim=True) * w)

    def fold_scales(self) -> SparseDictionary:
        """The same map on the model's raw activations with in_scale = out_scale = 1."""
        out = SparseDictionary(self.cfg)
        c_in, c_out = float(self.in_scale), float(self.out_scale)
        with torch.no_grad():
            out.W_enc.copy_(self.W_enc / c_in)
            out.b_enc.copy_(self.b_enc)
            out.W_dec.copy_(self.W_dec * c_out)
            out.b_dec.copy_(self.b_dec * c_out)
            out.threshold.copy_(self.threshold)
        if self.cfg.apply_b_dec_to_input and not self.cfg.transcoder and c_in != c_out:
            raise FactscopeError("an SAE reads and writes one space; its two scales must agree")
        return out

    def with_cfg(self, **changes: Any) -> SparseDictionary:
        out = SparseDictionary(replace(self.cfg, **changes))
        out.load_state_dict(self.state_dict())
        return out


@dataclass
class Losses:
    """One step's loss terms (scaled units; `mse` is per token, summed over dimensions)."""

    total: Tensor
    mse: Tensor
    sparsity: Tensor
    aux: Tensor
    l0: Tensor  # 0-dim: mean active latents per token (a tensor, so a step need not sync)
    fired: Tensor  # bool (d_sae,): the latents active on some token of the batch


def geometric_median(x: Tensor, iterations: int = 50, eps: float = 1e-6) -> Tensor:
    """The point minimising the sum of distances to the rows of x (N, D), by Weiszfeld's
    iterations from the mean; where Gao et al. start b_dec."""
    y = x.mean(0)
    for _ in range(iterations):
        w = 1.0 / (x - y).norm(dim=1).clamp_min(eps)
        y_next = (w[:, None] * x).sum(0) / w.sum()
        if (y_next - y).norm() < eps * y.norm().clamp_min(1.0):
            return y_next
        y = y_next
    return y


def dictionary_loss(
    sae: SparseDictionary,
    x: Tensor,
    target: Tensor,
    dead: Tensor | None = None,
    l1_coefficient: float = 5.0,
    l0_coefficient: float = 1e-3,
    aux_k: int | None = None,
    aux_coefficient: float = 1 / 32,
    n_dead: int | None = None,
    sparse: bool = True,
) -> Losses:
    """The training objective on a batch: x (N, d_in) the input, target (N, d_out) what
    to reconstruct (x itself for an SAE), both in the model's units.

    mse: ||target - x_hat||² per token (scaled units), normalised by the target's variance
    so that it reads as the fraction of variance unexplained. topk adds AuxK (Gao et al.):
    the k_aux largest pre-activations of the dead latents (`dead`, bool (d_sae,)) reconstruct
    the residual error, so dead latents get a gradient. jumprelu adds l0_coefficient x L0;
    relu adds l1_coefficient x sum(latent x ||W_dec row||).

    topk trains on the k-sparse code itself (`sparse`, see `_topk_loss`); `sparse=False`
    computes the same loss through dense (N, d_sae) latents, the reference it is tested
    against. `n_dead` is dead.sum() when the caller already knows it.
    """
    kind = sae.cfg.kind
    if kind == "topk" and sparse:
        return _topk_loss(sae, x, target, dead, aux_k, aux_coefficient, n_dead)
    pre = sae.pre_acts(x)
    latents = sae.activate(pre)
    t = target / sae.out_scale
    recon = latents @ sae.W_dec + sae.b_dec
    variance = (t - t.mean(0)).pow(2).sum(1).mean().clamp_min(1e-12)
    err = t - recon
    mse = err.pow(2).sum(1).mean() / variance
    zero = torch.zeros((), device=x.device)
    sparsity, aux = zero, zero
    if kind == "relu":
        sparsity = (
            l1_coefficient
            * (latents * sae.W_dec.norm(dim=1)).sum(1).mean()
            / math.sqrt(sae.cfg.out_dim)
        )
    elif kind == "jumprelu":
        sparsity = (
            l0_coefficient * _Step.apply(pre, sae.threshold, sae.cfg.jump_bandwidth).sum(1).mean()
        )
    elif dead is not None and bool(dead.any()):
        k_aux = min(aux_k or sae.cfg.out_dim // 2, int(dead.sum()))
        dead_pre = pre.masked_fill(~dead, float("-inf"))
        values, indices = dead_pre.topk(k_aux, dim=-1)
        aux_latents = torch.zeros_like(pre).scatter(-1, indices, values.relu())
        aux_recon = aux_latents @ sae.W_dec
        aux = aux_coefficient * (err.detach() - aux_recon).pow(2).sum(1).mean() / variance
    active = latents.detach() > 0
    l0 = active.sum(1).float().mean()
    return Losses(mse + sparsity + aux, mse, sparsity, aux, l0, active.any(0))


def _topk_loss(
    sae: SparseDictionary,
    x: Tensor,
    target: Tensor,
    dead: Tensor | None,
    aux_k: int | None,
    aux_coefficient: float,
    n_dead: int | None,
) -> Losses:
    """`dictionary_loss` for topk without any (N, d_sae) latents: the encoder's dense
    product runs once, without a graph, to choose each token's k latents; the chosen
    pre-activations, the decoder and every gradient then cost N x k x d, not N x d_sae x d
    (`_ChosenPreActs`, `_SparseDecode`). AuxK chooses among the dead latents the same way."""
    x_in = sae.encoder_input(x)  # (N, d_in)
    with torch.no_grad():
        pre = x_in @ sae.W_enc + sae.b_enc  # (N, d_sae), only to choose
    indices = sparse_topk(pre, sae.cfg.k)  # (N, k)
    values = _ChosenPreActs.apply(x_in, sae.W_enc, sae.b_enc, pre, indices).relu()
    t = target / sae.out_scale
    recon = _SparseDecode.apply(values, indices, sae.W_dec) + sae.b_dec  # (N, d_out)
    variance = (t - t.mean(0)).pow(2).sum(1).mean().clamp_min(1e-12)
    err = t - recon
    mse = err.pow(2).sum(1).mean() / variance
    zero = torch.zeros((), device=x.device)
    aux = zero
    if dead is not None:
        n_dead = int(dead.sum()) if n_dead is None else n_dead
        if n_dead > 0:
            k_aux = min(aux_k or sae.cfg.out_dim // 2, n_dead)
            aux_indices = sparse_topk(pre.masked_fill(~dead, float("-inf")), k_aux)
            aux_values = _ChosenPreActs.apply(x_in, sae.W_enc, sae.b_enc, pre, aux_indices).relu()
            aux_recon = _SparseDecode.apply(aux_values, aux_indices, sae.W_dec)
            aux = aux_coefficient * (err.detach() - aux_recon).pow(2).sum(1).mean() / variance
    active = values.detach() > 0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=x.device)
    fired[indices[active]] = True
    l0 = active.sum(1).float().mean()
    return Losses(mse + aux, mse, zero, aux, l0, fired)
