"""Tiny random Hugging Face models of each family and their conversion to ours.

The reference for our forward pass on small shapes: transformers' own Llama and Gemma 3
implementations with random weights (norm weights randomised too, so a wrong norm
convention shows), converted into our layout with the same code that loads checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch
import transformers

from factscope.config import tiny_config
from factscope.model import Transformer
from factscope.weights.convert import config_from_hf, convert_hf_tensors

TINY: dict[str, dict[str, Any]] = {
    "llama": dict(
        vocab_size=97,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=48,
        rms_norm_eps=1e-6,
        rope_theta=10_000.0,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    ),
    "gemma3": dict(
        vocab_size=97,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=48,
        rms_norm_eps=1e-6,
        max_position_embeddings=64,
        sliding_window=4,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        query_pre_attn_scalar=8,
        tie_word_embeddings=True,
    ),
}


def random_model(family: str, seed: int = 0) -> Transformer:
    """A tiny model of ours with random weights, norm weights spread around 1."""
    torch.manual_seed(seed)
    model = Transformer(tiny_config(family)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
    return model


def tiny_hf_model(family: str, seed: int = 0, **overrides: Any) -> transformers.PreTrainedModel:
    """A random transformers model of `family` ("llama" or "gemma3"), float32, eval mode."""
    torch.manual_seed(seed)
    kwargs = {**TINY[family], **overrides}
    if family == "llama":
        hf: transformers.PreTrainedModel = transformers.LlamaForCausalLM(
            transformers.LlamaConfig(**kwargs)
        )
    else:
        hf = transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**kwargs))
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(torch.randn_like(param) * 0.3 + (0.0 if family == "gemma3" else 1.0))
    return hf.float().eval()


def ours_from_hf(hf: transformers.PreTrainedModel) -> Transformer:
    """Convert a transformers model's weights into our Transformer."""
    cfg = config_from_hf(hf.config.to_dict())
    state = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    converted, unused = convert_hf_tensors(cfg, state.__getitem__, set(state))
    assert not unused, unused
    return Transformer.from_state_dict(cfg, converted).eval()


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """‖ours − ref‖ / ‖ref‖."""
    return float((ours.double() - ref.double()).norm() / ref.double().norm())
