"""The probe chapter's computation: can a linear probe read this fact's answer, and from
which layer?

When the fact's prompt is a packaged dataset's question about the subject ("Michael Jordan
plays the sport of" is athlete_sport's "{} plays the sport of"), the study's probe
(study/probe.py) is trained on a bounded sample of that dataset's other facts: residual
streams at the last subject token of the few-shot prompt, every layer, one batched forward
per group of equal-length prompts, logistic regression with k-fold cross-validation. Then a
probe fitted on the whole sample at each layer reads this subject's own residual stream.

The facts are the dataset's, or only those the model knows when a `factscope know` run is
given (the study's `probe` keeps only known facts; finding them takes a forward pass over
the whole dataset, minutes, so it is not done here unasked). Labels are the dataset's
answers either way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from factscope.errors import FactscopeError
from factscope.load import LoadedModel
from factscope.progress import Messages
from factscope.result import Result
from factscope.study.datasets import Dataset, FactRecord, list_datasets, load_dataset, subject_key
from factscope.study.probe import (
    ActivationWork,
    ProbeCurve,
    chance_accuracy,
    fit_probe,
    probe_layers,
)

SUBJECT_ID = "explain-fact/subject"  # the id of the fact's own record when the dataset lacks it
SHARE_OF_BEST = 0.9  # "the layer from which the probe reaches 90% of its best accuracy"


@dataclass(frozen=True)
class FactProbe(Result):
    """The probe curve over a dataset's facts and the probe's reading of this subject."""

    dataset: str
    relation: str
    template: str
    few_shot: str
    facts_from: str  # "known" (a know run's known facts) | "all" (the dataset's facts)
    record_ids: list[str]  # the facts the probe was trained on, in order (this subject not)
    classes: list[str]  # the answers probed (each with at least `folds` facts)
    counts: dict[str, int]
    left_out: list[str]  # answers with fewer than `folds` facts in the sample
    folds: int
    chance: float
    curve: ProbeCurve  # layer 0 = embeddings; l = residual after block l
    best_layer: int
    best_accuracy: float
    reaches: int  # the first layer whose mean accuracy is >= SHARE_OF_BEST * best_accuracy
    subject: str
    subject_answer: str | None  # the answer the subject's reading is scored against
    answer_from: str  # "dataset" | "prediction" | "none" (not among the probed answers)
    subject_probs: list[list[float]]  # (layers, classes): the full-sample probe's reading


def matching_dataset(prompt: str, subject: str) -> Dataset | None:
    """The packaged dataset whose relation asks `prompt` about `subject`, if one does."""
    for name in list_datasets():
        dataset = load_dataset(name)
        if dataset.relation.prompt(subject) == prompt.strip():
            return dataset
    return None


def sample_facts(
    records: Sequence[FactRecord],
    answers: Sequence[str],
    n: int,
    *,
    exclude: str = "",
    seed: int = 0,
) -> list[FactRecord]:
    """Up to `n` of `records`, as evenly spread over `answers` as they allow (taken
    round-robin from each answer's facts in a seeded shuffle), without subject `exclude`."""
    rng = random.Random(seed)
    groups = []
    for answer in answers:
        kept = [
            r
            for r in records
            if r.answer == answer and subject_key(r.subject) != subject_key(exclude)
        ]
        rng.shuffle(kept)
        groups.append(kept)
    sample: list[FactRecord] = []
    depth = 0
    while len(sample) < n and any(depth < len(g) for g in groups):
        sample += [g[depth] for g in groups if depth < len(g)][: n - len(sample)]
        depth += 1
    return sample


def probe_fact(
    lm: LoadedModel,
    dataset: Dataset,
    subject: str,
    *,
    answer: str | None = None,
    known: Sequence[FactRecord] | None = None,
    facts: int = 300,
    folds: int = 5,
    seed: int = 0,
    batch: int = 64,
    progress: Messages | None = None,
) -> FactProbe:
    """Train the study's layer-by-layer probe at the last subject token on up to `facts`
    facts of `dataset` (only those in `known` if given; never about `subject`) and read
    `subject`'s residual stream with it.

    `answer` (the model's answer, leading space allowed) scores the reading when the
    dataset has no fact about `subject`."""
    say = progress or (lambda message: None)
    relation = dataset.relation
    pool = dataset.records if known is None else known
    sample = sample_facts(pool, relation.answers, facts, exclude=subject, seed=seed)
    counts = {a: sum(r.answer == a for r in sample) for a in relation.answers}
    classes = [a for a in relation.answers if counts[a] >= folds]
    if len(classes) < 2:
        raise FactscopeError(
            f"a {folds}-fold probe needs 2+ answers with {folds}+ facts each in {dataset.name}; "
            f"the sample has {counts}; give more facts"
            + (" (the model knows too few)" if known is not None else "")
        )
    sample = [r for r in sample if r.answer in classes]
    own = next((r for r in dataset.records if subject_key(r.subject) == subject_key(subject)), None)
    if own is not None:
        subject_answer, answer_from = own.answer, "dataset"
    elif answer is not None and answer.strip() in classes:
        subject_answer, answer_from = answer.strip(), "prediction"
    else:
        subject_answer, answer_from = None, "none"
    mine = FactRecord(
        SUBJECT_ID, relation.name, subject, subject_answer or classes[0],
        relation.prompt(subject), (), (), "", "explain-fact",
    )  # fmt: skip  # the label is never used: this record is read, not trained on
    work = ActivationWork(lm, Dataset(dataset.name, dataset.version, relation, (*sample, mine)))
    rows: dict[str, np.ndarray] = {}
    for start in range(0, len(sample) + 1, batch):
        chunk = [*sample, mine][start : start + batch]
        say(f"probe: residual streams of {dataset.name} facts {start + 1}–{start + len(chunk)}")
        rows.update({r["id"]: r["subject"] for r in work(chunk)})  # each (L + 1, D)
    features = np.stack([rows[r.id] for r in sample])  # (N, L + 1, D)
    labels = np.array([classes.index(r.answer) for r in sample])
    say(f"probe: {features.shape[1]} layers x {folds} folds of logistic regression")
    curve = probe_layers(features, labels, folds=folds, seed=seed, label="last subject token")
    best_layer = int(np.argmax(curve.mean))
    best = curve.mean[best_layer]
    reaches = next(i for i, m in enumerate(curve.mean) if m >= SHARE_OF_BEST * best)
    x_subject = rows[SUBJECT_ID].astype(np.float64)  # (L + 1, D)
    readings = []
    for layer in range(features.shape[1]):
        fitted = fit_probe(features[:, layer].astype(np.float64), labels)
        readings.append([float(p) for p in fitted.predict_proba(x_subject[layer : layer + 1])[0]])
    return FactProbe(
        dataset=dataset.name,
        relation=relation.name,
        template=relation.template,
        few_shot=relation.few_shot,
        facts_from="all" if known is None else "known",
        record_ids=[r.id for r in sample],
        classes=classes,
        counts={a: counts[a] for a in classes},
        left_out=[a for a in relation.answers if a not in classes],
        folds=folds,
        chance=chance_accuracy(labels),
        curve=curve,
        best_layer=best_layer,
        best_accuracy=best,
        reaches=reaches,
        subject=subject,
        subject_answer=subject_answer,
        answer_from=answer_from,
        subject_probs=readings,
    )
