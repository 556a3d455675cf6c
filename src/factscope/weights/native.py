"""factscope's own model format: a folder any command loads like a GGUF or an HF folder.

    model-folder/
      factscope.json       {"format": "factscope-model", "version": 1, "config": {...},
                            "provenance": {...}}   (what the weights are: e.g. trained,
                            or gemma-3-270m with one ROME edit)
      model.safetensors    the weights in the internal layout (no conversion on load)
      tokenizer.json       the tokenizer, as `Tokenizer.save` writes it

Edited models (`edit --save`) and trained models (`train`) are written here; the original
model files are never touched.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

from factscope.config import ModelConfig
from factscope.errors import FactscopeError

MARKER = "factscope.json"
FORMAT = "factscope-model"
VERSION = 1


def is_native_folder(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def save_native(
    folder: Path,
    cfg: ModelConfig,
    state: dict[str, Tensor],
    tokenizer: Any,
    *,
    provenance: dict[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Write a model folder; refuse an existing path unless `force`. The folder is built
    beside the target and moved into place, so a failed save leaves nothing half-written."""
    folder = Path(folder)
    if folder.exists() and not force:
        raise FactscopeError(f"{folder} already exists; pass --force to overwrite or pick a path")
    if folder.exists() and not folder.is_dir():
        raise FactscopeError(f"{folder} is a file; give a folder path for the saved model")
    if folder.exists() and any(folder.iterdir()) and not is_native_folder(folder):
        raise FactscopeError(
            f"{folder} is a folder that is not a factscope model; refusing to replace it"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".factscope-save-", dir=folder.parent))
    try:
        # tied weights are stored once (safetensors refuses shared storage)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
        if cfg.tie_embeddings:
            tensors.pop("unembed.weight", None)
        save_file(tensors, build / "model.safetensors")
        tokenizer.save(build / "tokenizer.json")
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "config": cfg.to_dict(),
            "provenance": provenance or {},
        }
        (build / MARKER).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        build.rename(folder)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    return folder


def read_native_meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise FactscopeError(
            f"cannot read {folder}/{MARKER}: {e}; is it a factscope model?"
        ) from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise FactscopeError(
            f"{folder}/{MARKER} is format {meta.get('format')!r} version {meta.get('version')!r}; "
            f"this factscope reads {FORMAT!r} version {VERSION}"
        )
    return meta


def load_native(folder: Path) -> tuple[ModelConfig, dict[str, Tensor], dict[str, Any]]:
    """(config, state dict, metadata) of a native model folder."""
    meta = read_native_meta(folder)
    cfg = ModelConfig.from_dict(meta["config"])
    weights = Path(folder) / "model.safetensors"
    if not weights.is_file():
        raise FactscopeError(f"{folder} has no model.safetensors; the save is incomplete")
    state = load_file(weights)
    if cfg.tie_embeddings:
        state.pop("unembed.weight", None)
    return cfg, state, meta
