"""Tiny checkpoints on disk, in both formats, made from tiny transformers models.

`write_tiny_gguf` writes a GGUF file the way llama.cpp's converter lays one out (Q/K rows
permuted for Llama, Gemma norms stored as 1 + w, a tokenizer in the metadata);
`write_tiny_hf_folder` uses transformers' own `save_pretrained`. Loading either back must
give the transformers model's logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch
import transformers
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers

from factscope.weights.convert import (
    GGUF_FUSED,
    GGUF_NAMES,
    config_from_hf,
    convert_hf_tensors,
    expected_shapes,
    external_name,
    permute_rope,
)
from reference_models import tiny_hf_model
from tokenizer_vocabs import byte_level_metadata, gemma_like_metadata

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
    return gemma_like_metadata() if family == "gemma3" else byte_level_metadata()


def write_tiny_gguf(path: Path, hf: transformers.PreTrainedModel, quantize: bool = True) -> None:
    """Write `hf` as a GGUF file; with `quantize`, 2-D tensors whose rows fit Q8_0 blocks
    are stored as Q8_0 and the rest as F16 (norms stay F32, as llama.cpp keeps them)."""
    cfg = config_from_hf(hf.config.to_dict())
    state = {k: v.detach() for k, v in hf.state_dict().items()}
    internal, _ = convert_hf_tensors(cfg, state.__getitem__, set(state))
    arch = cfg.family
    assert arch in GGUF_ARCHITECTURES, arch
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(cfg.n_layers)
    writer.add_context_length(cfg.context_length)
    writer.add_embedding_length(cfg.d_model)
    writer.add_feed_forward_length(cfg.d_mlp)
    writer.add_head_count(cfg.n_heads)
    writer.add_head_count_kv(cfg.n_kv_heads)
    if cfg.norm == "layer":
        writer.add_layer_norm_eps(cfg.norm_eps)
    else:
        writer.add_layer_norm_rms_eps(cfg.norm_eps)
    if cfg.attn_softcap is not None:
        writer.add_attn_logit_softcapping(cfg.attn_softcap)
    if cfg.final_softcap is not None:
        writer.add_final_logit_softcapping(cfg.final_softcap)
    writer.add_rope_freq_base(cfg.rope_theta)
    writer.add_key_length(cfg.d_head)
    writer.add_value_length(cfg.d_head)
    if cfg.sliding_window is not None:
        writer.add_sliding_window(cfg.sliding_window)
    for key, value in _tokenizer_metadata(cfg.family).items():
        _add_metadata(writer, key, value)
    if cfg.rope_freq_factors is not None:  # Llama 3 scaling, as llama.cpp's converter writes it
        writer.add_tensor("rope_freqs.weight", np.array(cfg.rope_freq_factors, dtype=np.float32))
    if cfg.family == "gpt2":  # llama.cpp writes GPT-2's tied unembedding out as a copy
        writer.add_tensor("output.weight", internal["embedding.weight"].float().numpy())
    fused_parts: set[str] = set()
    for template, parts in GGUF_FUSED.get(cfg.family, {}).items():
        for i in range(cfg.n_layers):
            names = [p.format(i=i) for p in parts]
            fused = torch.cat([internal[n] for n in names]).float().numpy()
            writer.add_tensor(template.format(i=i), fused)
            fused_parts |= set(names)
    for name in expected_shapes(cfg):
        if name in fused_parts:
            continue
        tensor = internal[name]
        if cfg.family == "llama" and name.endswith("q_proj.weight"):
            tensor = permute_rope(tensor, cfg.n_heads)
        elif cfg.family == "llama" and name.endswith("k_proj.weight"):
            tensor = permute_rope(tensor, cfg.n_kv_heads)
        data = tensor.float().numpy()
        gguf_name = external_name(GGUF_NAMES, name)
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


def _add_metadata(writer: gguf.GGUFWriter, key: str, value: Any) -> None:
    if key == "general.architecture":
        return  # written by the GGUFWriter constructor
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
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
