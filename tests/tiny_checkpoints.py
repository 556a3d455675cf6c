"""Tiny checkpoints on disk, in both formats, made from tiny transformers models.

`write_tiny_gguf` writes a GGUF file from a transformers model the way llama.cpp's
converter (`convert_hf_to_gguf.py`) does, without any of factscope's conversion code, so a
convention that factscope's GGUF reader got wrong cannot be shared by the writer: tensor
names come from the `gguf` package's own `TensorNameMap` (llama.cpp's gguf-py), and each
family's tensors and metadata are changed as that converter's model class changes them
(see `_llama_cpp_tensors` and `_llama_cpp_metadata`). `write_tiny_hf_folder` uses
transformers' own `save_pretrained`. Loading either back must give the transformers model's
logits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch
import transformers
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers
from torch import Tensor

from reference_models import tiny_hf_model
from tokenizer_vocabs import byte_level_metadata, gemma_like_metadata

# config.json model_type -> the GGUF architecture llama.cpp's converter writes it as
LLAMA_CPP_ARCH: dict[str, gguf.MODEL_ARCH] = {
    "llama": gguf.MODEL_ARCH.LLAMA,
    "qwen2": gguf.MODEL_ARCH.QWEN2,
    "qwen3": gguf.MODEL_ARCH.QWEN3,
    "phi3": gguf.MODEL_ARCH.PHI3,
    "gemma2": gguf.MODEL_ARCH.GEMMA2,
    "gemma3": gguf.MODEL_ARCH.GEMMA3,
    "gemma3_text": gguf.MODEL_ARCH.GEMMA3,
    "gpt2": gguf.MODEL_ARCH.GPT2,
}
GGUF_ARCHITECTURES = ("llama", "gemma2", "gemma3", "qwen2", "qwen3", "phi3", "gpt2")


def tiny_hf_for_gguf(family: str, seed: int = 0) -> transformers.PreTrainedModel:
    """A tiny transformers model whose config a GGUF file can express exactly."""
    vocab = len(_tokenizer_metadata(family)["tokenizer.ggml.tokens"])
    if family == "gemma3":
        # GGUF Gemma 3 files name no layer pattern (every 6th layer is global) and no
        # attention scale (query_pre_attn_scalar is 256 in every released size).
        return tiny_hf_model(
            family,
            seed,
            vocab_size=vocab,
            layer_types=["sliding_attention"] * 3,
            query_pre_attn_scalar=256,
        )
    return tiny_hf_model(family, seed, vocab_size=vocab)


def _tokenizer_metadata(family: str) -> dict[str, Any]:
    return gemma_like_metadata() if family.startswith("gemma3") else byte_level_metadata()


def write_tiny_gguf(
    path: Path,
    hf: transformers.PreTrainedModel,
    quantize: bool = True,
    *,
    gpt2_output_copy: bool = False,
) -> None:
    """Write `hf` as llama.cpp's converter would; with `quantize`, 2-D tensors whose rows
    fit Q8_0 blocks are stored as Q8_0 and the rest as F16 (1-D tensors stay F32, as
    llama.cpp keeps norms and biases). `gpt2_output_copy` writes GPT-2's tied unembedding
    out as `output.weight`, as older llama.cpp converters did (today's leave it out)."""
    config = hf.config.to_dict()
    model_type = str(config["model_type"])
    arch = LLAMA_CPP_ARCH[model_type]
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    for key, value in _llama_cpp_metadata(model_type, config).items():
        _add_metadata(writer, key.format(arch=gguf.MODEL_ARCH_NAMES[arch]), value)
    for key, value in _tokenizer_metadata(model_type).items():
        _add_metadata(writer, key, value)
    names = gguf.get_tensor_name_map(arch, int(_hparam(config, "num_hidden_layers", "n_layer")))
    tensors = [
        (names.get_name(name, try_suffixes=(".weight", ".bias")), tensor)
        for name, tensor in _llama_cpp_tensors(model_type, config, hf.state_dict())
    ]
    for gguf_name, tensor in [*_llama_cpp_extra_tensors(model_type, config), *tensors]:
        assert gguf_name is not None, "a tensor llama.cpp has no GGUF name for"
        if gpt2_output_copy and gguf_name == "token_embd.weight":
            writer.add_tensor("output.weight", tensor.float().numpy())
        data = tensor.float().numpy()
        if quantize and data.ndim == 2 and data.shape[1] % 32 == 0:
            q8 = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(gguf_name, q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        elif quantize and data.ndim == 2:
            writer.add_tensor(gguf_name, data.astype(np.float16))
        else:
            writer.add_tensor(gguf_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _hparam(config: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    return next((config[k] for k in keys if config.get(k) is not None), default)


def _rope(config: Mapping[str, Any], layer_type: str = "full_attention") -> dict[str, Any]:
    """RoPE parameters from either config style (transformers 5's `rope_parameters`, per
    layer type for Gemma 3; older `rope_theta` + `rope_scaling`)."""
    params = config.get("rope_parameters")
    if isinstance(params, Mapping) and layer_type in params:
        params = params[layer_type]
    if not isinstance(params, Mapping):
        params = {"rope_theta": config.get("rope_theta"), **(config.get("rope_scaling") or {})}
    return dict(params)


def _llama_cpp_metadata(model_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The `{arch}.` keys llama.cpp's converter writes for this family: `TextModel`'s
    generic `set_gguf_parameters` and each model class's own (`LlamaModel`,
    `Phi3MiniModel`, `Gemma2Model`, `Gemma3Model`, `GPT2Model` in convert_hf_to_gguf.py)."""
    c, rope = config, _rope(config)
    n_embd = _hparam(c, "hidden_size", "n_embd")
    n_head = _hparam(c, "num_attention_heads", "n_head")
    meta: dict[str, Any] = {
        "{arch}.block_count": _hparam(c, "num_hidden_layers", "n_layer"),
        "{arch}.context_length": _hparam(c, "max_position_embeddings", "n_ctx", "n_positions"),
        "{arch}.embedding_length": n_embd,
        "{arch}.attention.head_count": n_head,
    }
    if model_type == "gpt2":  # GPT2Model: no KV heads, no RoPE, the MLP 4x wide
        meta["{arch}.feed_forward_length"] = 4 * n_embd
        meta["{arch}.attention.layer_norm_epsilon"] = float(c["layer_norm_epsilon"])
        return meta
    meta["{arch}.feed_forward_length"] = c["intermediate_size"]
    meta["{arch}.attention.head_count_kv"] = _hparam(c, "num_key_value_heads", default=n_head)
    meta["{arch}.attention.layer_norm_rms_epsilon"] = float(c["rms_norm_eps"])
    if c.get("head_dim") is not None:
        meta["{arch}.attention.key_length"] = meta["{arch}.attention.value_length"] = c["head_dim"]
    if model_type != "gemma2":  # Gemma2Model writes no RoPE base (llama.cpp assumes 10,000)
        meta["{arch}.rope.freq_base"] = float(rope["rope_theta"])
    head_dim = _hparam(c, "head_dim", default=n_embd // n_head)
    if model_type == "llama":
        meta["{arch}.vocab_size"] = c["vocab_size"]
        meta["{arch}.rope.dimension_count"] = head_dim
        if rope.get("rope_type", rope.get("type")) == "linear":
            meta["{arch}.rope.scaling.type"] = "linear"
            meta["{arch}.rope.scaling.factor"] = float(rope["factor"])
    elif model_type == "phi3":  # the window 0 when the config names none ("not Phi-4")
        partial = float(rope.get("partial_rotary_factor", c.get("partial_rotary_factor") or 1.0))
        meta["{arch}.rope.dimension_count"] = int(partial * n_embd) // n_head
        meta["{arch}.attention.sliding_window"] = c.get("sliding_window") or 0
    elif model_type == "gemma2":
        meta["{arch}.attn_logit_softcapping"] = float(c["attn_logit_softcapping"])
        meta["{arch}.final_logit_softcapping"] = float(c["final_logit_softcapping"])
        meta["{arch}.attention.sliding_window"] = c["sliding_window"]
    elif model_type in ("gemma3", "gemma3_text"):
        meta["{arch}.attention.sliding_window"] = c["sliding_window"]
        if c.get("final_logit_softcapping"):
            meta["{arch}.final_logit_softcapping"] = float(c["final_logit_softcapping"])
    return meta


def _llama_cpp_tensors(
    model_type: str, config: Mapping[str, Any], state: Mapping[str, Tensor]
) -> Iterator[tuple[str, Tensor]]:
    """The Hugging Face tensors as llama.cpp's converter changes them before naming them
    (each model class's `modify_tensors` / `generate_extra_tensors`):

    - llama (`LlamaModel.permute`): each head's q and k rows reordered from [first half,
      second half] to interleaved pairs, for its adjacent-pair RoPE;
    - gemma2, gemma3 (`Gemma2Model.modify_tensors`, `Gemma3Model.norm_shift`): 1 added to
      every `*norm.weight`, since Gemma's RMSNorm multiplies by 1 + w;
    - gpt2 (`GPT2Model.modify_tensors`): the Conv1D matrices c_attn, c_proj, c_fc
      transposed to (out, in); the attention-mask buffers dropped;
    - phi3: qkv_proj and gate_up_proj kept fused (attn_qkv; ffn_up, gate rows first).

    A tied unembedding is not in a saved checkpoint, so it is not written.
    """
    n_head = _hparam(config, "num_attention_heads", "n_head")
    n_kv = _hparam(config, "num_key_value_heads", default=n_head)
    tied = bool(config.get("tie_word_embeddings", model_type == "gpt2"))
    for name, tensor in state.items():
        tensor = tensor.detach().float()
        if name == "lm_head.weight" and tied:
            continue
        if name.endswith((".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")):
            continue
        if model_type == "llama" and name.endswith(("q_proj.weight", "q_proj.bias")):
            tensor = _pair_rows(tensor, n_head)
        elif model_type == "llama" and name.endswith(("k_proj.weight", "k_proj.bias")):
            tensor = _pair_rows(tensor, n_kv)
        elif model_type.startswith("gemma") and name.endswith("norm.weight"):
            tensor = tensor + 1
        elif model_type == "gpt2" and name.endswith(
            (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")
        ):
            tensor = tensor.t().contiguous()
        yield name, tensor


def _llama_cpp_extra_tensors(
    model_type: str, config: Mapping[str, Any]
) -> Iterator[tuple[str, Tensor]]:
    """Tensors llama.cpp's converter adds under their GGUF names: Llama 3's scaling as one
    `rope_freqs` divisor per frequency (`LlamaModel.generate_extra_tensors`)."""
    if model_type == "llama" and _rope(config).get("rope_type") == "llama3":
        yield "rope_freqs.weight", _llama3_divisors(config)


def _pair_rows(weight: Tensor, heads: int) -> Tensor:
    """Within each head, rows [x_0 .. x_{h-1}, y_0 .. y_{h-1}] become [x_0, y_0, x_1, y_1,
    ...]: the order in which llama.cpp's RoPE rotates adjacent pairs."""
    per_head = weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
    # (heads, 2, h, ...) -> (heads, h, 2, ...)
    return per_head.transpose(1, 2).reshape(weight.shape).contiguous()


def _llama3_divisors(config: Mapping[str, Any]) -> Tensor:
    """Llama 3's scaled RoPE as llama.cpp stores it: unscaled / scaled frequency, one per
    rotated pair, from transformers' own `llama3` RoPE initialisation."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf_config = transformers.LlamaConfig(**{**config, "architectures": None})
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](hf_config, "cpu")
    theta = float(_rope(config)["rope_theta"])
    heads = config["num_attention_heads"]
    dim = _hparam(config, "head_dim", default=config["hidden_size"] // heads)
    plain = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)
    return (plain / scaled.float()).float()


def _add_metadata(writer: gguf.GGUFWriter, key: str, value: Any) -> None:
    if key == "general.architecture":
        return  # written by the GGUFWriter constructor
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, np.ndarray):
        writer.add_array(key, value.tolist())
    else:
        writer.add_array(key, list(value))


def write_tiny_hf_folder(folder: Path, hf: transformers.PreTrainedModel) -> None:
    """save_pretrained plus a small word-level tokenizer.json."""
    hf.save_pretrained(folder, safe_serialization=True)
    vocab = {f"w{i}": i for i in range(hf.config.vocab_size)}
    tok = HFTokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))


def logits_of(hf: transformers.PreTrainedModel, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf(tokens).logits
