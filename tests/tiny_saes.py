"""Tiny random sparse dictionaries for tests: in memory, or written in SAELens's layout for
a tiny model (what `--sae PATH` reads)."""

from __future__ import annotations

from pathlib import Path

import torch

from factscope.features.formats import save_saelens
from factscope.features.sae import SAEConfig, SparseDictionary


def random_sae(
    kind: str = "topk", d_in: int = 16, d_sae: int = 40, k: int = 5, seed: int = 0
) -> SparseDictionary:
    sae = SparseDictionary(SAEConfig(d_in=d_in, d_sae=d_sae, kind=kind, k=k))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        if kind == "jumprelu":
            sae.threshold.copy_(torch.rand(d_sae, generator=gen) * 0.2 + 0.01)
    return sae


def saelens_folder(folder: Path, d_model: int, layer: int = 1, d_sae: int = 32) -> Path:
    """A random TopK SAE reading blocks.{layer}.resid_post of a d_model-wide model, saved
    as a SAELens folder."""
    sae = random_sae("topk", d_in=d_model, d_sae=d_sae, k=4).with_cfg(layer=layer, site="resid")
    save_saelens(sae, folder)
    return folder
