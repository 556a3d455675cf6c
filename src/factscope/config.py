"""What a transformer is made of: one small frozen dataclass and named presets.

One forward pass serves every supported family; the config names what differs between
them (activation, norm placement, QK-norm, embedding scale, sliding-window layers and
their RoPE base). Checkpoints are converted to this one layout at load time, so
`model.py` has no per-format branches.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

Activation = Literal["silu", "gelu_tanh", "gelu", "relu"]


@dataclass(frozen=True)
class ModelConfig:
    """Shape and numerics of a decoder-only transformer.

    Llama family (SmolLM2): SiLU-gated MLP, pre-norm only, one RoPE base, embeddings
    unscaled. Gemma 3: GELU(tanh)-gated MLP, pre- and post-norms around attention and MLP,
    RMS-normed queries and keys, embeddings scaled by sqrt(d_model), and most layers
    attend within a sliding window with their own RoPE base.
    """

    family: str  # "llama" or "gemma3": a label for humans, never branched on
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_mlp: int
    context_length: int
    norm_eps: float = 1e-5
    activation: Activation = "silu"
    # Gated MLP (Llama, Gemma): down(act(gate x) * (up x)). Plain MLP (GPT-2, the video's
    # picture): down(act(up x)), one question per neuron.
    gated_mlp: bool = True
    rope_theta: float = 10_000.0
    # Layers listed here attend only to the last `sliding_window` tokens and rotate with
    # `rope_theta_local`; every other layer is global.
    sliding_window: int | None = None
    local_layers: tuple[int, ...] = ()
    rope_theta_local: float = 10_000.0
    rope_scaling: float = 1.0  # linear position interpolation factor (1 = none)
    post_norms: bool = False  # RMSNorm on the attention and MLP outputs before the add
    qk_norm: bool = False  # RMSNorm on each query and key head
    embed_scale: float = 1.0  # token embeddings are multiplied by this
    attn_scale: float | None = None  # softmax scale; None means 1/sqrt(d_head)
    tie_embeddings: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads}"
            )
        if self.d_head % 2:
            raise ValueError(f"d_head={self.d_head} must be even for rotary embeddings")
        bad = [i for i in self.local_layers if not 0 <= i < self.n_layers]
        if bad:
            raise ValueError(f"local_layers {bad} outside 0..{self.n_layers - 1}")
        if self.local_layers and self.sliding_window is None:
            raise ValueError("local_layers need a sliding_window")

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
