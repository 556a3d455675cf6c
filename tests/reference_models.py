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
    """A tiny model of ours with random weights, norm weights spread around 1; for the
    names of FAMILY_CONFIGS, the conversion of that tiny transformers model."""
    if family in FAMILY_CONFIGS:
        return ours_from_hf(tiny_family_model(family, seed))
    torch.manual_seed(seed)
    model = Transformer(tiny_config(family)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
    return model


_SHAPE: dict[str, Any] = dict(
    vocab_size=97,
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=48,
    max_position_embeddings=64,
    bos_token_id=1,
    eos_token_id=2,
)
# One tiny config per family, each switching on what the family differs in (sliding windows
# shorter than the test prompts, soft caps small enough to bend the scores, Llama 3 scaling
# whose original context makes every frequency band occur).
FAMILY_CONFIGS: dict[str, dict[str, Any]] = {
    "llama3": dict(
        _SHAPE,
        model_type="llama",
        rope_scaling=dict(
            rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
            original_max_position_embeddings=16,
        ),
        tie_word_embeddings=False,
    ),
    "mistral": dict(_SHAPE, model_type="mistral", sliding_window=5, head_dim=8),
    "qwen2": dict(_SHAPE, model_type="qwen2", tie_word_embeddings=True),
    "qwen3": dict(_SHAPE, model_type="qwen3", head_dim=16, tie_word_embeddings=True),
    "gemma2": dict(
        _SHAPE, model_type="gemma2", head_dim=8, sliding_window=4, query_pre_attn_scalar=16,
        attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
    ),
    "gpt2": dict(
        model_type="gpt2", vocab_size=97, n_embd=32, n_layer=3, n_head=4, n_positions=64,
        bos_token_id=1, eos_token_id=2,
    ),
    "gpt_neox": dict(
        {k: v for k, v in _SHAPE.items() if k != "num_key_value_heads"},
        model_type="gpt_neox", hidden_size=64, rotary_pct=0.25, tie_word_embeddings=False,
    ),
    "phi3": dict(_SHAPE, model_type="phi3", sliding_window=5, pad_token_id=0),
    "olmo2": dict(_SHAPE, model_type="olmo2"),
}  # fmt: skip
FAMILY_NAMES = list(FAMILY_CONFIGS)


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
    return _randomise_norms_and_biases(hf, family)


def tiny_family_model(family: str, seed: int = 0, **overrides: Any) -> transformers.PreTrainedModel:
    """The tiny random model of FAMILY_CONFIGS[family], built by transformers from its
    config alone (no download), float32, eval mode."""
    torch.manual_seed(seed)
    kwargs = {**FAMILY_CONFIGS[family], **overrides}
    config = transformers.AutoConfig.for_model(**kwargs)
    hf = transformers.AutoModelForCausalLM.from_config(config)
    return _randomise_norms_and_biases(hf, family)


def _randomise_norms_and_biases(
    hf: transformers.PreTrainedModel, family: str
) -> transformers.PreTrainedModel:
    """transformers starts norm weights at 1 (Gemma: 0) and biases at 0, where a wrong
    convention would not show: spread them."""
    offset = 0.0 if family.startswith("gemma") else 1.0
    with torch.no_grad():
        for name, param in hf.named_parameters():
            is_norm = "norm" in name or ".ln_" in name
            if is_norm and name.endswith("weight"):
                param.copy_(torch.randn_like(param) * 0.3 + offset)
            elif name.endswith("bias"):
                param.copy_(torch.randn_like(param) * 0.1)
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
