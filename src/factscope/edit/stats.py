"""C = E[k kᵀ]: the second moment of the keys an MLP's output projection reads.

The key k at a token is the input of `down_proj` in one layer, the neuron activations
(`blocks.{l}.mlp.post`: act(gate x) · (up x) for a gated MLP, act(up x) for a plain one).
ROME treats `down_proj` as a linear associative memory W k ≈ v and changes it so that one
new key maps to a new value while disturbing the keys of ordinary text as little as possible;
"as little as possible" is measured by C, estimated here over a corpus (see corpus.py).

Statistics are cached on disk per (model weights, layer, corpus, number of tokens), under
the factscope cache (`$FACTSCOPE_CACHE/edit-stats/`), so each is computed once: the pass
over 100,000 tokens stops at the highest requested layer and collects every requested
layer at once.

Counting: each document is tokenised with BOS and cut into pieces of at most `seq_len`
tokens (each piece starts with BOS again); every position except BOS counts once. The BOS
position is left out: in Gemma it is an attention sink whose activations are orders of
magnitude larger than any word's and would dominate C.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from factscope.edit.corpus import DEFAULT_CORPUS, Corpus, load_corpus
from factscope.edit.fingerprint import model_fingerprint
from factscope.errors import FactscopeError
from factscope.hooks import hooks
from factscope.model import Transformer
from factscope.progress import progress_bar

if TYPE_CHECKING:
    from factscope.tokenizer import Tokenizer

MIN_TOKENS = 100_000  # the floor for statistics used by default
STATS_FORMAT = 1


@dataclass
class KeyStats:
    """Σ k kᵀ over `count` keys of one layer; `moment` is C = Σ k kᵀ / count."""

    layer: int
    sum: Tensor  # (F, F) float64
    count: int
    corpus: str  # the corpus's name and digest, for the record

    @property
    def moment(self) -> Tensor:
        """C = E[k kᵀ], (F, F) float64."""
        return self.sum / max(self.count, 1)

    def to_dict(self) -> dict[str, object]:
        eig = torch.linalg.eigvalsh(self.moment)
        return {
            "layer": self.layer,
            "count": self.count,
            "corpus": self.corpus,
            "d_mlp": int(self.sum.shape[0]),
            "trace": float(eig.sum()),
            "eigenvalue_max": float(eig[-1]),
            "eigenvalue_min": float(eig[0]),
        }


def identity_stats(model: Transformer, layer: int) -> KeyStats:
    """C = I: no statistics at all (what EasyEdit uses for Llama 3). The update then
    ignores which directions ordinary text uses."""
    F = model.cfg.d_mlp
    return KeyStats(layer, torch.eye(F, dtype=torch.float64), 1, "identity")


def corpus_pieces(
    tokenizer: Tokenizer, corpus: Corpus, n_tokens: int, seq_len: int
) -> list[list[int]]:
    """Token pieces of the corpus ([BOS] + up to seq_len - 1 tokens), in document order,
    until `n_tokens` non-BOS tokens are covered (the last piece is cut to fit)."""
    bos = tokenizer.bos_id
    pieces: list[list[int]] = []
    covered = 0
    for doc in corpus.documents:
        ids = tokenizer.encode(doc, add_bos=False)
        body = seq_len - 1 if bos is not None else seq_len
        for start in range(0, len(ids), body):
            chunk = ids[start : start + body][: n_tokens - covered]
            if not chunk:
                break
            pieces.append(([bos] if bos is not None else []) + chunk)
            covered += len(chunk)
            if covered >= n_tokens:
                return pieces
    return pieces


@torch.no_grad()
def collect_key_stats(
    model: Transformer,
    tokenizer: Tokenizer,
    layers: Sequence[int],
    corpus: Corpus,
    n_tokens: int = MIN_TOKENS,
    seq_len: int = 256,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[int, KeyStats]:
    """One pass over `n_tokens` of the corpus, accumulating Σ k kᵀ at every layer in `layers`.

    Pieces are batched by length (right-padded: attention is causal, so padding after a
    piece cannot change it) and only blocks 0..max(layers) run."""
    layers = sorted(set(layers))
    pieces = corpus_pieces(tokenizer, corpus, n_tokens, seq_len)
    have = sum(len(p) - (tokenizer.bos_id is not None) for p in pieces)
    if have < n_tokens:
        raise FactscopeError(
            f"the statistics corpus {corpus.name!r} has only {have:,} tokens for this model, "
            f"fewer than the {n_tokens:,} asked for; give a larger corpus or fewer tokens"
        )
    skip = 1 if tokenizer.bos_id is not None else 0
    F = model.cfg.d_mlp
    sums = {l: torch.zeros(F, F, dtype=torch.float64) for l in layers}
    count = 0
    keys: dict[int, Tensor] = {}

    def record(x: Tensor, site: str) -> None:
        keys[int(site.split(".")[1])] = x

    pieces.sort(key=len, reverse=True)
    bar = progress_bar(have, progress, "key statistics", "tok", leave=True)
    sites = {f"blocks.{l}.mlp.post": record for l in layers}
    for start in range(0, len(pieces), batch_size):
        batch = pieces[start : start + batch_size]
        T = len(batch[0])
        tokens = torch.zeros(len(batch), T, dtype=torch.long)
        mask = torch.zeros(len(batch), T, dtype=torch.bool)
        for i, piece in enumerate(batch):
            tokens[i, : len(piece)] = torch.tensor(piece)
            mask[i, skip : len(piece)] = True
        tokens = tokens.to(model.device)
        positions = torch.arange(T, device=model.device)
        with hooks(model, sites):
            model.run_blocks(model.embed_tokens(tokens), positions, stop=layers[-1] + 1)
        for l in layers:
            k = keys[l][mask.to(model.device)].float()  # (N, F): the real tokens' keys
            sums[l] += (k.T @ k).double().cpu()
        n = int(mask.sum())
        count += n
        bar.update(n)
    bar.close()
    label = f"{corpus.name}@{corpus.digest}"
    return {l: KeyStats(l, sums[l], count, label) for l in layers}


def stats_cache_dir() -> Path:
    from factscope.weights.cache import cache_root

    return cache_root() / "edit-stats"


def layer_stats(
    model: Transformer,
    tokenizer: Tokenizer,
    layers: Sequence[int],
    corpus: str | Path | Corpus = DEFAULT_CORPUS,
    n_tokens: int = MIN_TOKENS,
    *,
    seq_len: int = 256,
    use_cache: bool = True,
    progress: bool = True,
    min_tokens: int = MIN_TOKENS,
) -> dict[int, KeyStats]:
    """C for each layer in `layers`, from the disk cache when present, else computed (with a
    progress bar) and cached. `n_tokens` below `min_tokens` is refused: too few tokens give
    a C whose small eigenvalues are noise, and ROME divides by C."""
    if n_tokens < min_tokens:
        raise FactscopeError(
            f"{n_tokens:,} statistics tokens is too few; use at least {min_tokens:,}"
        )
    for l in layers:
        if not 0 <= l < model.cfg.n_layers:
            raise FactscopeError(
                f"layer {l} is out of range; this model has layers 0..{model.cfg.n_layers - 1}"
            )
    if isinstance(corpus, Corpus):
        text = corpus
    elif str(corpus) == DEFAULT_CORPUS:
        from factscope.load import LoadedModel

        lm = LoadedModel("self", model, tokenizer, Path("."))
        text = load_corpus(corpus, lm, n_tokens, progress=progress)
    else:
        text = load_corpus(corpus)
    found: dict[int, KeyStats] = {}
    paths: dict[int, Path] = {}
    if use_cache:
        fingerprint = model_fingerprint(model, max(layers))
        for l in layers:
            name = f"v{STATS_FORMAT}-{fingerprint}-L{l}-{text.digest}-{n_tokens}-s{seq_len}.pt"
            paths[l] = stats_cache_dir() / name
            if paths[l].exists():
                saved = torch.load(paths[l], weights_only=True)
                found[l] = KeyStats(l, saved["sum"], int(saved["count"]), str(saved["corpus"]))
    missing = [l for l in layers if l not in found]
    if missing:
        computed = collect_key_stats(
            model, tokenizer, missing, text, n_tokens, seq_len, progress=progress
        )
        for l, stats in computed.items():
            found[l] = stats
            if use_cache:
                _save(paths[l], stats)
    return {l: found[l] for l in layers}


def _save(path: Path, stats: KeyStats) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"sum": stats.sum, "count": stats.count, "corpus": stats.corpus}, tmp)
    tmp.replace(path)


def effective_rank(stats: KeyStats) -> float:
    """exp(entropy of the normalised eigenvalues): how many directions the keys really use."""
    eig = torch.linalg.eigvalsh(stats.moment).clamp(min=0)
    p = eig / eig.sum()
    p = p[p > 0]
    return float(math.exp(float(-(p * p.log()).sum())))
