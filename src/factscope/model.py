"""The transformer: one readable forward pass for every supported family.

    tokens -> embed (+ positions) -> [block] x n_layers -> final norm -> unembed -> logits
    block:  resid_pre -> (norm) -> attention -> (post-norm) -> attn.out -> + -> resid_mid
            resid_mid -> (norm) -> MLP       -> (post-norm) -> mlp.out  -> + -> resid_post
            (a parallel block's MLP reads resid_pre instead of resid_mid)

Every activation passes through a named `HookPoint` (see hooks.py), e.g.
`blocks.7.mlp.post` is the activation of block 7's MLP neurons; the sites are the same in
every family, except that a plain (ungated) MLP has no `gate`. What differs between
families (RMSNorm vs LayerNorm and where the norms sit, GELU vs SiLU, gated or plain MLP,
biases, rotary (rotary.py) or learned positions, QK-norm, soft caps, sliding-window
layers, parallel blocks) is read from `ModelConfig`; checkpoints are converted to this
layout when loaded (weights/convert.py), so no line below asks which family it runs.

Shapes: B batch, T new tokens, S all attended tokens (past + new), D d_model,
H query heads, K key/value heads, dh d_head, F d_mlp, V vocab.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from factscope.config import ModelConfig
from factscope.hooks import HookPoint, name_hook_points
from factscope.onednn import Linear
from factscope.rotary import RopeKey, RotaryTables, apply_rotary

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


class LayerNorm(nn.LayerNorm):
    """(x - mean(x)) / std(x) * weight + bias, computed in float32 (GPT-2, Pythia)."""

    def forward(self, x: Tensor) -> Tensor:
        normed = F.layer_norm(
            x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps
        )
        return normed.to(x.dtype)


def make_norm(cfg: ModelConfig, dim: int) -> RMSNorm | LayerNorm:
    """The config's kind of norm over `dim` features."""
    if cfg.norm == "layer":
        return LayerNorm(dim, eps=cfg.norm_eps)
    return RMSNorm(dim, cfg.norm_eps)


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


def soft_cap(x: Tensor, cap: float | None) -> Tensor:
    """cap * tanh(x / cap): x squashed smoothly into (-cap, cap); identity when cap is None."""
    return x if cap is None else torch.tanh(x / cap) * cap


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
        self.q_proj = Linear(D, H * dh, bias=cfg.qkv_bias)
        self.k_proj = Linear(D, K * dh, bias=cfg.qkv_bias)
        self.v_proj = Linear(D, K * dh, bias=cfg.qkv_bias)
        self.o_proj = Linear(H * dh, D, bias=cfg.o_bias)
        # QK-norm over each head (dh features) or over all heads of the projection at once
        q_span, k_span = (dh, dh) if cfg.qk_norm_per_head else (H * dh, K * dh)
        self.q_norm = RMSNorm(q_span, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(k_span, cfg.norm_eps) if cfg.qk_norm else None
        self.post_norm = make_norm(cfg, D) if cfg.post_norms else None
        self.window = cfg.sliding_window if cfg.is_local(layer) else None
        theta = cfg.rope_theta_local if cfg.is_local(layer) else cfg.rope_theta
        scaling = 1.0 if cfg.is_local(layer) else cfg.rope_scaling
        factors = None if cfg.is_local(layer) else cfg.rope_freq_factors
        # (d_rot, theta, scaling, factors), or None: positions come from a learned table
        self.rope: RopeKey | None = (
            (cfg.rotary_dims, theta, scaling, factors) if cfg.positions == "rotary" else None
        )
        self.rotary = rotary or RotaryTables()  # the model shares one between its layers
        # queries and keys after QK-norm and rotation: what the dot product sees
        self.q = HookPoint("(B, T, H, dh)")
        self.k = HookPoint("(B, T, K, dh)")
        self.v = HookPoint("(B, T, K, dh)")
        self.scores = HookPoint("(B, H, T, S)")  # scaled, capped, masked logits before softmax
        self.pattern = HookPoint("(B, H, T, S)")  # attention probabilities
        self.z = HookPoint("(B, T, H, dh)")  # per-head mix of values, before o_proj
        self.out = HookPoint("(B, T, D)")  # what attention adds to the residual stream

    def forward(self, x: Tensor, positions: Tensor, kv_cache: KVCache | None) -> Tensor:
        cfg = self.cfg
        B, T, _ = x.shape
        H, K, dh = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)  # (B, T, H*dh), (B, T, K*dh)
        if self.q_norm is not None and self.k_norm is not None:
            # each group of `span` features normed alone: (B, T, n/span, span)
            q = self.q_norm(q.unflatten(-1, (-1, self.q_norm.weight.shape[0]))).flatten(-2)
            k = self.k_norm(k.unflatten(-1, (-1, self.k_norm.weight.shape[0]))).flatten(-2)
        q, k, v = q.view(B, T, H, dh), k.view(B, T, K, dh), v.view(B, T, K, dh)
        if self.rope is not None:
            cos, sin = self.rotary.get(positions, *self.rope)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q, k, v = self.q(q), self.k(k), self.v(v)

        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, n, T, dh)
        past = 0
        if kv_cache is not None:
            past = kv_cache.length(self.layer)
            k, v = kv_cache.extend(self.layer, k, v)  # (B, K, S, dh)
        S = k.shape[2]
        k_positions = torch.arange(S, device=positions.device) + (positions[0] - past)
        allowed = attention_mask(positions, k_positions, self.window, x.device)  # (T, S)

        fusable = cfg.attn_softcap is None and not (self.scores.hooked or self.pattern.hooked)
        if self.training and torch.is_grad_enabled() and fusable:
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
        """softmax(q k^T * scale, capped, masked) v with the scores and pattern at their hook
        sites. q (B, H, T, dh); k, v (B, K, S, dh); allowed (T, S) -> (B, H, T, dh)."""
        B, H, T, dh = q.shape
        K, S = k.shape[1], k.shape[2]
        # Each key/value head serves `group` consecutive query heads: stack those heads'
        # queries as rows of one matrix per key/value head instead of copying K and V.
        group = H // K
        q = q.reshape(B, K, group * T, dh)  # (B, K, group*T, dh), row g*T + t: head k*group+g
        scores = (q @ k.transpose(2, 3)).view(B, H, T, S) * self.cfg.softmax_scale  # (B,H,T,S)
        scores = soft_cap(scores, self.cfg.attn_softcap)
        scores = self.scores(scores.masked_fill(~allowed, float("-inf")))
        pattern = self.pattern(torch.softmax(scores.float(), dim=-1).to(q.dtype))
        return (pattern.reshape(B, K, group * T, S) @ v).view(B, H, T, dh)  # (B, H, T, dh)


class MLP(nn.Module):
    """The MLP; each of its F hidden units is a "neuron".

    Gated (Llama, Gemma): down(act(gate(x)) * up(x)), two questions per neuron.
    Plain (GPT-2, Pythia, the video's picture): down(act(up(x))), one question per neuron;
    it has no `gate` site.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.activation = cfg.activation
        self.gated = cfg.gated_mlp
        if cfg.gated_mlp:
            self.gate_proj = Linear(cfg.d_model, cfg.d_mlp, bias=cfg.mlp_bias)
            self.gate = HookPoint("(B, T, F)")  # pre-activation of the gate
        self.up_proj = Linear(cfg.d_model, cfg.d_mlp, bias=cfg.mlp_bias)
        self.down_proj = Linear(cfg.d_mlp, cfg.d_model, bias=cfg.mlp_bias)
        self.post_norm = make_norm(cfg, cfg.d_model) if cfg.post_norms else None
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
    """One transformer layer: attention then MLP, each added to the residual stream.

    Sequential (most families): the MLP reads resid_mid = resid_pre + attention output.
    Parallel (GPT-NeoX): both read resid_pre; resid_mid is still resid_pre + attention
    output, and resid_post adds the MLP output to it, so the sites mean the same sums.
    """

    def __init__(self, cfg: ModelConfig, layer: int, rotary: RotaryTables | None = None) -> None:
        super().__init__()
        self.parallel = cfg.parallel_block
        self.mlp_reads = "resid_pre" if cfg.parallel_block else "resid_mid"  # the MLP's input
        # declared in forward order, so that site_names lists them in that order
        # (no pre-norms, OLMo 2: attention and MLP read the residual stream itself)
        self.resid_pre = HookPoint("(B, T, D)")
        self.attn_norm = make_norm(cfg, cfg.d_model) if cfg.pre_norms else nn.Identity()
        self.attn = Attention(cfg, layer, rotary)
        self.resid_mid = HookPoint("(B, T, D)")
        self.mlp_norm = make_norm(cfg, cfg.d_model) if cfg.pre_norms else nn.Identity()
        self.mlp = MLP(cfg)
        self.resid_post = HookPoint("(B, T, D)")

    def forward(self, x: Tensor, positions: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        x = self.resid_pre(x)
        mid = self.resid_mid(x + self.attn(self.attn_norm(x), positions, kv_cache))
        return self.resid_post(mid + self.mlp(self.mlp_norm(x if self.parallel else mid)))


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
        # learned absolute positions (GPT-2), added to the token embeddings
        self.pos_embedding = (
            nn.Embedding(
                cfg.context_length,
                cfg.d_model,
                _weight=torch.empty(cfg.context_length, cfg.d_model),
            )
            if cfg.positions == "learned"
            else None
        )
        for table in (self.embedding, self.pos_embedding):
            if table is not None and table.weight.device.type != "meta":
                nn.init.normal_(table.weight)
        self.embed = HookPoint("(B, T, D)")  # scaled token (+ position) embeddings (declared
        # first: site_names lists sites in forward order)
        self.rotary = RotaryTables()  # cos/sin computed once per pass, not once per layer
        self.blocks = nn.ModuleList(Block(cfg, i, self.rotary) for i in range(cfg.n_layers))
        self.norm = make_norm(cfg, cfg.d_model)
        self.unembed = Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.unembed.weight = self.embedding.weight
        self.final_norm = HookPoint("(B, T, D)")  # residual after the final norm
        self.logits = HookPoint("(B, T, V)")  # after the final soft-cap, if any
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

    def embed_tokens(self, tokens: Tensor, positions: Tensor | None = None) -> Tensor:
        """Token ids (B, T) at `positions` (T,) (default 0..T-1) -> the residual stream
        before block 0, (B, T, D)."""
        x = self.embedding(tokens)
        if self.cfg.embed_scale != 1.0:
            x = x * torch.tensor(self.cfg.embed_scale, dtype=x.dtype)
        if self.pos_embedding is not None:
            if positions is None:
                positions = torch.arange(tokens.shape[1], device=tokens.device)
            x = x + self.pos_embedding(positions)
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
        logits = self.unembed(self.final_norm(self.norm(x)))
        return self.logits(soft_cap(logits, self.cfg.final_softcap))

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
        x = self.run_blocks(self.embed_tokens(tokens, positions), positions, kv_cache=kv_cache)
        if logits_at == "last":
            x = x[:, -1:]
        return self.unembed_residual(x)
