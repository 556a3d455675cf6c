"""Sparse dictionaries on disk in the layouts people already have, read and written bit-exact.

SAELens folder:   cfg.json + sae_weights.safetensors with W_enc (d_in, d_sae), b_enc
                  (d_sae,), W_dec (d_sae, d_in), b_dec (d_in,) and, for JumpReLU,
                  threshold (d_sae,). cfg.json carries SAELens's fields (architecture,
                  d_in, d_sae, hook_name, hook_layer, k, apply_b_dec_to_input, ...) and,
                  under "factscope", this package's SAEConfig.
Gemma Scope file: params.npz or params.safetensors with W_enc, W_dec, b_enc, b_dec,
                  threshold (any letter case: w_enc ...), a JumpReLU dictionary that does
                  not subtract b_dec from its input. The file does not say where it reads,
                  so the layer and site come from the caller (or a config.json beside it).

Weights are written as the float32 tensors the dictionary holds and read back unchanged;
training scales are folded in first (`SparseDictionary.fold_scales`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.features.sae import SAEConfig, SparseDictionary

SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
PARAM_NAMES = ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")


def transformer_lens_hook(site: str, layer: int) -> str:
    """The TransformerLens hook name of a dictionary site (what SAELens records)."""
    return {
        "resid": f"blocks.{layer}.hook_resid_post",
        "mlp-out": f"blocks.{layer}.hook_mlp_out",
        "mlp-in": f"blocks.{layer}.ln2.hook_normalized",
    }[site]


def _site_from_hook(hook: str) -> tuple[str, int]:
    parts = hook.split(".")
    try:
        layer = int(parts[1])
    except (IndexError, ValueError):
        raise FactscopeError(f"cannot read a layer from hook_name {hook!r}") from None
    for site in ("resid", "mlp-out", "mlp-in"):
        if transformer_lens_hook(site, layer) == hook:
            return site, layer
    raise FactscopeError(
        f"hook_name {hook!r} is not a site factscope reads "
        "(resid_post, mlp_out, ln2.hook_normalized)"
    )


def _unscaled(sae: SparseDictionary) -> SparseDictionary:
    if float(sae.in_scale) == 1.0 and float(sae.out_scale) == 1.0:
        return sae
    return sae.fold_scales()


def save_saelens(sae: SparseDictionary, folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write `folder`/cfg.json and `folder`/sae_weights.safetensors."""
    sae = _unscaled(sae)
    cfg = sae.cfg
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        "W_enc": sae.W_enc,
        "b_enc": sae.b_enc,
        "W_dec": sae.W_dec,
        "b_dec": sae.b_dec,
    }
    if cfg.kind == "jumprelu":
        tensors["threshold"] = sae.threshold
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
        str(folder / SAELENS_WEIGHTS),
    )
    in_site = "mlp-in" if cfg.transcoder else cfg.site
    record: dict[str, Any] = {
        "architecture": {"topk": "topk", "jumprelu": "jumprelu", "relu": "standard"}[cfg.kind],
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "model_name": cfg.model,
        "hook_name": transformer_lens_hook(in_site, cfg.layer),
        "hook_layer": cfg.layer,
        "hook_head_index": None,
        "activation_fn_str": "topk" if cfg.kind == "topk" else "relu",
        "activation_fn_kwargs": {"k": cfg.k} if cfg.kind == "topk" else {},
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input and not cfg.transcoder,
        "finetuning_scaling_factor": False,
        "normalize_activations": "none",
        "prepend_bos": True,
        "factscope": cfg.to_dict(),
    }
    if cfg.kind == "topk":
        record["k"] = cfg.k
    if cfg.transcoder:
        record["d_out"] = cfg.out_dim
        record["hook_name_out"] = transformer_lens_hook("mlp-out", cfg.layer)
    if extra:
        record.update(extra)
    (folder / SAELENS_CFG).write_text(json.dumps(record, indent=1) + "\n")
    return folder


def load_saelens(folder: Path) -> SparseDictionary:
    """A dictionary from a SAELens folder (ours or SAELens's own)."""
    cfg_path, weights_path = folder / SAELENS_CFG, folder / SAELENS_WEIGHTS
    if not cfg_path.is_file() or not weights_path.is_file():
        raise FactscopeError(
            f"{folder} is not a SAELens folder (needs {SAELENS_CFG} and {SAELENS_WEIGHTS})"
        )
    try:
        record = json.loads(cfg_path.read_text())
    except ValueError:
        raise FactscopeError(f"{cfg_path} is not valid JSON") from None
    if "factscope" in record:
        cfg = SAEConfig.from_dict(record["factscope"])
    else:
        arch = record.get("architecture", "standard")
        kinds = {"topk": "topk", "jumprelu": "jumprelu", "standard": "relu"}
        if arch not in kinds:
            raise FactscopeError(
                f"SAELens architecture {arch!r} is not supported; use topk, jumprelu or standard"
            )
        site, layer = _site_from_hook(str(record.get("hook_name", "")))
        k = record.get("k") or (record.get("activation_fn_kwargs") or {}).get("k") or 1
        transcoder = "d_out" in record or site == "mlp-in"
        cfg = SAEConfig(
            d_in=int(record["d_in"]),
            d_sae=int(record["d_sae"]),
            kind=kinds[arch],
            k=int(k),
            d_out=int(record["d_out"]) if "d_out" in record else None,
            transcoder=transcoder,
            apply_b_dec_to_input=bool(record.get("apply_b_dec_to_input", False)),
            layer=layer,
            site="mlp-out" if transcoder else site,
            model=str(record.get("model_name", "")),
        )
    return _from_tensors(cfg, load_file(str(weights_path)), str(weights_path))


def _from_tensors(cfg: SAEConfig, tensors: dict[str, Tensor], where: str) -> SparseDictionary:
    by_lower = {k.lower(): v for k, v in tensors.items()}
    unknown = sorted(set(by_lower) - {n.lower() for n in PARAM_NAMES})
    if unknown:
        raise FactscopeError(
            f"{where} holds {', '.join(unknown)}, which factscope's dictionaries do not have"
        )
    sae = SparseDictionary(cfg)
    shapes = {
        "W_enc": (cfg.d_in, cfg.d_sae),
        "b_enc": (cfg.d_sae,),
        "W_dec": (cfg.d_sae, cfg.out_dim),
        "b_dec": (cfg.out_dim,),
        "threshold": (cfg.d_sae,),
    }
    with torch.no_grad():
        for name in PARAM_NAMES:
            value = by_lower.get(name.lower())
            if value is None:
                if name == "threshold" and cfg.kind != "jumprelu":
                    continue
                raise FactscopeError(f"{where} has no {name}")
            if tuple(value.shape) != shapes[name]:
                raise FactscopeError(
                    f"{where}: {name} has shape {tuple(value.shape)}, expected {shapes[name]}"
                )
            getattr(sae, name).data = value.to(torch.float32).clone()
    return sae


def save_gemma_scope(sae: SparseDictionary, path: Path) -> Path:
    """Write a Gemma Scope parameter file (.npz or .safetensors by the suffix)."""
    sae = _unscaled(sae)
    if sae.cfg.kind != "jumprelu" or (sae.cfg.apply_b_dec_to_input and not sae.cfg.transcoder):
        raise FactscopeError("Gemma Scope files hold JumpReLU dictionaries that read x as it is")
    tensors = {name: getattr(sae, name).detach().contiguous().cpu() for name in PARAM_NAMES}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        with path.open("wb") as f:
            np.savez(f, **{k: v.numpy() for k, v in tensors.items()})
    elif path.suffix == ".safetensors":
        save_file(tensors, str(path))
    else:
        raise FactscopeError(f"{path}: a Gemma Scope file ends in .npz or .safetensors")
    return path


def load_gemma_scope(
    path: Path, layer: int, site: str, model: str = "", transcoder: bool = False
) -> SparseDictionary:
    """A JumpReLU dictionary from a Gemma Scope params file; `site` is where it reads
    (resid or mlp-out for an SAE; a transcoder reads mlp-in and writes mlp-out)."""
    if path.suffix == ".npz":
        with np.load(path) as data:
            tensors = {k: torch.from_numpy(data[k].copy()) for k in data.files}
    elif path.suffix == ".safetensors":
        tensors = load_file(str(path))
    else:
        raise FactscopeError(f"{path}: a Gemma Scope file ends in .npz or .safetensors")
    by_lower = {k.lower(): v for k, v in tensors.items()}
    if "w_enc" not in by_lower or "w_dec" not in by_lower:
        raise FactscopeError(f"{path} holds no W_enc / W_dec; not a Gemma Scope file")
    d_in, d_sae = by_lower["w_enc"].shape
    d_out = by_lower["w_dec"].shape[1]
    cfg = SAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        kind="jumprelu",
        d_out=int(d_out) if transcoder else None,
        transcoder=transcoder,
        apply_b_dec_to_input=False,
        layer=layer,
        site="mlp-out" if transcoder else site,
        model=model,
    )
    return _from_tensors(cfg, tensors, str(path))


def load_dictionary(
    path: Path, layer: int | None = None, site: str | None = None, model: str = ""
) -> SparseDictionary:
    """A SAELens folder, or a Gemma Scope file with a config.json beside it or the
    `layer` and `site` given (site "transcoder" for a Gemma Scope transcoder)."""
    if path.is_dir():
        return load_saelens(path)
    if not path.is_file():
        raise FactscopeError(
            f"--sae {path} does not exist; give a SAELens folder or a Gemma Scope params file"
        )
    if layer is None or site is None:
        beside = path.parent / "config.json"
        if beside.is_file():
            try:
                record = json.loads(beside.read_text())
                hook = record.get("hook_name") or record.get("hf_hook_point_in")
                site_found, layer_found = _site_from_hook(str(hook))
                layer = layer if layer is not None else layer_found
                site = site or ("transcoder" if site_found == "mlp-in" else site_found)
            except (ValueError, FactscopeError):
                pass
    if layer is None or site is None:
        raise FactscopeError(f"{path} does not say where it reads; pass --layer and --site")
    transcoder = site == "transcoder"
    return load_gemma_scope(path, layer, "mlp-out" if transcoder else site, model, transcoder)
