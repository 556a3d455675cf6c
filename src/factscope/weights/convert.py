"""Convert checkpoints (GGUF files, Hugging Face folders) into the one internal layout.

The internal layout is `Transformer.state_dict()`'s names and shapes. Two conventions are
undone here so the forward pass never branches on where the weights came from:

- llama.cpp stores Llama query/key weights permuted so that RoPE rotates adjacent pairs;
  we rotate the two halves of each head (as Hugging Face does), so the permutation is
  reversed for GGUF Llama checkpoints.
- Gemma's RMSNorm multiplies by `1 + w`. llama.cpp already stores `1 + w`; Hugging Face
  stores `w`, so 1 is added to Gemma norm weights from safetensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from factscope.config import ModelConfig, gemma3_local_layers
from factscope.errors import UnsupportedModelError

SUPPORTED_ARCHITECTURES = ("llama", "gemma3")

# internal name template -> GGUF name template ({i} is the layer)
GGUF_NAMES: dict[str, str] = {
    "embedding.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "unembed.weight": "output.weight",
    "blocks.{i}.attn_norm.weight": "blk.{i}.attn_norm.weight",
    "blocks.{i}.attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "blocks.{i}.attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "blocks.{i}.attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "blocks.{i}.attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "blocks.{i}.attn.q_norm.weight": "blk.{i}.attn_q_norm.weight",
    "blocks.{i}.attn.k_norm.weight": "blk.{i}.attn_k_norm.weight",
    "blocks.{i}.attn.post_norm.weight": "blk.{i}.post_attention_norm.weight",
    "blocks.{i}.mlp_norm.weight": "blk.{i}.ffn_norm.weight",
    "blocks.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "blocks.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "blocks.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
    "blocks.{i}.mlp.post_norm.weight": "blk.{i}.post_ffw_norm.weight",
}

# internal name template -> Hugging Face name template, per family
_HF_COMMON: dict[str, str] = {
    "embedding.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "unembed.weight": "lm_head.weight",
    "blocks.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blocks.{i}.attn.q_proj.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blocks.{i}.attn.k_proj.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blocks.{i}.attn.v_proj.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blocks.{i}.attn.o_proj.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blocks.{i}.mlp.gate_proj.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blocks.{i}.mlp.up_proj.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blocks.{i}.mlp.down_proj.weight": "model.layers.{i}.mlp.down_proj.weight",
}
HF_NAMES: dict[str, dict[str, str]] = {
    "llama": {
        **_HF_COMMON,
        # Llama's "post_attention_layernorm" is the norm *before* the MLP
        "blocks.{i}.mlp_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    },
    "gemma3": {
        **_HF_COMMON,
        "blocks.{i}.attn.q_norm.weight": "model.layers.{i}.self_attn.q_norm.weight",
        "blocks.{i}.attn.k_norm.weight": "model.layers.{i}.self_attn.k_norm.weight",
        "blocks.{i}.attn.post_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
        "blocks.{i}.mlp_norm.weight": "model.layers.{i}.pre_feedforward_layernorm.weight",
        "blocks.{i}.mlp.post_norm.weight": "model.layers.{i}.post_feedforward_layernorm.weight",
    },
}
HF_MODEL_TYPES = {"llama": "llama", "gemma3_text": "gemma3", "gemma3": "gemma3"}


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the internal layout needs, with its shape."""
    D, F, V, dh = cfg.d_model, cfg.d_mlp, cfg.vocab_size, cfg.d_head
    per_layer: dict[str, tuple[int, ...]] = {
        "attn_norm.weight": (D,),
        "attn.q_proj.weight": (cfg.n_heads * dh, D),
        "attn.k_proj.weight": (cfg.n_kv_heads * dh, D),
        "attn.v_proj.weight": (cfg.n_kv_heads * dh, D),
        "attn.o_proj.weight": (D, cfg.n_heads * dh),
        "mlp_norm.weight": (D,),
        "mlp.gate_proj.weight": (F, D),
        "mlp.up_proj.weight": (F, D),
        "mlp.down_proj.weight": (D, F),
    }
    if cfg.qk_norm:
        per_layer |= {"attn.q_norm.weight": (dh,), "attn.k_norm.weight": (dh,)}
    if cfg.post_norms:
        per_layer |= {"attn.post_norm.weight": (D,), "mlp.post_norm.weight": (D,)}
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (V, D), "norm.weight": (D,)}
    if not cfg.tie_embeddings:
        shapes["unembed.weight"] = (V, D)
    for i in range(cfg.n_layers):
        shapes |= {f"blocks.{i}.{name}": shape for name, shape in per_layer.items()}
    return shapes


def external_name(templates: Mapping[str, str], internal: str) -> str:
    """Map an internal tensor name to a checkpoint's name using `{i}` templates."""
    parts = internal.split(".")
    if parts[0] == "blocks":
        template = ".".join(["blocks", "{i}", *parts[2:]])
        return templates[template].format(i=parts[1])
    return templates[internal]


# --- GGUF ---------------------------------------------------------------------------


def _meta(metadata: Mapping[str, Any], key: str, default: Any = None) -> Any:
    if key in metadata:
        return metadata[key]
    if default is None:
        raise UnsupportedModelError(f"GGUF metadata lacks {key!r}; the file may be incomplete")
    return default


def config_from_gguf(metadata: Mapping[str, Any], tensor_names: set[str]) -> ModelConfig:
    """Read the model shape from GGUF metadata (keys are prefixed by the architecture)."""
    arch = str(metadata.get("general.architecture", ""))
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"architecture {arch!r} is not supported (supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}); use a Llama or Gemma 3 checkpoint"
        )

    def get(key: str, default: Any = None) -> Any:
        return _meta(metadata, f"{arch}.{key}", default)

    n_heads = int(get("attention.head_count"))
    d_model = int(get("embedding_length"))
    n_layers = int(get("block_count"))
    tokens = metadata.get("tokenizer.ggml.tokens")
    vocab = int(get("vocab_size", len(tokens) if tokens is not None else 0))
    d_head = int(get("attention.key_length", d_model // n_heads))
    common: dict[str, Any] = dict(
        vocab_size=vocab,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=int(get("attention.head_count_kv", n_heads)),
        d_head=d_head,
        d_mlp=int(get("feed_forward_length")),
        context_length=int(get("context_length")),
        norm_eps=float(get("attention.layer_norm_rms_epsilon")),
        rope_theta=float(get("rope.freq_base", 10_000.0)),
        tie_embeddings="output.weight" not in tensor_names,
        bos_token_id=_optional_int(metadata.get("tokenizer.ggml.bos_token_id")),
        eos_token_id=_optional_int(metadata.get("tokenizer.ggml.eos_token_id")),
    )
    scaling_type = metadata.get(f"{arch}.rope.scaling.type", "none")
    if scaling_type == "linear":
        common["rope_scaling"] = float(get("rope.scaling.factor"))
    elif scaling_type not in ("none", None):
        raise UnsupportedModelError(f"RoPE scaling {scaling_type!r} is not supported")
    if arch == "llama":
        return ModelConfig(family="llama", activation="silu", **common)
    # Gemma 3: every 6th layer is global; the others use a 512-token window and base 10k.
    # The GGUF names the window but not the pattern or local base (llama.cpp hard-codes them).
    return ModelConfig(
        family="gemma3",
        activation="gelu_tanh",
        sliding_window=int(get("attention.sliding_window")),
        local_layers=gemma3_local_layers(n_layers),
        rope_theta_local=10_000.0,
        post_norms=True,
        qk_norm=True,
        embed_scale=math.sqrt(d_model),
        attn_scale=256**-0.5,  # query_pre_attn_scalar = 256 in every Gemma 3 size
        **common,
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def unpermute_rope(weight: Tensor, n_heads: int) -> Tensor:
    """Undo llama.cpp's Q/K permutation (adjacent-pair RoPE -> rotate-half RoPE).

    llama.cpp reorders each head's output rows from [first half, second half] to
    interleaved pairs; this puts them back. weight: (n_heads * dh, D).
    """
    rows = weight.shape[0]
    # (n, dh/2, 2, D) -> (n, 2, dh/2, D)
    return (
        weight.reshape(n_heads, rows // n_heads // 2, 2, *weight.shape[1:])
        .transpose(1, 2)
        .reshape(weight.shape)
    )


def permute_rope(weight: Tensor, n_heads: int) -> Tensor:
    """llama.cpp's permutation (rotate-half -> adjacent pairs); the inverse of unpermute_rope."""
    rows = weight.shape[0]
    # (n, 2, dh/2, D) -> (n, dh/2, 2, D)
    return (
        weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:])
        .transpose(1, 2)
        .reshape(weight.shape)
    )


TensorSource = Callable[[str], Tensor]


def convert_gguf_tensors(
    cfg: ModelConfig, load: TensorSource, available: set[str]
) -> tuple[dict[str, Tensor], list[str]]:
    """Build the internal state dict from GGUF tensors (loaded by name with `load`).

    Returns (state_dict, unused GGUF tensor names). Missing tensors and wrong shapes raise.
    """
    state: dict[str, Tensor] = {}
    used: set[str] = set()
    for name, shape in expected_shapes(cfg).items():
        source = external_name(GGUF_NAMES, name)
        if source not in available:
            raise UnsupportedModelError(
                f"GGUF tensor {source!r} is missing; the file is not a complete {cfg.family} model"
            )
        tensor = load(source)
        if cfg.family == "llama" and name.endswith("attn.q_proj.weight"):
            tensor = unpermute_rope(tensor, cfg.n_heads)
        elif cfg.family == "llama" and name.endswith("attn.k_proj.weight"):
            tensor = unpermute_rope(tensor, cfg.n_kv_heads)
        state[name] = _check_shape(name, source, tensor, shape)
        used.add(source)
    return state, sorted(available - used)


# --- Hugging Face folders -------------------------------------------------------------


def config_from_hf(hf: Mapping[str, Any]) -> ModelConfig:
    """Read a Hugging Face config.json (Llama or Gemma 3 text) into a ModelConfig."""
    model_type = str(hf.get("model_type", ""))
    if model_type == "gemma3" and "text_config" in hf:
        hf = {**hf["text_config"], "model_type": "gemma3_text"}
    family = HF_MODEL_TYPES.get(model_type)
    if family is None:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported (supported: {', '.join(HF_MODEL_TYPES)})"
        )
    n_heads = int(hf["num_attention_heads"])
    d_model = int(hf["hidden_size"])
    rope_theta, rope_scaling = _hf_rope(hf, "full_attention")
    common: dict[str, Any] = dict(
        vocab_size=int(hf["vocab_size"]),
        d_model=d_model,
        n_layers=int(hf["num_hidden_layers"]),
        n_heads=n_heads,
        n_kv_heads=int(hf.get("num_key_value_heads") or n_heads),
        d_head=int(hf.get("head_dim") or d_model // n_heads),
        d_mlp=int(hf["intermediate_size"]),
        context_length=int(hf.get("max_position_embeddings", 2048)),
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        rope_theta=rope_theta,
        rope_scaling=rope_scaling,
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
        bos_token_id=_optional_int(hf.get("bos_token_id")),
        eos_token_id=_optional_int(_first(hf.get("eos_token_id"))),
    )
    if family == "llama":
        if hf.get("hidden_act", "silu") != "silu":
            raise UnsupportedModelError(f"activation {hf.get('hidden_act')!r} is not supported")
        return ModelConfig(family="llama", activation="silu", **common)
    layer_types = hf.get("layer_types")
    if layer_types:
        local = tuple(i for i, kind in enumerate(layer_types) if kind == "sliding_attention")
    else:
        local = gemma3_local_layers(common["n_layers"], int(hf.get("sliding_window_pattern", 6)))
    return ModelConfig(
        family="gemma3",
        activation="gelu_tanh",
        sliding_window=int(hf.get("sliding_window", 512)),
        local_layers=local,
        rope_theta_local=_hf_rope(hf, "sliding_attention")[0],
        post_norms=True,
        qk_norm=True,
        embed_scale=math.sqrt(d_model),
        attn_scale=float(hf.get("query_pre_attn_scalar", 256)) ** -0.5,
        **common,
    )


def _hf_rope(hf: Mapping[str, Any], layer_type: str) -> tuple[float, float]:
    """(theta, linear scaling factor) from either config style: transformers 5 writes
    `rope_parameters` (per layer type for Gemma 3), older files `rope_theta` and
    `rope_scaling` (Gemma 3's local base as `rope_local_base_freq`)."""
    params = hf.get("rope_parameters")
    if isinstance(params, Mapping) and layer_type in params:
        params = params[layer_type]
    if not isinstance(params, Mapping):
        if layer_type == "sliding_attention" and "rope_local_base_freq" in hf:
            params = {"rope_theta": hf["rope_local_base_freq"]}
        else:
            params = {
                "rope_theta": hf.get("rope_theta", 10_000.0),
                **(hf.get("rope_scaling") or {}),
            }
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in ("default", "linear"):
        raise UnsupportedModelError(f"RoPE scaling {rope_type!r} is not supported")
    factor = float(params.get("factor", 1.0)) if rope_type == "linear" else 1.0
    return float(params.get("rope_theta", 10_000.0)), factor


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def convert_hf_tensors(
    cfg: ModelConfig, load: TensorSource, available: set[str]
) -> tuple[dict[str, Tensor], list[str]]:
    """Build the internal state dict from Hugging Face tensor names; returns (state, unused)."""
    templates = HF_NAMES[cfg.family]
    prefix = _hf_prefix(available)
    state: dict[str, Tensor] = {}
    used: set[str] = set()
    for name, shape in expected_shapes(cfg).items():
        source = prefix + external_name(templates, name).removeprefix("model.")
        if name == "unembed.weight":
            source = "lm_head.weight"
        if source not in available:
            raise UnsupportedModelError(
                f"safetensors tensor {source!r} is missing; the folder is not a complete "
                f"{cfg.family} model"
            )
        tensor = load(source).float()
        if cfg.family == "gemma3" and name.endswith("norm.weight"):
            tensor = tensor + 1.0  # Gemma's RMSNorm scales by (1 + w)
        state[name] = _check_shape(name, source, tensor, shape)
        used.add(source)
    unused = sorted(n for n in available - used if not n.endswith("rotary_emb.inv_freq"))
    if cfg.tie_embeddings and "lm_head.weight" in unused:
        unused.remove("lm_head.weight")
    return state, unused


def _hf_prefix(available: set[str]) -> str:
    """'model.' for text checkpoints, 'model.language_model.' etc. for wrapped ones."""
    for prefix in ("model.", "model.language_model.", "language_model.model."):
        if prefix + "embed_tokens.weight" in available:
            return prefix
    raise UnsupportedModelError(
        "no embed_tokens.weight in the safetensors files; not a Llama or Gemma 3 checkpoint"
    )


def _check_shape(name: str, source: str, tensor: Tensor, shape: tuple[int, ...]) -> Tensor:
    if tuple(tensor.shape) != shape:
        raise UnsupportedModelError(
            f"tensor {source!r} has shape {tuple(tensor.shape)}, expected {shape} for {name}"
        )
    return tensor
