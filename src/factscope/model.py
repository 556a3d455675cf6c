"""The transformer: one readable forward pass for every supported family.

    tokens -> embed -> [block] x n_layers -> final norm -> unembed -> logits
    block:  resid_pre -> norm -> attention -> (post-norm) -> attn.out -> + -> resid_mid
            resid_mid -> norm -> gated MLP  -> (post-norm) -> mlp.out  -> + -> resid_post

Every activation passes through a named `HookPoint` (see hooks.py), e.g.
`blocks.7.mlp.post` is the activation of block 7's MLP neurons. What differs between
families (GELU vs SiLU, post-norms, QK-norm, embedding scale, sliding-window layers) is
read from `ModelConfig`; checkpoints are converted to this layout when loaded.

Shapes: B batch, T new tokens, S all attended tokens (past + new), D d_model,
H query heads, K key/value heads, dh d_head, F d_mlp, V vocab.
"""

from __future__ import annotations

import functools
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from factscope.config import ModelConfig
from factscope.hooks import HookPoint, name_hook_points

LogitsAt = Literal["all", "last"]


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 (the weight is the full multiplier:
    Gemma's stored `w` is converted to `1 + w` at load time)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # F.rms_norm is x * rsqrt(mean(x^2) + eps) * weight in one kernel
        normed = F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps)
        return normed.to(x.dtype)


class Linear(nn.Linear):
    """nn.Linear (x @ W^T + b), computed by oneDNN in float32 CPU inference.

    A next-token forward is little more than reading every weight once, so its speed is the
    rate at which the matrix-product kernel streams weights. torch's default float32 CPU
    kernel (MKL) reaches well under the memory rate on some CPUs (~40% on AMD Zen),
    oneDNN's, on the same dense weights, much closer (benchmarks/load_and_forward.py
    prints both). Same product, summed in another order: logits agree to ~1e-6 relative.
    oneDNN's op has no backward, so whenever autograd is recording, F.linear is used, except
    in training mode (`model.train()`, as `factscope train` runs), where `OneDNNLinear` gives
    it one made of the same kernel: training's matrix products are ~2/3 of a step, and
    oneDNN runs them ~2x faster than MKL here (benchmarks/train.py). Analysis gradients
    (attribution, ROME) run in eval mode and stay exactly F.linear's.
    """

    onednn = True  # set False to use F.linear everywhere (benchmarks compare the two)

    def forward(self, x: Tensor) -> Tensor:
        if self.onednn and _onednn_applies(x, self.weight):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [None], "")
        if self.onednn and self.training and _onednn_fits(x, self.weight):
            return OneDNNLinear.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


class OneDNNLinear(torch.autograd.Function):
    """x @ W^T + b and its gradients, each product computed by oneDNN's linear kernel.

    For y = x W^T (x: (M, K) rows, W: (N, K)): dx = dy W = linear(dy, W^T) and
    dW = dy^T x = linear(dy^T, x^T); oneDNN reads the transposed views without copying.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [None], "")

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        linear = torch.ops.mkldnn._linear_pointwise
        grad_rows = grad.reshape(-1, grad.shape[-1])  # (M, N)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = linear(grad, weight.t(), None, "none", [None], "")  # (..., K)
        if ctx.needs_input_grad[1]:
            x_rows = x.reshape(-1, x.shape[-1])  # (M, K)
            grad_w = linear(grad_rows.t(), x_rows.t(), None, "none", [None], "")  # (N, K)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_rows.sum(0)
        return grad_x, grad_w, grad_b


def _onednn_fits(x: Tensor, weight: Tensor) -> bool:
    """oneDNN can compute this product: float32 on a CPU that has it."""
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and x.numel() > 0
        and _onednn_available()
    )


def _onednn_applies(x: Tensor, weight: Tensor) -> bool:
    recording = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return not recording and _onednn_fits(x, weight)


@functools.cache
def _onednn_available() -> bool:
    """oneDNN's linear is in this torch build, on an x86 CPU, and computes F.linear."""
    if (
        platform.machine().lower() not in ("x86_64", "amd64")
        or not torch.backends.mkldnn.is_available()
    ):
        return False
    try:
        x = torch.arange(24.0).view(3, 8) / 7  # not torch.randn: leave the seeded RNG alone
        w = torch.arange(40.0).view(5, 8) / 11
        with torch.no_grad():
            got = torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [None], "")
        return bool(torch.allclose(got, F.linear(x, w), atol=1e-5))
    except (AttributeError, RuntimeError):
        return False


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, per layer: (B, K, S, dh) each."""

    keys: list[Tensor | None] = field(default_factory=list)
    values: list[Tensor | None] = field(default_factory=list)

    @classmethod
    def empty(cls, n_layers: int) -> KVCache:
        return cls([None] * n_layers, [None] * n_layers)

    def length(self, layer: int = 0) -> int:
        """How many tokens `layer` has cached (all layers agree between forward calls)."""
        k = self.keys[layer] if self.keys else None
        return 0 if k is None else k.shape[2]

    def extend(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this step's keys/values for `layer`; return all of them."""
        past_k, past_v = self.keys[layer], self.values[layer]
        if past_k is not None and past_v is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


def rotary_cos_sin(
    positions: Tensor, d_head: int, theta: float, scaling: float = 1.0
) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotation angles, (T, dh), in float32.

    Dimension i of the first half of a head is paired with dimension i + dh/2 and turned
    by the angle position * theta^(-2i/dh) (the "rotate half" convention).
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, d_head, 2, dtype=torch.int64).float() / d_head))
    inv_freq = inv_freq.to(positions.device) / scaling
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, dh/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, dh)
    return angles.cos(), angles.sin()


class RotaryTables:
    """`rotary_cos_sin` once per pass through the blocks instead of once per layer.

    Inside `one_pass()` (which `Transformer.run_blocks` opens) every block gets the same
    positions, so the tables are computed by the first layer of each base (local, global)
    and reused by the others. Outside a pass they are computed on every call. Per thread,
    so concurrent passes never see each other's tables.
    """

    def __init__(self) -> None:
        self.local = threading.local()

    @contextmanager
    def one_pass(self) -> Iterator[None]:
        outer = getattr(self.local, "tables", None)
        self.local.tables = {}
        try:
            yield
        finally:
            self.local.tables = outer

    def get(
        self, positions: Tensor, d_head: int, theta: float, scaling: float
    ) -> tuple[Tensor, Tensor]:
        tables: dict[tuple[int, float, float], tuple[Tensor, Tensor]] | None = getattr(
            self.local, "tables", None
        )
        if tables is None:
            return rotary_cos_sin(positions, d_head, theta, scaling)
        key = (d_head, theta, scaling)
        if key not in tables:
            tables[key] = rotary_cos_sin(positions, d_head, theta, scaling)
        return tables[key]


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each head of x (B, T, n, dh) by the angles of its position.

    The halves (x1, x2) become (x1 cos - x2 sin, x2 cos + x1 sin), computed as
    x * cos + roll(x, dh/2) * (-sin, sin): the same products as x * cos + (-x2, x1) * sin,
    bit for bit, with one roll in place of a negation and a concatenation (whose backward
    in training allocated and zero-filled two tensors).
    """
    half = x.shape[-1] // 2
    signed_sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)  # (T, dh)
    cos, signed_sin = cos[None, :, None, :].to(x.dtype), signed_sin[None, :, None, :].to(x.dtype)
    return x * cos + x.roll(half, dims=-1) * signed_sin


def attention_mask(
    q_positions: Tensor, k_positions: Tensor, window: int | None, device: torch.device
) -> Tensor:
    """True where query t may attend to key s: s <= t, and t - s < window if windowed. (T, S)"""
    distance = q_positions[:, None] - k_positions[None, :]
    allowed = distance >= 0
    if window is not None:
        allowed &= distance < window
    return allowed.to(device)


class Attention(nn.Module):
    """Multi-head attention with grouped key/value heads, rotary positions, optional QK-norm."""

    def __init__(self, cfg: ModelConfig, layer: int, rotary: RotaryTables | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.layer = layer
        H, K, dh, D = cfg.n_heads, cfg.n_kv_heads, cfg.d_head, cfg.d_model
        self.q_proj = Linear(D, H * dh, bias=False)
        self.k_proj = Linear(D, K * dh, bias=False)
        self.v_proj = Linear(D, K * dh, bias=False)
        self.o_proj = Linear(H * dh, D, bias=False)
        self.q_norm = RMSNorm(dh, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(dh, cfg.norm_eps) if cfg.qk_norm else None
        self.post_norm = RMSNorm(D, cfg.norm_eps) if cfg.post_norms else None
        self.window = cfg.sliding_window if cfg.is_local(layer) else None
        self.theta = cfg.rope_theta_local if cfg.is_local(layer) else cfg.rope_theta
        self.rope_scaling = 1.0 if cfg.is_local(layer) else cfg.rope_scaling
        self.rotary = rotary or RotaryTables()  # the model shares one between its layers
        # queries and keys after QK-norm and rotation: what the dot product sees
        self.q = HookPoint("(B, T, H, dh)")
        self.k = HookPoint("(B, T, K, dh)")
        self.v = HookPoint("(B, T, K, dh)")
        self.scores = HookPoint("(B, H, T, S)")  # scaled, masked logits before the softmax
        self.pattern = HookPoint("(B, H, T, S)")  # attention probabilities
        self.z = HookPoint("(B, T, H, dh)")  # per-head mix of values, before o_proj
        self.out = HookPoint("(B, T, D)")  # what attention adds to the residual stream

    def forward(self, x: Tensor, positions: Tensor, kv_cache: KVCache | None) -> Tensor:
        cfg = self.cfg
        B, T, _ = x.shape
        H, K, dh = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
        q = self.q_proj(x).view(B, T, H, dh)
        k = self.k_proj(x).view(B, T, K, dh)
        v = self.v_proj(x).view(B, T, K, dh)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = self.rotary.get(positions, dh, self.theta, self.rope_scaling)
        q, k = self.q(apply_rotary(q, cos, sin)), self.k(apply_rotary(k, cos, sin))
        v = self.v(v)

        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, n, T, dh)
        past = 0
        if kv_cache is not None:
            past = kv_cache.length(self.layer)
            k, v = kv_cache.extend(self.layer, k, v)  # (B, K, S, dh)
        S = k.shape[2]
        k_positions = torch.arange(S, device=positions.device) + (positions[0] - past)
        allowed = attention_mask(positions, k_positions, self.window, x.device)  # (T, S)

        if self.training and torch.is_grad_enabled() and not (self.scores.fns or self.pattern.fns):
            # Training, with nothing reading the scores or the pattern: one fused kernel does
            # softmax(q k^T) v and its backward without materialising them. Inference (and
            # any hooked run) takes the explicit path below, whose numbers the tests pin.
            causal = self.window is None and past == 0  # plain causal: the flash kernel
            mixed = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if causal else allowed, is_causal=causal,
                scale=cfg.softmax_scale, enable_gqa=H != K,
            )  # fmt: skip  # (B, H, T, dh)
        else:
            mixed = self._explicit_attention(q, k, v, allowed)
        z = self.z(mixed.transpose(1, 2))  # (B, T, H, dh)
        out = self.o_proj(z.reshape(B, T, H * dh))
        if self.post_norm is not None:
            out = self.post_norm(out)
        return self.out(out)

    def _explicit_attention(self, q: Tensor, k: Tensor, v: Tensor, allowed: Tensor) -> Tensor:
        """softmax(q k^T * scale, masked) v with the scores and pattern at their hook sites.
        q (B, H, T, dh); k, v (B, K, S, dh); allowed (T, S) -> (B, H, T, dh)."""
        B, H, T, dh = q.shape
        K, S = k.shape[1], k.shape[2]
        # Each key/value head serves `group` consecutive query heads: stack those heads'
        # queries as rows of one matrix per key/value head instead of copying K and V.
        group = H // K
        q = q.reshape(B, K, group * T, dh)  # (B, K, group*T, dh), row g*T + t: head k*group+g
        scores = (q @ k.transpose(2, 3)).view(B, H, T, S) * self.cfg.softmax_scale  # (B,H,T,S)
        scores = self.scores(scores.masked_fill(~allowed, float("-inf")))
        pattern = self.pattern(torch.softmax(scores.float(), dim=-1).to(q.dtype))
        return (pattern.reshape(B, K, group * T, S) @ v).view(B, H, T, dh)  # (B, H, T, dh)


class MLP(nn.Module):
    """The MLP; each of its F hidden units is a "neuron".

    Gated (Llama, Gemma): down(act(gate(x)) * up(x)), two questions per neuron.
    Plain (GPT-2, the video's picture): down(act(up(x))), one question per neuron.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.activation = cfg.activation
        self.gated = cfg.gated_mlp
        if cfg.gated_mlp:
            self.gate_proj = Linear(cfg.d_model, cfg.d_mlp, bias=False)
            self.gate = HookPoint("(B, T, F)")  # pre-activation of the gate
        self.up_proj = Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.down_proj = Linear(cfg.d_mlp, cfg.d_model, bias=False)
        self.post_norm = RMSNorm(cfg.d_model, cfg.norm_eps) if cfg.post_norms else None
        self.up = HookPoint("(B, T, F)")  # plain MLP: the pre-activation
        self.post = HookPoint("(B, T, F)")  # neuron activations, the input of down_proj
        self.out = HookPoint("(B, T, D)")  # what the MLP adds to the residual stream

    def act(self, x: Tensor) -> Tensor:
        if self.activation == "silu":
            return F.silu(x)
        if self.activation == "gelu_tanh":
            return F.gelu(x, approximate="tanh")
        if self.activation == "gelu":
            return F.gelu(x)
        return F.relu(x)

    def forward(self, x: Tensor) -> Tensor:
        if self.gated:
            gate = self.gate(self.gate_proj(x))
            neurons = self.act(gate) * self.up(self.up_proj(x))
        else:
            neurons = self.act(self.up(self.up_proj(x)))
        out = self.down_proj(self.post(neurons))
        if self.post_norm is not None:
            out = self.post_norm(out)
        return self.out(out)


class Block(nn.Module):
    """One transformer layer: attention then MLP, each added to the residual stream."""

    def __init__(self, cfg: ModelConfig, layer: int, rotary: RotaryTables | None = None) -> None:
        super().__init__()
        # declared in forward order, so that site_names lists them in that order
        self.resid_pre = HookPoint("(B, T, D)")
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, layer, rotary)
        self.resid_mid = HookPoint("(B, T, D)")
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)
        self.resid_post = HookPoint("(B, T, D)")

    def forward(self, x: Tensor, positions: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        x = self.resid_pre(x)
        x = self.resid_mid(x + self.attn(self.attn_norm(x), positions, kv_cache))
        return self.resid_post(x + self.mlp(self.mlp_norm(x)))


class Transformer(nn.Module):
    """A decoder-only language model with a hook site at every stage."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Built from an empty weight so that `from_state_dict` (meta device) skips the random
        # init: `normal_` on a meta tensor imports torch._dynamo, about 1 s.
        self.embedding = nn.Embedding(
            cfg.vocab_size, cfg.d_model, _weight=torch.empty(cfg.vocab_size, cfg.d_model)
        )
        if self.embedding.weight.device.type != "meta":
            nn.init.normal_(self.embedding.weight)
        self.embed = HookPoint("(B, T, D)")  # scaled token embeddings (declared first:
        # site_names lists sites in forward order)
        self.rotary = RotaryTables()  # cos/sin computed once per pass, not once per layer
        self.blocks = nn.ModuleList(Block(cfg, i, self.rotary) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.unembed = Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.unembed.weight = self.embedding.weight
        self.final_norm = HookPoint("(B, T, D)")  # residual after the final norm
        self.logits = HookPoint("(B, T, V)")
        self.hook_points = name_hook_points(self)

    @classmethod
    def from_state_dict(cls, cfg: ModelConfig, state: dict[str, Tensor]) -> Transformer:
        """A model holding exactly `state`: no random init, every key and shape checked."""
        with torch.device("meta"):
            model = cls(cfg)
        if cfg.tie_embeddings:
            state = {**state, "unembed.weight": state["embedding.weight"]}
        model.load_state_dict(state, strict=True, assign=True)
        if cfg.tie_embeddings:
            model.unembed.weight = model.embedding.weight
        return model

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embedding.weight.dtype

    def embed_tokens(self, tokens: Tensor) -> Tensor:
        """Token ids (B, T) -> the residual stream before block 0, (B, T, D)."""
        x = self.embedding(tokens)
        if self.cfg.embed_scale != 1.0:
            x = x * torch.tensor(self.cfg.embed_scale, dtype=x.dtype)
        return self.embed(x)

    def run_blocks(
        self,
        x: Tensor,
        positions: Tensor,
        start: int = 0,
        stop: int | None = None,
        kv_cache: KVCache | None = None,
    ) -> Tensor:
        """Run blocks start..stop-1 on the residual stream x (B, T, D)."""
        with self.rotary.one_pass():
            for block in self.blocks[start:stop]:
                x = block(x, positions, kv_cache)
        return x

    def unembed_residual(self, x: Tensor) -> Tensor:
        """Final norm and unembedding: residual (B, T, D) -> logits (B, T, V)."""
        return self.logits(self.unembed(self.final_norm(self.norm(x))))

    def forward(
        self,
        tokens: Tensor,
        *,
        kv_cache: KVCache | None = None,
        logits_at: LogitsAt = "all",
    ) -> Tensor:
        """Logits for token ids (B, T); with a KV cache the ids continue the cached ones.

        `logits_at="last"` unembeds only the final position, (B, 1, V): the unembedding of a
        large vocabulary costs more than the whole body for short prompts.
        """
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be (batch, seq), got shape {tuple(tokens.shape)}")
        past = kv_cache.length() if kv_cache is not None else 0
        positions = torch.arange(past, past + tokens.shape[1], device=tokens.device)
        x = self.run_blocks(self.embed_tokens(tokens), positions, kv_cache=kv_cache)
        if logits_at == "last":
            x = x[:, -1:]
        return self.unembed_residual(x)
