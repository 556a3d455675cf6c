"""Activations of one layer, collected once by running the model only up to that layer.

A dictionary at layer L needs the activations of layer L over a corpus: blocks 0..L run,
nothing above them and no unembedding (for gemma-3-270m at layer 6: 7 of 18 blocks and none
of the 262k-row unembedding, ~80 MFLOP a token instead of ~560). One pass records every
site a dictionary of that layer can read, so an SAE and a transcoder share it:

    resid    blocks.L.resid_post           the residual stream after block L
    mlp-in   mlp_norm(blocks.L.resid_mid)  what block L's MLP reads (a transcoder's input)
    mlp-out  blocks.L.mlp.out              what the MLP adds to the residual stream

The BOS position of each sequence is not recorded (its activations are outliers that no
dictionary is asked to explain; SAELens and Gemma Scope leave it out too). Activations are
written in shards of `SEQS_PER_SHARD` sequences to a folder under the factscope cache; an
interrupted collection resumes at the first missing shard. `ShuffledBatches` reads the
shards a group at a time, shuffles the tokens of the group and serves batches by step
number, so a resumed training run sees exactly the batches an unbroken one would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.model import Block, Transformer
from factscope.progress import progress_bar

if TYPE_CHECKING:
    from factscope.load import LoadedModel

SITES = ("resid", "mlp-in", "mlp-out")
SEQS_PER_SHARD = 64
COLLECT_FORMAT = 1


def hook_site(site: str, layer: int) -> str:
    """The model hook site a dictionary site reads (mlp-in is computed from resid_mid)."""
    if site == "resid":
        return f"blocks.{layer}.resid_post"
    if site == "mlp-in":
        return f"blocks.{layer}.resid_mid"
    if site == "mlp-out":
        return f"blocks.{layer}.mlp.out"
    raise FactscopeError(f"unknown site {site!r}; use one of {', '.join(SITES)}")


@torch.inference_mode()
def layer_activations(model: Transformer, tokens: Tensor, layer: int) -> dict[str, Tensor]:
    """Every site of `layer` for token ids (B, T), running blocks 0..layer only.
    Returns {site: (B, T, D)} in float32."""
    if not 0 <= layer < model.cfg.n_layers:
        raise FactscopeError(
            f"--layer {layer} is out of range; the model has layers 0..{model.cfg.n_layers - 1}"
        )
    block = cast(Block, model.blocks[layer])
    seen: dict[str, Tensor] = {}
    points = model.hook_points
    grab = {
        "resid": points[f"blocks.{layer}.resid_post"],
        "mid": points[f"blocks.{layer}.resid_mid"],
        "mlp-out": points[f"blocks.{layer}.mlp.out"],
    }

    def recorder(name: str) -> Callable[[Tensor, str], None]:
        def record(x: Tensor, site: str) -> None:
            seen[name] = x

        return record

    fns = [(point, recorder(name)) for name, point in grab.items()]
    for point, fn in fns:
        point.fns.append(fn)
    try:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        model.run_blocks(model.embed_tokens(tokens), positions, 0, layer + 1)
    finally:
        for point, fn in fns:
            point.fns.remove(fn)
    return {
        "resid": seen["resid"].float(),
        "mlp-in": block.mlp_norm(seen["mid"]).float(),
        "mlp-out": seen["mlp-out"].float(),
    }


@dataclass(frozen=True)
class CollectionInfo:
    """What a folder of activations holds (written to its meta.json)."""

    model: str
    fingerprint: str
    corpus: str
    corpus_digest: str
    layer: int
    seq_len: int
    n_sequences: int
    d_model: int
    format: int = COLLECT_FORMAT

    @property
    def n_shards(self) -> int:
        return -(-self.n_sequences // SEQS_PER_SHARD)


def collect(
    model: Transformer,
    sequences: Tensor,
    layer: int,
    folder: Path,
    info: CollectionInfo,
    batch_size: int = 16,
    progress: bool = True,
) -> Path:
    """Write the activations of `sequences` (N, T) at `layer` into `folder`, one shard per
    SEQS_PER_SHARD sequences; shards already there are kept (a killed run resumes)."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta.json"
    if meta.exists() and json.loads(meta.read_text()) != asdict(info):
        raise FactscopeError(f"{folder} holds other activations; remove it or choose another")
    meta.write_text(json.dumps(asdict(info), indent=1) + "\n")
    n_tokens = sequences.shape[0] * (sequences.shape[1] - 1)
    bar = progress_bar(n_tokens, progress, f"activations L{layer}", "tok", leave=True)
    for shard in range(info.n_shards):
        rows = sequences[shard * SEQS_PER_SHARD : (shard + 1) * SEQS_PER_SHARD]
        path = folder / f"shard-{shard:05d}.safetensors"
        if path.exists():
            bar.update(rows.shape[0] * (rows.shape[1] - 1))
            continue
        parts: dict[str, list[Tensor]] = {site: [] for site in SITES}
        for start in range(0, rows.shape[0], batch_size):
            batch = rows[start : start + batch_size].to(model.device)
            acts = layer_activations(model, batch, layer)
            for site in SITES:
                parts[site].append(acts[site][:, 1:].reshape(-1, info.d_model).cpu())  # no BOS
            bar.update(batch.shape[0] * (batch.shape[1] - 1))
        tensors = {site: torch.cat(parts[site]).contiguous() for site in SITES}
        tensors["tokens"] = rows.contiguous()
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        tmp.rename(path)  # a shard exists only once it is complete
    bar.close()
    return folder


class Store(Protocol):
    """Shards of activations, each {site: (N_i, D)} (and "tokens": (n_seq, T))."""

    n_shards: int

    def shard(self, index: int, sites: Sequence[str]) -> dict[str, Tensor]: ...


class DiskStore:
    """A folder written by `collect`."""

    def __init__(self, folder: Path) -> None:
        meta = folder / "meta.json"
        if not meta.is_file():
            raise FactscopeError(f"{folder} holds no collected activations (no meta.json)")
        self.folder = folder
        self.info = CollectionInfo(**json.loads(meta.read_text()))
        self.paths = [folder / f"shard-{i:05d}.safetensors" for i in range(self.info.n_shards)]
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise FactscopeError(f"{missing[0]} is missing; the collection did not finish")
        self.n_shards = len(self.paths)

    def shard(self, index: int, sites: Sequence[str]) -> dict[str, Tensor]:
        with safe_open(str(self.paths[index]), framework="pt") as f:
            return {site: f.get_tensor(site) for site in sites}

    def tokens(self) -> Tensor:
        """All sequences (N, T), in shard order; activation row r of the store is
        sequence r // (T - 1), position r % (T - 1) + 1."""
        return torch.cat([self.shard(i, ["tokens"])["tokens"] for i in range(self.n_shards)])

    def all(self, site: str) -> Tensor:
        return torch.cat([self.shard(i, [site])[site] for i in range(self.n_shards)])


class MemoryStore:
    """Activations already in memory, cut into shards (tests, small experiments)."""

    def __init__(self, acts: dict[str, Tensor], shard_size: int) -> None:
        n = next(iter(acts.values())).shape[0]
        self.acts = acts
        self.bounds = [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]
        self.n_shards = len(self.bounds)

    def shard(self, index: int, sites: Sequence[str]) -> dict[str, Tensor]:
        lo, hi = self.bounds[index]
        return {site: self.acts[site][lo:hi] for site in sites}


class ShuffledBatches:
    """Batches of activations by step number, from a store read `group` shards at a time.

    Epoch e visits the shards in a seeded random order, `group` at a time; the tokens of a
    group are shuffled together (a buffer of group x shard tokens) and cut into batches.
    `batch(step)` depends only on (seed, step), so a resumed run gets the same batches.
    """

    def __init__(
        self, store: Store, sites: Sequence[str], batch_size: int, seed: int = 0, group: int = 8
    ) -> None:
        self.store, self.sites, self.batch_size = store, list(sites), batch_size
        self.seed, self.group = seed, group
        self._loaded: tuple[tuple[int, int], dict[str, Tensor]] | None = None
        self._sizes = [
            store.shard(i, self.sites[:1])[self.sites[0]].shape[0] for i in range(store.n_shards)
        ]
        self.batches_per_epoch = sum(n // batch_size for n in self._group_sizes(0))
        if self.batches_per_epoch == 0:
            raise FactscopeError(
                f"the activations hold fewer tokens per group than one batch of {batch_size}"
            )

    def _groups(self, epoch: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.store.n_shards, generator=gen).tolist()
        return [order[i : i + self.group] for i in range(0, len(order), self.group)]

    def _group_sizes(self, epoch: int) -> list[int]:
        return [sum(self._sizes[i] for i in g) for g in self._groups(epoch)]

    def batch(self, step: int) -> dict[str, Tensor]:
        """{site: (batch_size, D)} for this step."""
        epoch, j = divmod(step, self.batches_per_epoch)
        groups = self._groups(epoch)
        for g, shards in enumerate(groups):
            n = sum(self._sizes[i] for i in shards) // self.batch_size
            if j < n:
                data = self._group(epoch, g, shards)
                lo = j * self.batch_size
                return {site: data[site][lo : lo + self.batch_size] for site in self.sites}
            j -= n
        raise AssertionError("unreachable: step beyond the epoch")

    def _group(self, epoch: int, g: int, shards: list[int]) -> dict[str, Tensor]:
        if self._loaded is not None and self._loaded[0] == (epoch, g):
            return self._loaded[1]
        parts = [self.store.shard(i, self.sites) for i in shards]
        data = {site: torch.cat([p[site] for p in parts]) for site in self.sites}
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 997 + g + 1)
        perm = torch.randperm(next(iter(data.values())).shape[0], generator=gen)
        data = {site: x[perm].float() for site, x in data.items()}
        self._loaded = ((epoch, g), data)
        return data


def cached_activations(
    lm: LoadedModel,
    corpus_name: str,
    layer: int,
    n_tokens: int,
    held_out_tokens: int,
    seq_len: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> tuple[DiskStore, DiskStore]:
    """(train, held-out) activations of `layer` over the corpus, collected once and cached
    under `$FACTSCOPE_CACHE/features/`; the sequences are shuffled before collection so
    that every shard mixes the corpus's kinds of text."""
    from factscope.edit.fingerprint import model_fingerprint
    from factscope.features.corpus import load_text_corpus, pack_sequences
    from factscope.weights.cache import cache_root

    corpus = load_text_corpus(corpus_name, lm)
    fingerprint = model_fingerprint(lm.model, layer)
    stores = []
    for part, budget, docs in zip(
        ("train", "held-out"), (n_tokens, held_out_tokens), corpus.split(), strict=True
    ):
        seqs = pack_sequences(docs.documents, lm.tokenizer, seq_len, max_tokens=None)
        gen = torch.Generator().manual_seed(seed)
        seqs = seqs[torch.randperm(seqs.shape[0], generator=gen)]
        n_seq = budget // (seq_len - 1)
        if n_seq > seqs.shape[0]:
            have = seqs.shape[0] * (seq_len - 1)
            raise FactscopeError(
                f"the {part} corpus holds {have:,} tokens, fewer than the {budget:,} asked for; "
                "ask for fewer or give a larger --corpus"
            )
        seqs = seqs[: max(n_seq, 1)]
        info = CollectionInfo(
            model=lm.name,
            fingerprint=fingerprint,
            corpus=corpus.name,
            corpus_digest=corpus.digest,
            layer=layer,
            seq_len=seq_len,
            n_sequences=seqs.shape[0],
            d_model=lm.cfg.d_model,
        )
        key = (
            f"v{COLLECT_FORMAT}-{fingerprint}-{corpus.digest}-L{layer}-s{seq_len}"
            f"-{part}-{seqs.shape[0]}-r{seed}"
        )
        folder = cache_root() / "features" / "activations" / key
        collect(lm.model, seqs, layer, folder, info, progress=progress)
        stores.append(DiskStore(folder))
    return stores[0], stores[1]


def corpus_token_counts(lm: LoadedModel, corpus_name: str, seq_len: int = 128) -> tuple[int, int]:
    """How many (train, held-out) tokens the corpus packs into (BOS not counted)."""
    from factscope.features.corpus import load_text_corpus, pack_sequences

    train, held = load_text_corpus(corpus_name, lm).split()
    return tuple(  # type: ignore[return-value]
        pack_sequences(d.documents, lm.tokenizer, seq_len).shape[0] * (seq_len - 1)
        for d in (train, held)
    )
