"""How good a dictionary is, measured as SAELens and Gemma Scope report it, on held-out text.

    L0                   mean number of active latents per token
    explained variance   1 - sum ||t - t_hat||² / sum ||t - mean(t)||²  (1 - FVU)
    MSE                  mean squared error per element, in the model's units
    CE loss              next-token cross-entropy with the reconstruction spliced into the
                         forward pass at the site (every position but BOS), against the
                         clean run and against zero-ablating the site:
                         CE loss recovered = (CE_zero - CE_spliced) / (CE_zero - CE_clean)
    dead / dense         latents never active on the held-out tokens / active on more than
                         10% of them

The splice goes through the model's hook sites (`splice`): a resid dictionary replaces
blocks.L.resid_post, an mlp-out SAE or a transcoder replaces blocks.L.mlp.out (a
transcoder computing it from mlp_norm(blocks.L.resid_mid), the MLP's own input).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from factscope.features.activations import Store
from factscope.features.sae import SparseDictionary
from factscope.hooks import hooks
from factscope.model import Block, Transformer

DENSE_FRACTION = 0.1

Replace = Callable[[Tensor], Tensor]  # (B, T, D) reconstruction -> what the site gets


@contextmanager
def splice(
    model: Transformer,
    sae: SparseDictionary,
    edit: Callable[[Tensor], Tensor] | None = None,
    keep_bos: bool = True,
) -> Iterator[dict[str, Tensor]]:
    """Inside the block, the model runs with the dictionary's reconstruction in place of its
    site. `edit` changes the latents (B, T, d_sae) before decoding (ablation, steering).
    Yields a dict that receives "latents" (B, T, d_sae) of the last forward pass."""
    cfg, seen = sae.cfg, {}
    layer = cfg.layer
    mid: dict[str, Tensor] = {}

    def reconstruct(inputs: Tensor, x: Tensor) -> Tensor:
        latents = sae.encode(inputs)
        if edit is not None:
            latents = edit(latents)
        seen["latents"] = latents
        out = sae.decode(latents).to(x.dtype)
        if keep_bos:
            out = torch.cat([x[:, :1], out[:, 1:]], dim=1)
        return out

    fns: dict[str, object]
    if cfg.transcoder:

        def read_mid(x: Tensor, site: str) -> None:
            mid["x"] = x

        def replace_out(x: Tensor, site: str) -> Tensor:
            return reconstruct(cast(Block, model.blocks[layer]).mlp_norm(mid["x"]), x)

        fns = {f"blocks.{layer}.resid_mid": read_mid, f"blocks.{layer}.mlp.out": replace_out}
    else:
        site = f"blocks.{layer}.resid_post" if cfg.site == "resid" else f"blocks.{layer}.mlp.out"
        fns = {site: lambda x, _: reconstruct(x, x)}
    with hooks(model, fns):  # type: ignore[arg-type]
        yield seen


@dataclass
class Metrics:
    """A dictionary's scores on held-out tokens (see the module docstring)."""

    n_tokens: int
    l0: float
    explained_variance: float
    mse: float
    dead_fraction: float
    dense_fraction: float
    ce_clean: float | None = None
    ce_spliced: float | None = None
    ce_zero_ablated: float | None = None
    ce_loss_recovered: float | None = None
    ce_tokens: int = 0
    latent_frequency: list[float] = field(default_factory=list)  # per latent, firing rate

    def to_dict(self, with_frequencies: bool = False) -> dict[str, object]:
        data = asdict(self)
        if not with_frequencies:
            data.pop("latent_frequency")
        return data


@torch.no_grad()
def reconstruction_metrics(sae: SparseDictionary, store: Store, batch_size: int = 4096) -> Metrics:
    """L0, explained variance, MSE and latent frequencies over every token of `store`."""
    cfg = sae.cfg
    in_site, out_site = ("mlp-in", "mlp-out") if cfg.transcoder else (cfg.site, cfg.site)
    fired = torch.zeros(cfg.d_sae, dtype=torch.int64)
    n, l0_sum, sq_err, sum_t, sum_t2 = (
        0,
        0.0,
        0.0,
        torch.zeros(cfg.out_dim, dtype=torch.float64),
        0.0,
    )
    for i in range(store.n_shards):
        shard = store.shard(i, sorted({in_site, out_site}))
        x_all, t_all = shard[in_site].float(), shard[out_site].float()
        for lo in range(0, x_all.shape[0], batch_size):
            x, t = x_all[lo : lo + batch_size], t_all[lo : lo + batch_size]
            latents = sae.encode(x)
            active = latents > 0
            fired += active.sum(0)
            l0_sum += float(active.sum())
            sq_err += float((t - sae.decode(latents)).double().pow(2).sum())
            sum_t += t.double().sum(0)
            sum_t2 += float(t.double().pow(2).sum())
            n += x.shape[0]
    total_var = sum_t2 - float(sum_t.pow(2).sum()) / n
    freq = fired.double() / n
    return Metrics(
        n_tokens=n,
        l0=l0_sum / n,
        explained_variance=1.0 - sq_err / total_var,
        mse=sq_err / (n * cfg.out_dim),
        dead_fraction=float((fired == 0).double().mean()),
        dense_fraction=float((freq > DENSE_FRACTION).double().mean()),
        latent_frequency=[round(float(f), 7) for f in freq],
    )


@torch.no_grad()
def ce_losses(
    model: Transformer, sae: SparseDictionary, sequences: Tensor, batch_size: int = 2
) -> dict[str, float]:
    """Mean next-token cross-entropy of `sequences` (N, T): clean, with the reconstruction
    spliced in, and with the site zero-ablated (BOS kept clean in both).

    Blocks 0..L run once per batch (their hook sites read the activations); only the blocks
    above L and the unembedding run three times, from the three residual streams."""
    from factscope.features.activations import layer_activations

    cfg, layer = sae.cfg, sae.cfg.layer
    totals = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    count = 0
    for lo in range(0, sequences.shape[0], batch_size):
        tokens = sequences[lo : lo + batch_size].to(model.device)
        acts = layer_activations(model, tokens, layer)
        resid = acts["resid"]
        if cfg.transcoder:
            out = acts["mlp-out"]
            base = resid - out
            variants = {"clean": resid, "spliced": base + sae(acts["mlp-in"]), "zero": base}
        elif cfg.site == "mlp-out":
            out = acts["mlp-out"]
            base = resid - out
            variants = {"clean": resid, "spliced": base + sae(out), "zero": base}
        else:
            variants = {"clean": resid, "spliced": sae(resid), "zero": torch.zeros_like(resid)}
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        targets = tokens[:, 1:].reshape(-1)
        for name, x in variants.items():
            x = torch.cat([resid[:, :1], x[:, 1:]], dim=1).to(model.dtype)  # BOS stays clean
            if name == "clean":
                x = resid.to(model.dtype)
            h = model.run_blocks(x, positions, layer + 1)
            logits = model.unembed_residual(h[:, :-1]).float()  # (B, T-1, V)
            totals[name] += float(
                F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, reduction="sum")
            )
        count += targets.numel()
    return {name: total / count for name, total in totals.items()} | {"tokens": float(count)}


def evaluate(
    sae: SparseDictionary,
    store: Store,
    model: Transformer | None = None,
    sequences: Tensor | None = None,
) -> Metrics:
    """Reconstruction metrics on `store`; with the model and held-out `sequences` (N, T),
    the CE losses and the CE loss recovered as well."""
    metrics = reconstruction_metrics(sae, store)
    if model is not None and sequences is not None and sequences.shape[0] > 0:
        ce = ce_losses(model, sae, sequences)
        metrics.ce_clean, metrics.ce_spliced, metrics.ce_zero_ablated = (
            ce["clean"],
            ce["spliced"],
            ce["zero"],
        )
        metrics.ce_tokens = int(ce["tokens"])
        gap = ce["zero"] - ce["clean"]
        metrics.ce_loss_recovered = (ce["zero"] - ce["spliced"]) / gap if gap else None
    return metrics
