"""What a transformer is made of: one small frozen dataclass and named presets.

One forward pass serves every supported family; the config names what differs between
them (activation, norm placement, QK-norm, embedding scale, sliding-window layers and
their RoPE base). Checkpoints are converted to this one layout at load time, so
`model.py` has no per-format branches.

The named configs all live here: `tiny_config` (a seeded few-thousand-parameter model of
either family, for tests) and `PRESETS` with `model_config` (the Llama-style shapes that
`factscope scratch train` builds, with a choice of MLP). A real checkpoint's config is read
from its file; registry.py names those checkpoints (and `DEFAULT_MODEL`), not their shapes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from factscope.errors import FactscopeError

Activation = Literal["silu", "gelu_tanh", "gelu", "relu"]
NormKind = Literal["rms", "layer"]
Positions = Literal["rotary", "learned"]


@dataclass(frozen=True)
class ModelConfig:
    """Shape and numerics of a decoder-only transformer.

    Every field is read from a checkpoint's config when it is converted; the forward pass
    reads only these fields, never the family name. The defaults are Llama's: SiLU-gated
    MLP, RMSNorm before attention and MLP, rotary positions on whole heads, no biases,
    embeddings unscaled. The others differ in (see docs/models.md):

    - Gemma 2/3: GELU(tanh), norms before *and* after attention and MLP, embeddings scaled
      by sqrt(d_model), sliding-window layers; Gemma 3 RMS-norms each query and key head,
      Gemma 2 soft-caps attention scores and final logits with tanh.
    - Mistral: every layer attends within a sliding window. Qwen 2: biases on q, k, v.
      Qwen 3: RMSNorm on each query and key head. Phi-3: Llama's numerics, fused tensors
      (split at conversion). OLMo 2: norms only after attention and MLP, RMSNorm over the
      whole query and key projections.
    - GPT-2: LayerNorm, biases everywhere, a plain GELU MLP, learned absolute positions.
    - GPT-NeoX / Pythia: LayerNorm, biases, plain GELU MLP, rotary on the first quarter of
      each head, and attention and MLP both reading the block's input (parallel).
    """

    family: (
        str  # "llama", "gpt2", ...: names the checkpoint layout; the forward pass never reads it
    )
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_mlp: int
    context_length: int
    norm_eps: float = 1e-5
    norm: NormKind = "rms"  # "rms": x / rms(x) * w; "layer": LayerNorm, (x - mean) / std * w + b
    activation: Activation = "silu"
    # Gated MLP (Llama, Gemma): down(act(gate x) * (up x)). Plain MLP (GPT-2, the video's
    # picture): down(act(up x)), one question per neuron.
    gated_mlp: bool = True
    qkv_bias: bool = False  # biases on the query, key and value projections (Qwen 2, GPT-2)
    o_bias: bool = False  # a bias on attention's output projection (GPT-2, Pythia)
    mlp_bias: bool = False  # biases on the MLP's projections (GPT-2, Pythia)
    positions: Positions = "rotary"  # or "learned": a table of position embeddings (GPT-2)
    rope_theta: float = 10_000.0
    rotary_dim: int | None = None  # rotate only each head's first rotary_dim dims (Pythia)
    # Layers listed here attend only to the last `sliding_window` tokens and rotate with
    # `rope_theta_local`; every other layer is global.
    sliding_window: int | None = None
    local_layers: tuple[int, ...] = ()
    rope_theta_local: float = 10_000.0
    rope_scaling: float = 1.0  # position interpolation factor (1 = none)
    # One divisor per rotary frequency (Llama 3's scaling, computed at conversion from its
    # config or read from llama.cpp's rope_freqs tensor): slow frequencies are stretched,
    # fast ones kept, a blend between.
    rope_freq_factors: tuple[float, ...] | None = None
    pre_norms: bool = True  # norm the residual before attention and MLP (all but OLMo 2)
    post_norms: bool = False  # norm the attention and MLP outputs before the add
    qk_norm: bool = False  # RMSNorm on queries and keys, after projection, before RoPE
    # ...over each head's d_head features (Gemma 3, Qwen 3) or over the whole projection,
    # all heads at once (OLMo 2)
    qk_norm_per_head: bool = True
    # Attention and MLP both read the block's input; their outputs are added together
    # (GPT-NeoX). resid_mid is then resid_pre + attention output, which the MLP does not read.
    parallel_block: bool = False
    embed_scale: float = 1.0  # token embeddings are multiplied by this
    attn_scale: float | None = None  # softmax scale; None means 1/sqrt(d_head)
    attn_softcap: float | None = None  # scores become cap * tanh(scores / cap) (Gemma 2)
    final_softcap: float | None = None  # logits become cap * tanh(logits / cap) (Gemma 2)
    tie_embeddings: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads}"
            )
        if self.positions == "rotary" and self.rotary_dims % 2:
            raise ValueError(f"rotary dims {self.rotary_dims} must be even")
        factors = self.rope_freq_factors
        if factors is not None and len(factors) != self.rotary_dims // 2:
            raise ValueError(f"{len(factors)} RoPE frequency factors for {self.rotary_dims} dims")
        if self.rotary_dims > self.d_head:
            raise ValueError(f"rotary_dim={self.rotary_dim} exceeds d_head={self.d_head}")
        bad = [i for i in self.local_layers if not 0 <= i < self.n_layers]
        if bad:
            raise ValueError(f"local_layers {bad} outside 0..{self.n_layers - 1}")
        if self.local_layers and self.sliding_window is None:
            raise ValueError("local_layers need a sliding_window")

    @property
    def rotary_dims(self) -> int:
        """How many leading dims of each head RoPE rotates."""
        return self.d_head if self.rotary_dim is None else self.rotary_dim

    @property
    def softmax_scale(self) -> float:
        return self.attn_scale if self.attn_scale is not None else self.d_head**-0.5

    def is_local(self, layer: int) -> bool:
        return layer in self.local_layers

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {unknown}")
        kwargs = dict(data)
        kwargs["local_layers"] = tuple(kwargs.get("local_layers", ()))
        if kwargs.get("rope_freq_factors") is not None:  # JSON writes the tuple as a list
            kwargs["rope_freq_factors"] = tuple(float(f) for f in kwargs["rope_freq_factors"])
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def gemma3_local_layers(n_layers: int, pattern: int = 6) -> tuple[int, ...]:
    """Gemma 3 makes every `pattern`-th layer global and the rest sliding-window."""
    return tuple(i for i in range(n_layers) if (i + 1) % pattern != 0)


def tiny_config(family: str = "llama", **overrides: Any) -> ModelConfig:
    """A few-thousand-parameter model of either family, for fast tests."""
    base: dict[str, Any] = dict(
        family=family,
        vocab_size=97,
        d_model=32,
        n_layers=3,
        n_heads=4,
        n_kv_heads=2,
        d_head=8,
        d_mlp=48,
        context_length=64,
        norm_eps=1e-6,
    )
    if family == "gemma3":
        base.update(
            activation="gelu_tanh",
            rope_theta=1_000_000.0,
            rope_theta_local=10_000.0,
            sliding_window=4,
            local_layers=gemma3_local_layers(3, pattern=3),
            post_norms=True,
            qk_norm=True,
            embed_scale=32**0.5,
            attn_scale=8**-0.5,
        )
    elif family != "llama":
        raise ValueError(f"unknown family {family!r}")
    base.update(overrides)
    return ModelConfig(**base)


# ---- shapes to train from scratch (scratch/train.py) -----------------------------------------

# A plain MLP gets d_mlp = 4 * d_model and a gated one 8/3 * d_model (rounded up to 16), so
# both have 8 * d_model^2 MLP weights per block.

MLP_KINDS: dict[str, dict[str, Any]] = {
    "swiglu": dict(gated_mlp=True, activation="silu"),
    "geglu": dict(gated_mlp=True, activation="gelu_tanh"),
    "relu": dict(gated_mlp=False, activation="relu"),
    "gelu": dict(gated_mlp=False, activation="gelu"),
}

# d_model, n_layers, n_heads (d_head = d_model / n_heads)
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (32, 2, 4),  # tests: a few thousand parameters
    "small": (128, 4, 4),  # the facts experiment on a CPU
    "medium": (256, 6, 8),
    "gpt2-small": (768, 12, 12),  # the paper's 124M shape (for a GPU)
}


def model_config(
    preset: str = "small", vocab_size: int = 2048, context_length: int = 128, mlp: str = "swiglu"
) -> ModelConfig:
    """A Llama-style config of `preset` size with the chosen MLP kind: what `factscope
    scratch train` builds (RMSNorm, rotary positions, no biases, tied embeddings)."""
    if preset not in PRESETS:
        raise FactscopeError(f"unknown --preset {preset!r}; use one of {', '.join(PRESETS)}")
    if mlp not in MLP_KINDS:
        raise FactscopeError(f"unknown --mlp {mlp!r}; use one of {', '.join(MLP_KINDS)}")
    d_model, n_layers, n_heads = PRESETS[preset]
    gated = MLP_KINDS[mlp]["gated_mlp"]
    d_mlp = 4 * d_model if not gated else 16 * math.ceil(8 * d_model / 3 / 16)
    return ModelConfig(
        family="llama",
        vocab_size=vocab_size,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_heads,
        d_head=d_model // n_heads,
        d_mlp=d_mlp,
        context_length=context_length,
        norm_eps=1e-5,
        tie_embeddings=True,
        **MLP_KINDS[mlp],
    )
