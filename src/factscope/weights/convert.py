"""Convert checkpoints (GGUF files, Hugging Face folders) into the one internal layout.

The internal layout is `Transformer.state_dict()`'s names and shapes. What a family differs
in is read from its config into `ModelConfig` fields; layouts are undone here, so the
forward pass never branches on where the weights came from or which family they are:

- fused tensors (GPT-2's c_attn, GPT-NeoX's query_key_value interleaved by head, Phi-3's
  qkv_proj and gate_up_proj) are split into q, k, v and gate, up;
- GPT-2's Conv1D matrices, stored (in, out), are transposed;
- Llama 3's RoPE scaling becomes one divisor per frequency (`llama3_factors`), the form
  llama.cpp stores in its rope_freqs tensor;
- llama.cpp stores Llama query/key weights permuted so that RoPE rotates adjacent pairs;
  we rotate the two halves of each head (as Hugging Face does), so the permutation is
  reversed for GGUF Llama checkpoints.
- Gemma's RMSNorm multiplies by `1 + w`. llama.cpp already stores `1 + w`; Hugging Face
  stores `w`, so 1 is added to Gemma norm weights from safetensors.

The GGUF side follows what llama.cpp's `convert_hf_to_gguf.py` writes (its model classes,
read for this; tests/tiny_checkpoints.py writes test files the same way, independently of
this module): tensor names from gguf-py's `TensorNameMap`; `LlamaModel.permute` reorders
the q and k rows of `llama` files (only those: qwen2, qwen3, phi3, gemma and gpt2 files
keep Hugging Face's row order); `LlamaModel.generate_extra_tensors` stores Llama 3's
scaling as `rope_freqs` and writes no scaling type (`linear` scaling is written as
`rope.scaling.type` and `rope.scaling.factor`); `Gemma2Model` / `Gemma3Model.modify_tensors`
add 1 to every `*norm.weight`, and `Gemma2Model.set_gguf_parameters` writes the two soft
caps and the window but no RoPE base (10,000 is meant); `Phi3MiniModel` keeps `qkv_proj`
and `gate_up_proj` fused as `attn_qkv` and `ffn_up` (gate rows first, the half llama.cpp's
SwiGLU activates), writes the window as 0 when there is none and the rotated dims as
`rope.dimension_count`; `GPT2Model.modify_tensors` transposes the Conv1D matrices to
(out, in), and today's converter leaves the tied unembedding out (older ones wrote a copy,
`output.weight`); GPT-2's MLP width is written as 4 x d_model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from factscope.config import Activation, ModelConfig, gemma3_local_layers
from factscope.errors import UnsupportedModelError

# general.architecture values read, each as the family of the same name
SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "gpt2")
# llama.cpp permutes Q/K rows for these (adjacent-pair RoPE); the others rotate halves
_GGUF_PERMUTED = ("llama",)

# internal name template -> GGUF name template ({i} is the layer)
GGUF_NAMES: dict[str, str] = {
    "embedding.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "unembed.weight": "output.weight",
    "blocks.{i}.attn_norm.weight": "blk.{i}.attn_norm.weight",
    "blocks.{i}.attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "blocks.{i}.attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "blocks.{i}.attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "blocks.{i}.attn.q_proj.bias": "blk.{i}.attn_q.bias",
    "blocks.{i}.attn.k_proj.bias": "blk.{i}.attn_k.bias",
    "blocks.{i}.attn.v_proj.bias": "blk.{i}.attn_v.bias",
    "blocks.{i}.attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "blocks.{i}.attn.q_norm.weight": "blk.{i}.attn_q_norm.weight",
    "blocks.{i}.attn.k_norm.weight": "blk.{i}.attn_k_norm.weight",
    "blocks.{i}.attn.post_norm.weight": "blk.{i}.post_attention_norm.weight",
    "blocks.{i}.mlp_norm.weight": "blk.{i}.ffn_norm.weight",
    "blocks.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "blocks.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "blocks.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
    "blocks.{i}.mlp.post_norm.weight": "blk.{i}.post_ffw_norm.weight",
    # GPT-2: learned positions, LayerNorm biases, output and MLP biases
    "pos_embedding.weight": "position_embd.weight",
    "norm.bias": "output_norm.bias",
    "blocks.{i}.attn_norm.bias": "blk.{i}.attn_norm.bias",
    "blocks.{i}.attn.o_proj.bias": "blk.{i}.attn_output.bias",
    "blocks.{i}.mlp_norm.bias": "blk.{i}.ffn_norm.bias",
    "blocks.{i}.mlp.up_proj.bias": "blk.{i}.ffn_up.bias",
    "blocks.{i}.mlp.down_proj.bias": "blk.{i}.ffn_down.bias",
}


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the internal layout needs, with its shape."""
    D, F, V, dh = cfg.d_model, cfg.d_mlp, cfg.vocab_size, cfg.d_head
    H, K = cfg.n_heads, cfg.n_kv_heads
    norm_params = ("weight", "bias") if cfg.norm == "layer" else ("weight",)

    def linear(name: str, rows: int, cols: int, bias: bool) -> dict[str, tuple[int, ...]]:
        return {f"{name}.weight": (rows, cols)} | ({f"{name}.bias": (rows,)} if bias else {})

    def norm(name: str) -> dict[str, tuple[int, ...]]:
        return {f"{name}.{p}": (D,) for p in norm_params}

    per_layer: dict[str, tuple[int, ...]] = {}
    if cfg.pre_norms:
        per_layer |= norm("attn_norm") | norm("mlp_norm")
    per_layer |= linear("attn.q_proj", H * dh, D, cfg.qkv_bias)
    per_layer |= linear("attn.k_proj", K * dh, D, cfg.qkv_bias)
    per_layer |= linear("attn.v_proj", K * dh, D, cfg.qkv_bias)
    per_layer |= linear("attn.o_proj", D, H * dh, cfg.o_bias)
    if cfg.qk_norm:
        q_span, k_span = (dh, dh) if cfg.qk_norm_per_head else (H * dh, K * dh)
        per_layer |= {"attn.q_norm.weight": (q_span,), "attn.k_norm.weight": (k_span,)}
    if cfg.post_norms:
        per_layer |= norm("attn.post_norm") | norm("mlp.post_norm")
    if cfg.gated_mlp:
        per_layer |= linear("mlp.gate_proj", F, D, cfg.mlp_bias)
    per_layer |= linear("mlp.up_proj", F, D, cfg.mlp_bias)
    per_layer |= linear("mlp.down_proj", D, F, cfg.mlp_bias)
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (V, D)} | norm("norm")
    if cfg.positions == "learned":
        shapes["pos_embedding.weight"] = (cfg.context_length, D)
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


# llama.cpp's fused tensors of a family: GGUF name -> our tensors, stacked along the rows
GGUF_FUSED: dict[str, dict[str, tuple[str, ...]]] = {
    "gpt2": {
        "blk.{i}.attn_qkv.weight": tuple(f"blocks.{{i}}.attn.{p}_proj.weight" for p in "qkv"),
        "blk.{i}.attn_qkv.bias": tuple(f"blocks.{{i}}.attn.{p}_proj.bias" for p in "qkv"),
    },
    "phi3": {
        "blk.{i}.attn_qkv.weight": tuple(f"blocks.{{i}}.attn.{p}_proj.weight" for p in "qkv"),
        # Phi-3's gate_up_proj kept fused under ffn_up (Phi3MiniModel maps it whole);
        # llama.cpp's SwiGLU activates the first half, so the gate rows come first
        "blk.{i}.ffn_up.weight": tuple(f"blocks.{{i}}.mlp.{p}_proj.weight" for p in ("gate", "up")),
    },
}


def config_from_gguf(
    metadata: Mapping[str, Any], tensor_names: set[str], load: TensorSource | None = None
) -> ModelConfig:
    """Read the model shape from GGUF metadata (keys are prefixed by the architecture);
    `load` reads Llama 3's RoPE factors from the rope_freqs tensor when the file has one."""
    arch = str(metadata.get("general.architecture", ""))
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"architecture {arch!r} is not supported (supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}; Hugging Face folders of more families)"
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
        norm_eps=float(
            get(
                "attention.layer_norm_epsilon"
                if arch == "gpt2"
                else "attention.layer_norm_rms_epsilon"
            )
        ),
        rope_theta=float(get("rope.freq_base", 10_000.0)),
        tie_embeddings="output.weight" not in tensor_names,
        bos_token_id=_optional_int(metadata.get("tokenizer.ggml.bos_token_id")),
        eos_token_id=_optional_int(metadata.get("tokenizer.ggml.eos_token_id")),
    )
    rope_dims = metadata.get(f"{arch}.rope.dimension_count")
    if rope_dims is not None and int(rope_dims) != d_head:  # Phi-4-mini rotates 3/4 of a head
        common["rotary_dim"] = int(rope_dims)
    scaling_type = metadata.get(f"{arch}.rope.scaling.type", "none")
    if scaling_type == "linear":
        common["rope_scaling"] = float(get("rope.scaling.factor"))
    elif scaling_type not in ("none", None):
        raise UnsupportedModelError(
            f"RoPE scaling {scaling_type!r} is not supported (supported: linear, and Llama 3's "
            "as a rope_freqs tensor)"
        )
    if "rope_freqs.weight" in tensor_names and load is not None:  # Llama 3 scaling
        common["rope_freq_factors"] = tuple(load("rope_freqs.weight").float().tolist())
    window = metadata.get(f"{arch}.attention.sliding_window")
    every_layer = dict(local_layers=tuple(range(n_layers)), rope_theta_local=common["rope_theta"])
    extra: dict[str, Any] = dict(activation="silu")
    if arch == "qwen2":
        extra |= dict(qkv_bias=True)
    elif arch == "qwen3":
        extra |= dict(qk_norm=True)
    elif arch == "phi3" and window:  # every layer within the window
        extra |= dict(sliding_window=int(window), **every_layer)
    elif arch == "gpt2":
        extra = dict(
            activation="gelu_tanh", norm="layer", gated_mlp=False, positions="learned",
            qkv_bias=True, o_bias=True, mlp_bias=True,
        )  # fmt: skip
    elif arch in ("gemma2", "gemma3"):
        # The GGUF names the window but not the layer pattern, the local RoPE base or the
        # attention scale; llama.cpp hard-codes them, and so do we, as it does.
        extra = dict(
            activation="gelu_tanh", sliding_window=int(get("attention.sliding_window")),
            post_norms=True, embed_scale=math.sqrt(d_model),
        )  # fmt: skip
        if arch == "gemma2":  # even layers local; softmax scale 1/sqrt(d_head), 27B's from D/H
            extra |= dict(
                local_layers=gemma3_local_layers(n_layers, pattern=2),
                rope_theta_local=common["rope_theta"],
                attn_scale=(d_model / n_heads) ** -0.5 if n_layers == 46 else None,
                attn_softcap=_optional_float(metadata.get("gemma2.attn_logit_softcapping")),
                final_softcap=_optional_float(metadata.get("gemma2.final_logit_softcapping")),
            )
        else:  # every 6th layer global, local base 10k, query_pre_attn_scalar 256 throughout
            extra |= dict(
                local_layers=gemma3_local_layers(n_layers),
                rope_theta_local=10_000.0,
                qk_norm=True,
                attn_scale=256**-0.5,
            )
    return ModelConfig(family=arch, **common, **extra)


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
    used: set[str] = {"rope_freqs.weight"} & available  # read into the config
    shapes = expected_shapes(cfg)
    for fused_template, parts in GGUF_FUSED.get(cfg.family, {}).items():
        for i in range(cfg.n_layers):
            source, names = fused_template.format(i=i), [p.format(i=i) for p in parts]
            if source not in available:
                raise UnsupportedModelError(f"GGUF tensor {source!r} is missing")
            rows = [shapes[n][0] for n in names]
            want = (sum(rows), *shapes[names[0]][1:])
            tensor = _check_shape(" + ".join(names), source, load(source), want)
            state |= {n: p.contiguous() for n, p in zip(names, tensor.split(rows), strict=True)}
            used.add(source)
    for name, shape in shapes.items():
        if name in state:
            continue
        source = external_name(GGUF_NAMES, name)
        if source not in available:
            raise UnsupportedModelError(
                f"GGUF tensor {source!r} is missing; the file is not a complete {cfg.family} model"
            )
        tensor = load(source)
        permuted = cfg.family in _GGUF_PERMUTED
        if permuted and name.endswith("attn.q_proj.weight"):
            tensor = unpermute_rope(tensor, cfg.n_heads)
        elif permuted and name.endswith("attn.k_proj.weight"):
            tensor = unpermute_rope(tensor, cfg.n_kv_heads)
        state[name] = _check_shape(name, source, tensor, shape)
        used.add(source)
    return state, sorted(available - used)


# --- Hugging Face folders -------------------------------------------------------------
#
# A family is read by its config.json (`_hf_config_fields` says which ModelConfig fields
# each differs in) and its tensor names: a table from our module paths to the checkpoint's
# (".weight" and ".bias" follow), fused tensors split into ours, and two layout
# conventions (Gemma's 1 + w norms, GPT-2's Conv1D matrices stored as (in, out)).

# our module -> the checkpoint's module, relative to the family's prefix; {i} is the layer
_LLAMA_MODULES: dict[str, str] = {
    "embedding": "embed_tokens",
    "norm": "norm",
    "blocks.{i}.attn_norm": "layers.{i}.input_layernorm",
    "blocks.{i}.attn.q_proj": "layers.{i}.self_attn.q_proj",
    "blocks.{i}.attn.k_proj": "layers.{i}.self_attn.k_proj",
    "blocks.{i}.attn.v_proj": "layers.{i}.self_attn.v_proj",
    "blocks.{i}.attn.o_proj": "layers.{i}.self_attn.o_proj",
    "blocks.{i}.attn.q_norm": "layers.{i}.self_attn.q_norm",
    "blocks.{i}.attn.k_norm": "layers.{i}.self_attn.k_norm",
    # Llama's "post_attention_layernorm" is the norm *before* the MLP
    "blocks.{i}.mlp_norm": "layers.{i}.post_attention_layernorm",
    "blocks.{i}.mlp.gate_proj": "layers.{i}.mlp.gate_proj",
    "blocks.{i}.mlp.up_proj": "layers.{i}.mlp.up_proj",
    "blocks.{i}.mlp.down_proj": "layers.{i}.mlp.down_proj",
}
_GEMMA_MODULES = {
    **_LLAMA_MODULES,
    "blocks.{i}.attn.post_norm": "layers.{i}.post_attention_layernorm",
    "blocks.{i}.mlp_norm": "layers.{i}.pre_feedforward_layernorm",
    "blocks.{i}.mlp.post_norm": "layers.{i}.post_feedforward_layernorm",
}
_OLMO2_MODULES = {
    **_LLAMA_MODULES,
    "blocks.{i}.attn.post_norm": "layers.{i}.post_attention_layernorm",
    "blocks.{i}.mlp.post_norm": "layers.{i}.post_feedforward_layernorm",
}
_GPT2_MODULES = {
    "embedding": "wte",
    "pos_embedding": "wpe",
    "norm": "ln_f",
    "blocks.{i}.attn_norm": "h.{i}.ln_1",
    "blocks.{i}.attn.o_proj": "h.{i}.attn.c_proj",
    "blocks.{i}.mlp_norm": "h.{i}.ln_2",
    "blocks.{i}.mlp.up_proj": "h.{i}.mlp.c_fc",
    "blocks.{i}.mlp.down_proj": "h.{i}.mlp.c_proj",
}
_NEOX_MODULES = {
    "embedding": "embed_in",
    "norm": "final_layer_norm",
    "blocks.{i}.attn_norm": "layers.{i}.input_layernorm",
    "blocks.{i}.attn.o_proj": "layers.{i}.attention.dense",
    "blocks.{i}.mlp_norm": "layers.{i}.post_attention_layernorm",
    "blocks.{i}.mlp.up_proj": "layers.{i}.mlp.dense_h_to_4h",
    "blocks.{i}.mlp.down_proj": "layers.{i}.mlp.dense_4h_to_h",
}
_QKV = ("blocks.{i}.attn.q_proj", "blocks.{i}.attn.k_proj", "blocks.{i}.attn.v_proj")
_LLAMA_PREFIXES = ("model.", "model.language_model.", "language_model.model.")


@dataclass(frozen=True)
class Fused:
    """One checkpoint tensor holding several of ours, stacked along the output rows:
    "concat" one after another ([q; k; v], Phi-3, GPT-2), "per_head" interleaved by head
    (GPT-NeoX: head h's q, k, v rows together)."""

    parts: tuple[str, ...]
    layout: Literal["concat", "per_head"] = "concat"


@dataclass(frozen=True)
class HFFamily:
    """How one family's Hugging Face checkpoints name and lay out their tensors."""

    label: str  # ModelConfig.family
    title: str  # for people: "Llama 2 / 3.x"
    differs: str  # what it differs in from Llama, one line
    model_types: tuple[str, ...]  # config.json's model_type values read as this family
    modules: dict[str, str]
    fused: dict[str, Fused] = field(default_factory=dict)
    prefixes: tuple[str, ...] = _LLAMA_PREFIXES
    unembed: tuple[str, ...] = ("lm_head.weight",)
    norm_offset: float = 0.0  # Gemma stores w for an RMSNorm that scales by 1 + w
    conv1d: bool = False  # GPT-2 stores its matrices as (in, out)


HF_FAMILIES: dict[str, HFFamily] = {
    f.label: f
    for f in [
        HFFamily(
            "llama", "Llama 2 / 3.x, SmolLM", "the reference: RMSNorm, SwiGLU, RoPE "
            "(scaling 'linear' and 'llama3')", ("llama",), _LLAMA_MODULES,
        ),
        HFFamily(
            "mistral", "Mistral", "every layer attends within a sliding window",
            ("mistral",), _LLAMA_MODULES,
        ),
        HFFamily(
            "qwen2", "Qwen 2 / 2.5", "biases on q, k and v", ("qwen2",), _LLAMA_MODULES
        ),
        HFFamily(
            "qwen3", "Qwen 3", "RMSNorm on each query and key head, explicit head_dim",
            ("qwen3",), _LLAMA_MODULES,
        ),
        HFFamily(
            "gemma2", "Gemma 2", "GELU(tanh), norms before and after attention and MLP, "
            "soft-capped attention scores and logits, alternating local/global layers, "
            "scaled embeddings, query_pre_attn_scalar", ("gemma2",), _GEMMA_MODULES,
            norm_offset=1.0,
        ),
        HFFamily(
            "gemma3", "Gemma 3 (text)", "as Gemma 2 without soft caps, with QK-norm, 5 local "
            "layers per global one, a local RoPE base", ("gemma3_text", "gemma3"),
            _GEMMA_MODULES, norm_offset=1.0,
        ),
        HFFamily(
            "gpt2", "GPT-2", "LayerNorm, biases everywhere, plain GELU MLP, learned "
            "positions, Conv1D layout, fused qkv, tied unembedding", ("gpt2",), _GPT2_MODULES,
            fused={"h.{i}.attn.c_attn": Fused(_QKV)}, prefixes=("transformer.", ""),
            conv1d=True,
        ),
        HFFamily(
            "gpt_neox", "GPT-NeoX / Pythia", "parallel attention and MLP, rotary on part of "
            "each head, LayerNorm, biases, plain GELU MLP, fused qkv by head, untied",
            ("gpt_neox",), _NEOX_MODULES,
            fused={"layers.{i}.attention.query_key_value": Fused(_QKV, "per_head")},
            prefixes=("gpt_neox.",), unembed=("embed_out.weight", "lm_head.weight"),
        ),
        HFFamily(
            "phi3", "Phi-3", "fused qkv and gate_up projections", ("phi3",),
            {k: v for k, v in _LLAMA_MODULES.items() if "proj" not in k or "o_proj" in k
             or "down_proj" in k},
            fused={
                "layers.{i}.self_attn.qkv_proj": Fused(_QKV),
                "layers.{i}.mlp.gate_up_proj": Fused(
                    ("blocks.{i}.mlp.gate_proj", "blocks.{i}.mlp.up_proj")
                ),
            },
        ),
        HFFamily(
            "olmo2", "OLMo 2", "norms only after attention and MLP, RMSNorm over the whole "
            "query and key projections", ("olmo2",), _OLMO2_MODULES,
        ),
    ]
}  # fmt: skip
HF_MODEL_TYPES = {t: f.label for f in HF_FAMILIES.values() for t in f.model_types}
ROPE_TYPES = ("default", "linear", "llama3")


def family_rows() -> list[dict[str, Any]]:
    """The families factscope reads, for `factscope models` and docs: plain data."""
    return [
        {
            "family": f.label,
            "title": f.title,
            "model_types": list(f.model_types),
            "gguf": f.label in SUPPORTED_ARCHITECTURES,
            "differs": f.differs,
        }
        for f in HF_FAMILIES.values()
    ]


def supported_families() -> str:
    """The model_type values factscope reads, for error messages."""
    return ", ".join(HF_MODEL_TYPES)


def config_from_hf(hf: Mapping[str, Any]) -> ModelConfig:
    """Read a Hugging Face config.json of a supported family into a ModelConfig."""
    model_type = str(hf.get("model_type", ""))
    if model_type == "gemma3" and "text_config" in hf:
        hf = {**hf["text_config"], "model_type": "gemma3_text"}
    family = HF_MODEL_TYPES.get(model_type)
    if family is None:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported; factscope reads {supported_families()}"
        )
    try:
        return ModelConfig(family=family, **_hf_config_fields(family, hf))
    except KeyError as e:
        raise UnsupportedModelError(
            f"config.json of this {family} model lacks {e.args[0]!r}; the file is incomplete"
        ) from None
    except ValueError as e:  # ModelConfig's own checks: the numbers contradict each other
        raise UnsupportedModelError(f"config.json is inconsistent: {e}") from None


def _hf_config_fields(family: str, hf: Mapping[str, Any]) -> dict[str, Any]:
    """ModelConfig's fields (except family) from config.json, old and new key names alike."""

    def key(*names: str, default: Any = KeyError) -> Any:
        for name in names:
            if hf.get(name) is not None:
                return hf[name]
        if default is KeyError:
            raise KeyError(names[0])
        return default

    d_model = int(key("hidden_size", "n_embd"))
    n_heads = int(key("num_attention_heads", "n_head"))
    n_layers = int(key("num_hidden_layers", "n_layer"))
    d_head = int(key("head_dim", default=d_model // n_heads))
    rope = _hf_rope(hf, "full_attention")
    fields: dict[str, Any] = dict(
        vocab_size=int(key("vocab_size")),
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=int(key("num_key_value_heads", default=n_heads)),
        d_head=d_head,
        d_mlp=int(key("intermediate_size", "n_inner", default=4 * d_model)),
        context_length=int(key("max_position_embeddings", "n_positions", default=2048)),
        norm_eps=float(key("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", default=1e-6)),
        activation=_hf_activation(key("hidden_activation", "hidden_act", "activation_function",
                                      default="silu")),
        rope_theta=rope.theta,
        rope_scaling=rope.factor,
        rotary_dim=None if rope.partial == 1.0 else int(d_head * rope.partial),
        tie_embeddings=bool(key("tie_word_embeddings", default=family in ("gpt2", "gemma2",
                                                                          "gemma3"))),
        bos_token_id=_optional_int(hf.get("bos_token_id")),
        eos_token_id=_optional_int(_first(hf.get("eos_token_id"))),
        qkv_bias=bool(key("attention_bias", default=False)),
        o_bias=bool(key("attention_bias", default=False)),
        mlp_bias=bool(key("mlp_bias", default=False)),
    )  # fmt: skip
    if rope.llama3 is not None:  # one divisor per frequency, in place of the one factor
        rotary = fields["rotary_dim"] or d_head
        fields["rope_freq_factors"] = llama3_factors(rope.theta, rotary, rope.factor, *rope.llama3)
        fields["rope_scaling"] = 1.0
    window = hf.get("sliding_window")
    local = _hf_local_layers(hf, n_layers, window)
    if local and window is not None:
        fields |= dict(sliding_window=int(window), local_layers=local, rope_theta_local=rope.theta)
    if family == "qwen2":
        fields |= dict(qkv_bias=True, o_bias=False)
    elif family == "qwen3":
        fields |= dict(qk_norm=True)
    elif family == "olmo2":
        fields |= dict(pre_norms=False, post_norms=True, qk_norm=True, qk_norm_per_head=False)
    elif family in ("gpt2", "gpt_neox"):
        fields |= dict(norm="layer", gated_mlp=False, qkv_bias=True, o_bias=True, mlp_bias=True)
        if family == "gpt2":
            fields |= dict(positions="learned", rotary_dim=None)
        else:
            fields |= dict(parallel_block=bool(key("use_parallel_residual", default=True)))
            fields["qkv_bias"] = fields["o_bias"] = bool(key("attention_bias", default=True))
    elif family in ("gemma2", "gemma3"):
        fields |= dict(
            post_norms=True,
            embed_scale=math.sqrt(d_model),
            attn_scale=float(key("query_pre_attn_scalar", default=256)) ** -0.5,
        )
        if family == "gemma2":
            fields |= dict(
                attn_softcap=_optional_float(hf.get("attn_logit_softcapping")),
                final_softcap=_optional_float(hf.get("final_logit_softcapping")),
            )
        else:
            fields |= dict(qk_norm=True)
            if local:
                fields["rope_theta_local"] = _hf_rope(hf, "sliding_attention").theta
    return fields


def _hf_local_layers(hf: Mapping[str, Any], n_layers: int, window: Any) -> tuple[int, ...]:
    """Which layers attend within the sliding window: config.json's `layer_types` when it
    names them; else every layer when a window is set (Mistral, Phi-3), the layers from
    `max_window_layers` on (Qwen with use_sliding_window), or Gemma's fixed pattern."""
    if window is None or hf.get("use_sliding_window") is False:
        return ()
    layer_types = hf.get("layer_types")
    if layer_types:
        return tuple(i for i, kind in enumerate(layer_types) if kind == "sliding_attention")
    model_type = hf.get("model_type")
    if model_type == "gemma2":
        return gemma3_local_layers(n_layers, pattern=2)
    if model_type in ("gemma3", "gemma3_text"):
        return gemma3_local_layers(n_layers, int(hf.get("sliding_window_pattern", 6)))
    if hf.get("use_sliding_window"):
        return tuple(range(int(hf.get("max_window_layers", 0)), n_layers))
    return tuple(range(n_layers))


_ACTIVATIONS = {
    "silu": "silu",
    "swish": "silu",
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
}


def _hf_activation(name: str) -> Activation:
    if name not in _ACTIVATIONS:
        raise UnsupportedModelError(
            f"activation {name!r} is not supported (supported: {', '.join(_ACTIVATIONS)})"
        )
    return _ACTIVATIONS[name]  # type: ignore[return-value]


@dataclass(frozen=True)
class _Rope:
    theta: float
    factor: float = 1.0
    llama3: tuple[float, float, int] | None = None
    partial: float = 1.0  # the fraction of each head that rotates


def _hf_rope(hf: Mapping[str, Any], layer_type: str) -> _Rope:
    """RoPE from either config style: transformers 5 writes `rope_parameters` (per layer
    type for Gemma 3), older files `rope_theta` / `rotary_emb_base`, `rope_scaling`,
    `partial_rotary_factor` / `rotary_pct` (Gemma 3's local base as `rope_local_base_freq`)."""
    params = hf.get("rope_parameters")
    if isinstance(params, Mapping) and layer_type in params:
        params = params[layer_type]
    if not isinstance(params, Mapping):
        if layer_type == "sliding_attention" and "rope_local_base_freq" in hf:
            params = {"rope_theta": hf["rope_local_base_freq"]}
        else:
            params = {
                "rope_theta": hf.get("rope_theta", hf.get("rotary_emb_base", 10_000.0)),
                **(hf.get("rope_scaling") or {}),
            }
    partial = params.get("partial_rotary_factor", hf.get("partial_rotary_factor"))
    partial = float(partial if partial is not None else hf.get("rotary_pct", 1.0))
    rope_type = params.get("rope_type", params.get("type", "default"))
    theta = float(params.get("rope_theta", 10_000.0))
    if rope_type == "default":
        return _Rope(theta, partial=partial)
    if rope_type == "linear":
        return _Rope(theta, float(params["factor"]), partial=partial)
    if rope_type == "llama3":
        llama3 = (
            float(params["low_freq_factor"]),
            float(params["high_freq_factor"]),
            int(params["original_max_position_embeddings"]),
        )
        return _Rope(theta, float(params["factor"]), llama3, partial)
    raise UnsupportedModelError(
        f"RoPE scaling {rope_type!r} is not supported (supported: {', '.join(ROPE_TYPES)})"
    )


def llama3_factors(
    theta: float,
    d_rot: int,
    factor: float,
    low_freq_factor: float,
    high_freq_factor: float,
    context: int,
) -> tuple[float, ...]:
    """Llama 3's RoPE scaling as one divisor per frequency (what llama.cpp stores as
    rope_freqs): wavelengths longer than context / low_freq_factor are stretched by
    `factor`, those shorter than context / high_freq_factor kept, and the ones between
    blended linearly in context / wavelength (transformers' `_compute_llama3_parameters`)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, d_rot, 2, dtype=torch.int64).float() / d_rot))
    wavelength = 2 * math.pi / inv_freq
    smooth = (context / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    scaled = torch.where(wavelength > context / low_freq_factor, inv_freq / factor, inv_freq)
    medium = (wavelength >= context / high_freq_factor) & (wavelength <= context / low_freq_factor)
    scaled = torch.where(medium, blended, scaled)
    return tuple((inv_freq / scaled).tolist())  # fmt: skip


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


# checkpoint tensors that are buffers, not weights (older GPT-2, GPT-NeoX, Llama files)
_BUFFER_SUFFIXES = ("rotary_emb.inv_freq", "attn.bias", "attn.masked_bias", "attention.bias",
                    "attention.masked_bias")  # fmt: skip


def hf_tensor_name(family: HFFamily, prefix: str, internal: str) -> str | None:
    """The checkpoint's name for one of our tensors, or None if a fused tensor holds it."""
    if internal == "unembed.weight":
        return family.unembed[0]
    module, kind = internal.rsplit(".", 1)
    parts = module.split(".")
    template = module if parts[0] != "blocks" else ".".join(["blocks", "{i}", *parts[2:]])
    if template not in family.modules:
        return None
    layer = parts[1] if parts[0] == "blocks" else ""
    return prefix + family.modules[template].format(i=layer) + "." + kind


def convert_hf_tensors(
    cfg: ModelConfig, load: TensorSource, available: set[str], dtype: torch.dtype = torch.float32
) -> tuple[dict[str, Tensor], list[str]]:
    """Build the internal state dict, in `dtype`, from Hugging Face tensor names; returns
    (state, unused). A tensor already in `dtype` is kept as read (bfloat16 stays bfloat16,
    one copy). Tensors that are missing, or whose shape is not the one config.json implies,
    raise."""
    family = HF_FAMILIES[cfg.family]
    prefix = _hf_prefix(family, available)
    shapes = expected_shapes(cfg)
    state: dict[str, Tensor] = {}
    used: set[str] = set()

    def read(source: str, name: str) -> Tensor:
        if source not in available:
            raise UnsupportedModelError(
                f"safetensors tensor {source!r} is missing; the folder is not a complete "
                f"{cfg.family} model"
            )
        used.add(source)
        tensor = load(source)
        if family.conv1d and tensor.ndim == 2 and "embedding" not in name:
            tensor = tensor.t().contiguous()  # Conv1D's (in, out) -> Linear's (out, in)
        if name.endswith("norm.weight"):  # the offset added in float32, then rounded once
            tensor = tensor.float() + family.norm_offset
        return tensor.to(dtype)

    for fused_template, fused in family.fused.items():
        for i in range(cfg.n_layers):
            for kind in ("weight", "bias"):
                names = [f"{p.format(i=i)}.{kind}" for p in fused.parts]
                if names[0] not in shapes:
                    continue
                fused_source = prefix + fused_template.format(i=i) + "." + kind
                tensor = read(fused_source, names[0])
                rows = [shapes[n][0] for n in names]
                want = (sum(rows), *shapes[names[0]][1:])
                _check_shape(" + ".join(names), fused_source, tensor, want)
                if fused.layout == "per_head":  # (H, parts, dh, ...) rows
                    pieces = tensor.unflatten(0, (cfg.n_heads, len(names), -1)).unbind(1)
                    pieces = tuple(p.flatten(0, 1) for p in pieces)
                else:
                    pieces = tensor.split(rows)
                state |= {n: p.contiguous() for n, p in zip(names, pieces, strict=True)}
    for name, shape in shapes.items():
        if name in state:
            continue
        source: str | None = hf_tensor_name(family, prefix, name)
        if name == "unembed.weight":  # Pythia's files call it embed_out, newer ones lm_head
            source = next((s for s in family.unembed if s in available), family.unembed[0])
        if source is None:
            raise UnsupportedModelError(f"{cfg.family} checkpoints have no tensor for {name}")
        state[name] = _check_shape(name, source, read(source, name), shape)
    unused = sorted(n for n in available - used if not n.endswith(_BUFFER_SUFFIXES))
    if cfg.tie_embeddings:
        unused = [n for n in unused if n not in family.unembed]
    return state, unused


def _hf_prefix(family: HFFamily, available: set[str]) -> str:
    """'model.' for text checkpoints, 'model.language_model.' etc. for wrapped ones."""
    embedding = family.modules["embedding"] + ".weight"
    for prefix in family.prefixes:
        if prefix + embedding in available:
            return prefix
    raise UnsupportedModelError(
        f"no {family.prefixes[0]}{embedding} in the safetensors files; not a {family.title} "
        "checkpoint (is config.json's model_type right?)"
    )


def _check_shape(name: str, source: str, tensor: Tensor, shape: tuple[int, ...]) -> Tensor:
    if tuple(tensor.shape) != shape:
        raise UnsupportedModelError(
            f"tensor {source!r} has shape {tuple(tensor.shape)}, but the model's config "
            f"implies {shape} for {name}; the config and the weights disagree"
        )
    return tensor
