"""Where is the answer linearly readable? Probes on the residual stream, layer by layer.

DeepMind's "Fact Finding" study (Nanda et al. 2023) trained a linear probe on the residual
stream at an athlete's last name token and found the sport readable at ~90% by layer 6 of
Pythia 2.8B's 32, before the model has seen "plays the sport of". We repeat it for the
known facts of a dataset:

- positions: the last subject token and the final token of the few-shot prompt;
- layers: 0 = the embeddings, l = the residual stream after block l (`blocks.{l-1}.resid_post`);
- probe: logistic regression on standardised activations, k-fold stratified cross-validation,
  accuracy per fold (the curves show the mean and the min-max band);
- controls, as in the study:
  * bare name: the prompt is only "<bos> First Last", read at its last token: is the
    answer looked up from the name alone, without the relation or the worked example?
  * attention mean-ablated from layer 2 on: at the last subject token, `attn.out` of every
    block >= 2 is replaced by its mean over the facts, so later layers get no information
    moved from other tokens; if the probe still reads the answer, MLPs on the name's own
    tokens did the lookup;
  * shuffled labels: the same probe on permuted answers, which must sit at chance.

Activations are collected by a resumable sweep (one record + one .npz of arrays per fact):
first the clean and bare-name passes (which also give the mean attention outputs), then the
ablated pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.hooks import hooks
from factscope.model import Transformer
from factscope.result import Result
from factscope.study.datasets import Dataset, FactRecord
from factscope.study.know import expand_cache, few_shot_prompts, prefix_cache
from factscope.study.sweep import ModelWork, load_arrays, run_sweep_batches

if TYPE_CHECKING:
    from factscope.load import LoadedModel

ABLATE_FROM = 2  # the study's control: attention of layers 2.. replaced by its mean
TARGET = 0.9  # "the first layer above 90%"
CONDITIONS = {
    "subject": "last subject token",
    "final": "final token",
    "bare": "bare name '<bos> First Last'",
    "ablated_subject": f"last subject token, attention >= layer {ABLATE_FROM} mean-ablated",
    "ablated_final": f"final token, attention >= layer {ABLATE_FROM} mean-ablated",
    "shuffled": "last subject token, shuffled labels",
}


# ---- activations --------------------------------------------------------------------------


def residual_sites(n_layers: int) -> list[str]:
    """The L + 1 residual-stream sites: the embeddings, then each block's output."""
    return ["embed", *(f"blocks.{i}.resid_post" for i in range(n_layers))]


@torch.no_grad()
def residuals_at(
    model: Transformer,
    tokens: Tensor,
    read_at: dict[str, Tensor],
    *,
    cache: Any = None,
    attn_means: Tensor | None = None,
    ablate_at: Tensor | None = None,
) -> dict[str, Tensor]:
    """Run `tokens` (B, T) (continuing the batch-1 `cache` if given) and return, for each name
    in `read_at` (B,) positions, the residual stream at every layer there: (B, L + 1, D).

    Also returns "attn_out" (B, L, D), the attention outputs at the first position of
    `read_at`. With `attn_means` (L, D), `attn.out` of every block >= ABLATE_FROM is replaced
    by its mean at the positions `ablate_at` (B,)."""
    B, T = tokens.shape
    L = model.cfg.n_layers
    rows = torch.arange(B, device=tokens.device)
    first = next(iter(read_at.values()))
    taken: dict[str, list[Tensor]] = {name: [] for name in read_at}
    attn_out: list[Tensor] = []

    def read(x: Tensor, site: str) -> None:
        for name, positions in read_at.items():
            taken[name].append(x[rows, positions].float())  # (B, D)

    def read_attn(x: Tensor, site: str) -> None:
        attn_out.append(x[rows, first].float())

    def ablate(x: Tensor, site: str) -> Tensor:
        layer = int(site.split(".")[1])
        assert attn_means is not None and ablate_at is not None
        x = x.clone()
        x[rows, ablate_at] = attn_means[layer].to(x.dtype)
        return x

    fns: dict[str, Any] = {site: read for site in residual_sites(L)}
    for i in range(L):
        site = f"blocks.{i}.attn.out"
        fns[site] = (
            [ablate, read_attn] if attn_means is not None and i >= ABLATE_FROM else read_attn
        )
    past = 0 if cache is None else cache.length()
    positions = torch.arange(past, past + T, device=tokens.device)
    kv = None if cache is None else expand_cache(cache, B)
    with hooks(model, fns):
        model.run_blocks(model.embed_tokens(tokens, positions), positions, kv_cache=kv)
    out = {name: torch.stack(xs, dim=1) for name, xs in taken.items()}  # (B, L + 1, D)
    out["attn_out"] = torch.stack(attn_out, dim=1)  # (B, L, D)
    return out


class ActivationWork(ModelWork):
    """The sweep's work: a batch of facts -> their residual streams, as arrays per fact.

    pass "clean": few-shot prompt at the last subject token and the final token, the bare
    name at its last token, and attention outputs at the last subject token (for the means);
    pass "ablated": the few-shot prompt with attention mean-ablated from layer 2 on."""

    shipped = ("dataset", "attn_means")

    def __init__(
        self, lm: LoadedModel, dataset: Dataset, attn_means: NDArray[np.float32] | None = None
    ) -> None:
        super().__init__(lm)
        self.dataset = dataset
        self.attn_means = attn_means
        self._prepare()

    def _prepare(self) -> None:
        assert self.lm is not None
        self.prompts = few_shot_prompts(self.lm.tokenizer, self.dataset, self.dataset.records)
        self.cache = prefix_cache(self.lm.model, self.prompts.prefix)
        self.means = None if self.attn_means is None else torch.as_tensor(self.attn_means)

    def __call__(self, batch: list[FactRecord]) -> list[dict[str, Any]]:
        assert self.lm is not None
        model, prompts, labels = self.lm.model, self.prompts, self.dataset.relation.answers
        P = len(prompts.prefix)
        out: dict[str, dict[str, Any]] = {
            r.id: {"id": r.id, "answer": r.answer, "label": labels.index(r.answer)} for r in batch
        }
        for group in _same_length(batch, lambda r: len(prompts.suffixes[r.id])):
            ids = torch.tensor([prompts.suffixes[r.id] for r in group], device=model.device)
            subject = torch.tensor([prompts.subject_ends[r.id] - 1 - P for r in group])
            final = torch.full_like(subject, ids.shape[1] - 1)
            if self.means is None:
                acts = residuals_at(
                    model, ids, {"subject": subject, "final": final}, cache=self.cache
                )
                keys: tuple[str, ...] = ("subject", "final", "attn_out")
            else:
                acts = residuals_at(
                    model, ids, {"ablated_subject": subject, "ablated_final": final},
                    cache=self.cache, attn_means=self.means, ablate_at=subject,
                )  # fmt: skip
                keys = ("ablated_subject", "ablated_final")
            for i, r in enumerate(group):
                out[r.id].update({k: acts[k][i].numpy().astype(np.float32) for k in keys})
        if self.means is None:
            tokenizer = self.lm.tokenizer
            bare = {r.id: tokenizer.encode(r.subject) for r in batch}
            for group in _same_length(batch, lambda r: len(bare[r.id])):
                ids = torch.tensor([bare[r.id] for r in group], device=model.device)
                last = torch.full((len(group),), ids.shape[1] - 1)
                acts = residuals_at(model, ids, {"bare": last})
                for i, r in enumerate(group):
                    out[r.id]["bare"] = acts["bare"][i].numpy().astype(np.float32)
        return [out[r.id] for r in batch]


def _same_length(records: Sequence[FactRecord], length: Any) -> list[list[FactRecord]]:
    groups: dict[int, list[FactRecord]] = {}
    for r in records:
        groups.setdefault(length(r), []).append(r)
    return list(groups.values())


class CollectOptions(TypedDict, total=False):
    """How `collect_activations` runs; what is left out takes its default (32 facts a batch,
    in this process, resuming, a progress bar, no command recorded)."""

    batch_size: int
    backend: str  # "local" or "ray"
    address: str | None  # the Ray cluster
    force: bool  # start both sweeps over instead of resuming
    progress: bool
    command: str  # the command line recorded in each sweep's run.json


def collect_activations(
    lm: LoadedModel,
    dataset: Dataset,
    facts: Sequence[FactRecord],
    run_dir: Path | str,
    *,
    batch_size: int = 32,
    backend: str = "local",
    address: str | None = None,
    force: bool = False,
    progress: bool = True,
    command: str = "",
) -> tuple[list[int], dict[str, NDArray[np.float32]]]:
    """Residual streams of `facts` for every condition: labels (N,) and name -> (N, L + 1, D).

    Two resumable sweeps in run_dir/clean and run_dir/ablated; the ablated pass uses the mean
    attention outputs (at the last subject token) of the clean pass."""
    run_dir = Path(run_dir)
    known = Dataset(dataset.name, dataset.version, dataset.relation, tuple(facts))
    meta = {
        "task": "probe-activations",
        "model": lm.name,
        "dataset": dataset.name,
        "dataset_version": dataset.version,
        "facts": _digest([f.id for f in facts]),
        "command": command,
    }
    common: dict[str, Any] = {
        "batch_size": batch_size, "backend": backend, "address": address, "force": force,
        "progress": progress,
    }  # fmt: skip
    order = sorted(facts, key=lambda f: len(f.subject))
    clean = run_sweep_batches(
        run_dir / "clean", order, ActivationWork(lm, known), meta={**meta, "pass": "clean"},
        desc="facts (clean + bare)", **common,
    )  # fmt: skip
    by_id = {r["id"]: r for r in clean}
    arrays = [load_arrays(run_dir / "clean", by_id[f.id]) for f in facts]
    means = np.mean([a["attn_out"] for a in arrays], axis=0).astype(np.float32)  # (L, D)
    ablated = run_sweep_batches(
        run_dir / "ablated", order, ActivationWork(lm, known, means),
        meta={**meta, "pass": "ablated", "means": _digest(means.tobytes())},
        desc="facts (ablated)", **common,
    )  # fmt: skip
    ablated_by_id = {r["id"]: r for r in ablated}
    ablated_arrays = [load_arrays(run_dir / "ablated", ablated_by_id[f.id]) for f in facts]
    features = {name: np.stack([a[name] for a in arrays]) for name in ("subject", "final", "bare")}
    for name in ("ablated_subject", "ablated_final"):
        features[name] = np.stack([a[name] for a in ablated_arrays])
    labels = [int(by_id[f.id]["label"]) for f in facts]
    return labels, features


def _digest(data: Any) -> str:
    import hashlib

    raw = data if isinstance(data, bytes) else repr(data).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


# ---- probes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeCurve:
    """Cross-validated probe accuracy at every layer: per fold, and summarised."""

    label: str
    fold_accuracy: list[list[float]]  # (layers, folds)
    mean: list[float]
    min: list[float]
    max: list[float]
    first_above: int | None  # first layer whose mean accuracy exceeds TARGET


def fit_probe(x: NDArray[Any], y: NDArray[Any], *, c: float = 1.0) -> Any:
    """One probe: logistic regression on standardised activations `x` (N, D) for `y` (N,);
    a fitted scikit-learn pipeline (`predict_proba` gives its reading of new activations)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x, y)


def probe_layers(
    features: NDArray[Any],
    labels: Sequence[int] | NDArray[Any],
    *,
    folds: int = 5,
    seed: int = 0,
    label: str = "",
    c: float = 1.0,
) -> ProbeCurve:
    """A logistic-regression probe per layer of `features` (N, L, D) for `labels` (N,),
    scored by stratified `folds`-fold cross-validation (the same folds at every layer)."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    if features.ndim != 3 or features.shape[0] != len(y):
        raise FactscopeError(
            f"features must be (facts, layers, d_model) with one row per label; got "
            f"{features.shape} for {len(y)} labels"
        )
    smallest = int(np.bincount(y).min(initial=0)) if len(y) else 0
    present = np.unique(y)
    if len(present) < 2 or min(int((y == k).sum()) for k in present) < folds:
        raise FactscopeError(
            f"a {folds}-fold probe needs at least 2 classes with {folds} facts each; got "
            f"{len(present)} classes, smallest {smallest}; lower --folds or add facts"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(len(y)), y))
    per_layer: list[list[float]] = []
    for layer in range(features.shape[1]):
        x = features[:, layer].astype(np.float64)
        scores = []
        for train, test in splits:
            probe = fit_probe(x[train], y[train], c=c)
            scores.append(float(probe.score(x[test], y[test])))
        per_layer.append(scores)
    mean = [float(np.mean(s)) for s in per_layer]
    above = [i for i, m in enumerate(mean) if m > TARGET]
    return ProbeCurve(
        label=label,
        fold_accuracy=per_layer,
        mean=mean,
        min=[float(np.min(s)) for s in per_layer],
        max=[float(np.max(s)) for s in per_layer],
        first_above=above[0] if above else None,
    )


def chance_accuracy(labels: Sequence[int] | NDArray[Any]) -> float:
    """The accuracy of always answering the most common class."""
    y = np.asarray(labels)
    return float(np.bincount(y).max() / len(y)) if len(y) else 0.0


@dataclass(frozen=True)
class ProbeResult(Result):
    """Probe curves for every condition over the known facts of a dataset."""

    model: str
    dataset: str
    relation: str
    n_facts: int
    n_layers: int
    folds: int
    chance: float
    classes: list[str]
    counts: dict[str, int]  # facts per class
    curves: dict[str, ProbeCurve]
    notes: list[str] = field(default_factory=list)


def probe_conditions(
    labels: Sequence[int],
    features: dict[str, NDArray[np.float32]],
    *,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, ProbeCurve]:
    """A probe curve per condition, plus the shuffled-label control at the subject token."""
    curves = {
        name: probe_layers(x, labels, folds=folds, seed=seed, label=CONDITIONS[name])
        for name, x in features.items()
    }
    if "subject" in features:
        shuffled = np.random.default_rng(seed).permutation(np.asarray(labels))
        curves["shuffled"] = probe_layers(
            features["subject"], shuffled, folds=folds, seed=seed, label=CONDITIONS["shuffled"]
        )
    return curves


def probe(
    lm: LoadedModel,
    dataset: Dataset,
    facts: Sequence[FactRecord],
    run_dir: Path | str,
    *,
    folds: int = 5,
    seed: int = 0,
    **collect: Unpack[CollectOptions],
) -> ProbeResult:
    """Collect the activations of `facts` (resumable; `collect` says how) and fit every probe."""
    classes = list(dataset.relation.answers)
    counts = {a: sum(f.answer == a for f in facts) for a in classes}
    kept = [a for a in classes if counts[a] >= folds]
    notes = [
        f"answer {a!r} has only {counts[a]} known facts (< {folds} folds); left out"
        for a in classes
        if a not in kept
    ]
    facts = [f for f in facts if f.answer in kept]
    if len(kept) < 2:
        raise FactscopeError(
            f"a probe needs 2+ answers with {folds}+ known facts each; known per answer: "
            f"{counts}; lower --folds or use a model that knows more"
        )
    labels, features = collect_activations(lm, dataset, facts, run_dir, **collect)
    curves = probe_conditions(labels, features, folds=folds, seed=seed)
    return ProbeResult(
        model=lm.name,
        dataset=dataset.name,
        relation=dataset.relation.name,
        n_facts=len(facts),
        n_layers=lm.cfg.n_layers,
        folds=folds,
        chance=chance_accuracy(labels),
        classes=kept,
        counts={a: counts[a] for a in kept},
        curves=curves,
        notes=notes,
    )
