"""What does the model know? p(correct answer) for every fact of a dataset.

Each fact is asked with the relation's worked example in front, as DeepMind's "Fact
Finding" study asked its athletes:

    Fact: Tiger Woods plays the sport of golf\\nFact: Michael Jordan plays the sport of

and the next-token distribution is read twice: over the full vocabulary (p(correct) of the
answer's token, the study's rule "known" = p > 0.5) and restricted to the relation's answer
set (which answer the model prefers, for accuracy). A fact counts as known only if it
survives every step:

    candidates -> well-formed -> single-token answer -> known

- well-formed: the prompt is the relation's template and the subject ends on a token
  boundary (so "the last subject token" is a real token the probes and traces can read);
- single-token answer: " " + answer is one token, so p(correct) is the whole answer's;
- known: p(correct) > 0.5 over the full vocabulary.

Speed: the few-shot prefix is the same for every fact, so its keys/values are computed once
and shared by a whole batch; facts are batched by length (no padding) and only the final
position is unembedded (262,144 rows for Gemma: more work than the body of a short prompt).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.model import KVCache, Transformer
from factscope.result import Result
from factscope.study.datasets import Dataset, FactRecord, answer_token_ids, load_dataset
from factscope.study.sweep import ModelWork, read_records, run_sweep_batches
from factscope.tokenizer import Tokenizer

if TYPE_CHECKING:
    from factscope.load import LoadedModel

KNOWN_THRESHOLD = 0.5  # the study's rule: p(correct answer) over the full vocabulary > 0.5
STEPS = ("candidates", "well_formed", "single_token", "known")


# ---- the prompts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FewShotPrompts:
    """The token ids of every fact's few-shot prompt, split into the shared prefix and the
    part that differs: `prefix` + `suffixes[i]` == encode(few_shot + prompt_i)."""

    prefix: list[int]
    suffixes: dict[str, list[int]]  # fact id -> its own tokens after the prefix
    subject_ends: dict[str, int]  # fact id -> index (in the full ids) after its last subject token
    well_formed: dict[str, bool]


def few_shot_prompts(
    tokenizer: Tokenizer, dataset: Dataset, records: Sequence[FactRecord]
) -> FewShotPrompts:
    """Encode every fact with the relation's few-shot prefix; find the tokens all share.

    The prefix is cut where the tokens of every prompt still agree with the tokens of the
    prefix text alone (SentencePiece may merge the prefix's trailing space into the subject's
    first token), so prefix + suffix is exactly the tokenization of the whole prompt."""
    relation = dataset.relation
    prefix = tokenizer.encode(relation.few_shot)
    full: dict[str, list[int]] = {}
    subject_ends: dict[str, int] = {}
    well_formed: dict[str, bool] = {}
    shared = len(prefix)
    for record in records:
        text = relation.with_few_shot(record.prompt)
        ids, offsets = tokenizer.encode_with_offsets(text)
        full[record.id] = ids
        common = 0
        while common < min(shared, len(ids)) and ids[common] == prefix[common]:
            common += 1
        shared = common
        char_end = (
            len(relation.few_shot) + record.prompt.rfind(record.subject) + len(record.subject)
        )
        ends = [i for i, (_, e) in enumerate(offsets) if e == char_end]
        covering = [i for i, (s, e) in enumerate(offsets) if s < char_end <= e]
        subject_ends[record.id] = (covering[-1] if covering else len(ids) - 1) + 1
        well_formed[record.id] = (
            record.prompt == relation.prompt(record.subject) and bool(ends) and len(ids) > shared
        )
    shared = min(shared, *(len(ids) - 1 for ids in full.values())) if full else shared
    return FewShotPrompts(
        prefix=prefix[:shared],
        suffixes={i: ids[shared:] for i, ids in full.items()},
        subject_ends=subject_ends,
        well_formed=well_formed,
    )


# ---- the batched forward pass ------------------------------------------------------------------


def prefix_cache(model: Transformer, prefix: Sequence[int]) -> KVCache:
    """Keys/values of the shared prefix, batch 1: (1, K, P, dh) per layer."""
    cache = KVCache.empty(model.cfg.n_layers)
    if prefix:
        tokens = torch.tensor([list(prefix)], device=model.device)
        positions = torch.arange(len(prefix), device=model.device)
        model.run_blocks(model.embed_tokens(tokens), positions, kv_cache=cache)
    return cache


def expand_cache(cache: KVCache, batch: int) -> KVCache:
    """The same cached prefix for `batch` rows: (1, K, P, dh) -> (B, K, P, dh), no copy (the
    next forward appends with torch.cat, which makes the batch's own tensors)."""
    return KVCache(
        [None if k is None else k.expand(batch, -1, -1, -1) for k in cache.keys],
        [None if v is None else v.expand(batch, -1, -1, -1) for v in cache.values],
    )


@torch.no_grad()
def last_logits(model: Transformer, cache: KVCache, suffixes: Tensor) -> Tensor:
    """Logits (B, V) at the final position of prefix + each row of `suffixes` (B, T)."""
    logits = model(suffixes, kv_cache=expand_cache(cache, suffixes.shape[0]), logits_at="last")
    return logits[:, -1].float()


# ---- one fact's answer -----------------------------------------------------------------------


def fact_record(
    record: FactRecord,
    logits: Tensor,
    answer_ids: dict[str, int],
    single_token: dict[str, bool],
    well_formed: bool,
    tokenizer: Tokenizer,
) -> dict[str, Any]:
    """The JSON record of one fact from its final-position logits (V,)."""
    log_p = torch.log_softmax(logits, dim=-1)
    answers = list(answer_ids)
    set_logits = logits[[answer_ids[a] for a in answers]]
    p_set = torch.softmax(set_logits, dim=-1)
    predicted = answers[int(p_set.argmax())]
    p_correct = float(log_p[answer_ids[record.answer]].exp())
    top = int(logits.argmax())
    ok = single_token[record.answer]
    return {
        "id": record.id,
        "subject": record.subject,
        "answer": record.answer,
        "p_correct": p_correct,
        "p_answer_set": {a: round(float(p), 6) for a, p in zip(answers, p_set, strict=True)},
        "mass_on_answer_set": float(log_p[[answer_ids[a] for a in answers]].exp().sum()),
        "predicted": predicted,
        "top_token": tokenizer.token_str(top),
        "well_formed": well_formed,
        "single_token": ok,
        "known": well_formed and ok and p_correct > KNOWN_THRESHOLD,
    }


class KnowWork(ModelWork):
    """The sweep's work: a batch of facts -> one record each, sharing the prefix's keys/values."""

    shipped = ("dataset", "max_batch")

    def __init__(self, lm: LoadedModel, dataset: Dataset, max_batch: int = 64) -> None:
        super().__init__(lm)
        self.dataset = dataset
        self.max_batch = max_batch
        self._prepare()

    def _prepare(self) -> None:
        assert self.lm is not None
        tokenizer, relation = self.lm.tokenizer, self.dataset.relation
        self.answer_ids = {a: answer_token_ids(tokenizer, a)[0] for a in relation.answers}
        self.single_token = {a: len(answer_token_ids(tokenizer, a)) == 1 for a in relation.answers}
        self.prompts = few_shot_prompts(tokenizer, self.dataset, self.dataset.records)
        self.cache = prefix_cache(self.lm.model, self.prompts.prefix)

    def __call__(self, batch: list[FactRecord]) -> list[dict[str, Any]]:
        assert self.lm is not None
        model, prompts = self.lm.model, self.prompts
        by_length: dict[int, list[FactRecord]] = {}
        for record in batch:
            by_length.setdefault(len(prompts.suffixes[record.id]), []).append(record)
        out: dict[str, dict[str, Any]] = {}
        for group in by_length.values():
            for start in range(0, len(group), self.max_batch):
                rows = group[start : start + self.max_batch]
                ids = torch.tensor([prompts.suffixes[r.id] for r in rows], device=model.device)
                logits = last_logits(model, self.cache, ids)  # (B, V)
                for record, row in zip(rows, logits, strict=True):
                    out[record.id] = fact_record(
                        record, row, self.answer_ids, self.single_token,
                        prompts.well_formed[record.id], self.lm.tokenizer,
                    )  # fmt: skip
        return [out[r.id] for r in batch]


def by_length(records: Sequence[FactRecord], prompts: FewShotPrompts) -> list[FactRecord]:
    """Facts ordered by the length of their own tokens, so that a sweep's batches need no
    padding (ties keep the dataset's order)."""
    return sorted(records, key=lambda r: len(prompts.suffixes[r.id]))


# ---- the summary -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowSummary(Result):
    """What survives each step, overall and per answer class, and how accurate the model is.

    counts[step][answer] with steps candidates, well_formed, single_token, known (and
    counts[step]["all"]); accuracy = argmax over the answer set == answer, on well-formed
    facts; confusion[answer][predicted] counts well-formed facts."""

    model: str
    dataset: str
    dataset_version: str
    relation: str
    few_shot: str
    threshold: float
    counts: dict[str, dict[str, int]]
    accuracy: dict[str, float]
    confusion: dict[str, dict[str, int]]
    mean_p_correct: dict[str, float]
    single_token_answers: dict[str, bool]
    known_ids: list[str]
    dataset_notes: str = ""  # how the dataset was built (e.g. the cleaning steps' counts)


def summarize(model_name: str, dataset: Dataset, records: Sequence[dict[str, Any]]) -> KnowSummary:
    """Counts per step and answer class, accuracy and confusion from the sweep's records."""
    answers = list(dataset.relation.answers)
    counts = {step: dict.fromkeys([*answers, "all"], 0) for step in STEPS}
    confusion = {a: dict.fromkeys(answers, 0) for a in answers}
    p_sum: Counter[str] = Counter()
    for r in records:
        steps = [
            True,
            r["well_formed"],
            r["well_formed"] and r["single_token"],
            r["known"],
        ]
        for step, passed in zip(STEPS, steps, strict=True):
            if passed:
                counts[step][r["answer"]] += 1
                counts[step]["all"] += 1
        if r["well_formed"]:
            confusion[r["answer"]][r["predicted"]] += 1
            p_sum[r["answer"]] += r["p_correct"]
            p_sum["all"] += r["p_correct"]
    accuracy, mean_p = {}, {}
    for key in [*answers, "all"]:
        n = counts["well_formed"][key]
        right = sum(confusion[a][a] for a in answers) if key == "all" else confusion[key][key]
        accuracy[key] = right / n if n else 0.0
        mean_p[key] = p_sum[key] / n if n else 0.0
    single = {a: bool(r) for a, r in _single_token_of(records, answers).items()}
    return KnowSummary(
        model=model_name,
        dataset=dataset.name,
        dataset_version=dataset.version,
        relation=dataset.relation.name,
        few_shot=dataset.relation.few_shot,
        threshold=KNOWN_THRESHOLD,
        counts=counts,
        accuracy=accuracy,
        confusion=confusion,
        mean_p_correct=mean_p,
        single_token_answers=single,
        known_ids=[r["id"] for r in records if r["known"]],
        dataset_notes=dataset.notes,
    )


def _single_token_of(records: Sequence[dict[str, Any]], answers: list[str]) -> dict[str, bool]:
    seen = {r["answer"]: r["single_token"] for r in records}
    return {a: seen.get(a, False) for a in answers}


# ---- the command's function ------------------------------------------------------------------


def know_meta(lm: LoadedModel, dataset: Dataset, command: str = "") -> dict[str, Any]:
    """What identifies a know run: a run dir of another model or dataset is refused."""
    return {
        "task": "know",
        "model": lm.name,
        "dataset": dataset.name,
        "dataset_version": dataset.version,
        "few_shot": dataset.relation.few_shot,
        "threshold": KNOWN_THRESHOLD,
        "command": command,
    }


def know(
    lm: LoadedModel,
    dataset: Dataset | str,
    run_dir: Path | str,
    *,
    limit: int | None = None,
    batch_size: int = 64,
    backend: str = "local",
    address: str | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
    command: str = "",
) -> tuple[KnowSummary, list[dict[str, Any]]]:
    """Ask the model every fact of `dataset` (the first `limit`), one record per fact in
    `run_dir` (resumable); return the summary and the records in dataset order."""
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    records = list(data.records[:limit] if limit is not None else data.records)
    if not records:
        raise FactscopeError(f"dataset {data.name} has no records to ask")
    if limit is not None:
        data = Dataset(
            data.name, data.version, data.relation, tuple(records), data.answer_tokens, data.notes
        )
    work = KnowWork(lm, data, max_batch=batch_size)
    ordered = by_length(records, work.prompts)
    done = run_sweep_batches(
        run_dir, ordered, work, meta=know_meta(lm, data, command), batch_size=batch_size,
        backend=backend, address=address, workers=workers, force=force, desc="facts",
        progress=progress,
    )  # fmt: skip
    by_id = {r["id"]: r for r in done}
    in_order = [by_id[r.id] for r in records]
    return summarize(lm.name, data, in_order), in_order


def default_know_dir(model_name: str, dataset: Dataset) -> Path:
    """Where `known_facts` keeps a know run when none is given: the user cache."""
    from factscope.weights.cache import cache_root

    safe = model_name.replace("/", "_")
    return cache_root() / "know" / f"{safe}--{dataset.name}-v{dataset.version}"


def known_facts(
    lm: LoadedModel,
    dataset: Dataset | str,
    know_dir: Path | str | None = None,
    *,
    progress: bool = True,
) -> list[FactRecord]:
    """The facts of `dataset` the model knows (the rule above), in dataset order: what probe
    and trace-many study by default. Reads the know run in `know_dir` (default: the user
    cache), running or finishing it first if needed."""
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    run_dir = Path(know_dir) if know_dir is not None else default_know_dir(lm.name, data)
    done = {r["id"]: r for r in read_records(run_dir)} if run_dir.exists() else {}
    if any(r.id not in done for r in data.records):
        _, records = know(lm, data, run_dir, progress=progress)
        done = {r["id"]: r for r in records}
    return [r for r in data.records if done[r.id]["known"]]
