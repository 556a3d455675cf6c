"""Write a loaded factscope model as a local Hugging Face folder, for the peer benchmarks.

    folder = export_hf_folder(lm, Path("/tmp/gemma-hf"))   # config.json, model.safetensors,
                                                            # tokenizer.json, tokenizer_config.json

transformers, TransformerLens (`TransformerBridge.boot_transformers(folder)`) and nnsight
(`LanguageModel(folder)`) then load the very weights we run, offline, the way a user loads
a downloaded checkpoint. Why not transformers' own GGUF loader: it takes minutes on
Gemma's 262,144-token vocabulary and `save_pretrained` refuses GGUF-loaded models;
tests/test_reference_real.py checks that its weights and ours agree, and every benchmark
line prints how far the peers' numbers are from ours.

The config is the one transformers itself derives from the GGUF metadata
(`AutoConfig.from_pretrained(..., gguf_file=...)`); the weights are converted back to
Hugging Face names (Gemma norms stored as w, not 1 + w); the tokenizer is our `tokenizers`
backend, whose post-processor is the template transformers installs (BOS first).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def export_hf_folder(lm: Any, folder: Path) -> Path:
    """Write `lm` (a factscope LoadedModel from a GGUF file) to `folder`; return it."""
    import transformers
    from safetensors.torch import save_file

    from factscope.weights.convert import HF_FAMILIES, expected_shapes, hf_tensor_name

    folder.mkdir(parents=True, exist_ok=True)
    cfg = lm.cfg
    source = Path(lm.source)
    config = transformers.AutoConfig.from_pretrained(str(source.parent), gguf_file=source.name)
    hf_config = config.to_dict()
    hf_config.pop("quantization_config", None)
    hf_config["torch_dtype"] = "float32"
    if not hf_config.get("architectures"):  # what a downloaded checkpoint names; TL needs it
        hf_config["architectures"] = [
            {"gemma3": "Gemma3ForCausalLM"}.get(cfg.family, "LlamaForCausalLM")
        ]
    (folder / "config.json").write_text(json.dumps(hf_config, indent=1))

    state = lm.model.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for name in expected_shapes(cfg):
        tensor = state[name].float()
        if cfg.family == "gemma3" and name.endswith("norm.weight"):
            tensor = tensor - 1.0  # Hugging Face's Gemma stores w; RMSNorm scales by 1 + w
        hf_name = hf_tensor_name(HF_FAMILIES[cfg.family], "model.", name)
        assert hf_name is not None, name  # Llama and Gemma 3 fuse nothing
        tensors[hf_name] = tensor.contiguous()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})

    tokenizer = lm.tokenizer
    tokenizer.backend.save(str(folder / "tokenizer.json"))

    def spelled(token_id: int | None) -> str | None:
        return None if token_id is None else tokenizer.backend.id_to_token(token_id)

    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": spelled(tokenizer.bos_id),
        "eos_token": spelled(tokenizer.eos_id),
        "add_bos_token": tokenizer.add_bos_default,
        "model_max_length": cfg.context_length,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    return folder
