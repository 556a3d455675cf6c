"""Causal traces averaged over many known facts, grouped the way ROME's Figure 2 groups them.

One trace (locate/trace.py) says where one fact's answer is carried; ROME (Meng et al. 2022,
Fig. 2) averaged the indirect effects over 1,000 known facts. Prompts differ in length, so
tokens are grouped by role before averaging:

    first subject token | middle subject tokens | last subject token |
    first token after the subject | further tokens | last token

(a one-token subject counts as both first and last; middle and further tokens are pooled
over all the facts that have them, as ROME's `read_knowlege` pools them). Each fact is asked
with its relation's few-shot prompt, the way `know` found it known; the worked example's
tokens come before the subject and are not part of any group.

Each fact is one record of a resumable sweep: its clean and corrupted p and its scores from
the first subject token on, per kind. `--approx` uses attribution patching (~20x faster).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from factscope.errors import FactscopeError
from factscope.locate.attribution import approx_trace
from factscope.locate.corruption import KINDS, TraceOptions, estimate_noise_std
from factscope.locate.trace import trace_fact
from factscope.result import Result
from factscope.study.datasets import Dataset, FactRecord, answer_token_ids
from factscope.study.sweep import ModelWork, run_sweep

if TYPE_CHECKING:
    from factscope.load import LoadedModel

GROUPS = (
    "first subject token",
    "middle subject tokens",
    "last subject token",
    "first subsequent token",
    "further tokens",
    "last token",
)


def group_rows(n_tokens: int, subject_len: int) -> dict[str, list[int]]:
    """Which rows (token indices counted from the first subject token) fall in each group,
    for a prompt with `n_tokens` tokens from the subject's first token to the end."""
    last_subject, first_after, last = subject_len - 1, subject_len, n_tokens - 1
    if not 0 < subject_len < n_tokens:
        raise ValueError(f"subject of {subject_len} tokens in {n_tokens}: no token after it")
    return {
        GROUPS[0]: [0],
        GROUPS[1]: list(range(1, last_subject)),
        GROUPS[2]: [last_subject],
        GROUPS[3]: [first_after],
        GROUPS[4]: list(range(first_after + 1, last)),
        GROUPS[5]: [last],
    }


class TraceWork(ModelWork):
    """The sweep's work: one fact -> its causal traces (scores from the subject on)."""

    shipped = ("dataset", "options")

    def __init__(
        self,
        lm: LoadedModel,
        dataset: Dataset,
        *,
        kinds: Sequence[str],
        samples: int,
        window: int,
        noise_std: float,
        seed: int,
        approx: bool,
    ) -> None:
        super().__init__(lm)
        self.dataset = dataset
        self.options: dict[str, Any] = {
            "kinds": list(kinds), "samples": samples, "window": window,
            "noise_std": noise_std, "seed": seed, "approx": approx,
        }  # fmt: skip

    def __call__(self, fact: FactRecord) -> dict[str, Any]:
        assert self.lm is not None
        lm, o = self.lm, self.options
        text = self.dataset.relation.with_few_shot(fact.prompt)
        tokens = lm.encode(text)
        span = lm.tokenizer.find_subject_span(text, fact.subject)
        answer_id = answer_token_ids(lm.tokenizer, fact.answer)[0]
        options = TraceOptions(
            kinds=o["kinds"],
            samples=o["samples"],
            window=o["window"],
            noise_std=o["noise_std"],
            seed=o["seed"],
        )
        tracer = approx_trace if o["approx"] else trace_fact
        results = tracer(lm.model, tokens, span, answer_id, **options)
        first = next(iter(results.values()))
        start, stop = span
        return {
            "subject": fact.subject,
            "answer": fact.answer,
            "n_tokens": tokens.shape[1] - start,
            "subject_len": stop - start,
            "clean_p": first.clean_p,
            "corrupted_p": first.corrupted_p,
            "scores": {k: [row for row in r.scores[start:]] for k, r in results.items()},
        }


@dataclass(frozen=True)
class AverageTrace(Result):
    """ROME Figure 2 for a dataset: average indirect effect per token group and layer."""

    model: str
    dataset: str
    n_facts: int
    kinds: list[str]
    groups: list[str]
    aie: dict[str, list[list[float]]]  # kind -> (groups, layers): mean of score - corrupted p
    scores: dict[str, list[list[float]]]  # kind -> (groups, layers): mean p with the cell restored
    clean_p: float  # mean over facts
    corrupted_p: float
    window: int
    samples: int
    noise_std: float
    method: str
    group_counts: dict[str, int]  # how many token rows were pooled per group
    notes: list[str] = field(default_factory=list)

    def peak(self, kind: str, group: str) -> tuple[int, float]:
        """(layer, AIE) where `group`'s effect of `kind` is largest."""
        row = self.aie[kind][self.groups.index(group)]
        layer = int(np.argmax(row))
        return layer, float(row[layer])


def average_trace(
    records: Sequence[dict[str, Any]],
    *,
    model: str,
    dataset: str,
    kinds: Sequence[str],
    window: int,
    samples: int,
    noise_std: float,
    method: str,
) -> AverageTrace:
    """Pool every fact's rows into the six groups and average (ROME's `read_knowlege`)."""
    if not records:
        raise FactscopeError("no traced facts to average; is the known subset empty?")
    pooled_ie: dict[str, dict[str, list[list[float]]]] = {k: {g: [] for g in GROUPS} for k in kinds}
    pooled_p: dict[str, dict[str, list[list[float]]]] = {k: {g: [] for g in GROUPS} for k in kinds}
    for r in records:
        rows = group_rows(r["n_tokens"], r["subject_len"])
        for kind in kinds:
            scores = np.asarray(r["scores"][kind])  # (n_tokens, layers)
            for group, idx in rows.items():
                for i in idx:
                    pooled_p[kind][group].append(scores[i].tolist())
                    pooled_ie[kind][group].append((scores[i] - r["corrupted_p"]).tolist())
    n_layers = len(records[0]["scores"][kinds[0]][0])

    def mean(rows: list[list[float]]) -> list[float]:
        return np.mean(rows, axis=0).tolist() if rows else [float("nan")] * n_layers

    return AverageTrace(
        model=model,
        dataset=dataset,
        n_facts=len(records),
        kinds=list(kinds),
        groups=list(GROUPS),
        aie={k: [mean(pooled_ie[k][g]) for g in GROUPS] for k in kinds},
        scores={k: [mean(pooled_p[k][g]) for g in GROUPS] for k in kinds},
        clean_p=float(np.mean([r["clean_p"] for r in records])),
        corrupted_p=float(np.mean([r["corrupted_p"] for r in records])),
        window=window,
        samples=samples,
        noise_std=noise_std,
        method=method,
        group_counts={g: len(pooled_p[kinds[0]][g]) for g in GROUPS},
    )


def dataset_noise_std(lm: LoadedModel, facts: Sequence[FactRecord]) -> float:
    """ROME's noise: 3 x the std of the embeddings of the subjects' tokens, over `facts`
    (the CLI passes every known fact, however many are traced)."""
    ids = sorted({i for f in facts for i in lm.tokenizer.encode(f.subject, add_bos=False)})
    return estimate_noise_std(lm.model, ids)


def trace_many(
    lm: LoadedModel,
    dataset: Dataset,
    facts: Sequence[FactRecord],
    run_dir: Path | str,
    *,
    kinds: Sequence[str] = KINDS,
    samples: int = 10,
    window: int = 10,
    noise_std: float | None = None,
    seed: int = 0,
    approx: bool = False,
    backend: str = "local",
    address: str | None = None,
    force: bool = False,
    progress: bool = True,
    command: str = "",
) -> tuple[AverageTrace, list[dict[str, Any]]]:
    """Trace every fact (one record each in `run_dir`, resumable) and average them."""
    if not facts:
        raise FactscopeError("no facts to trace; the model knows none of this dataset")
    std = noise_std if noise_std is not None else dataset_noise_std(lm, facts)
    method = "approx" if approx else "exact"
    meta = {
        "task": "trace-many", "model": lm.name, "dataset": dataset.name,
        "dataset_version": dataset.version, "kinds": list(kinds), "samples": samples,
        "window": window, "noise_std": std, "seed": seed, "method": method, "command": command,
    }  # fmt: skip
    work = TraceWork(lm, dataset, kinds=kinds, samples=samples, window=window, noise_std=std,
                     seed=seed, approx=approx)  # fmt: skip
    records = run_sweep(
        run_dir, list(facts), work, meta=meta, backend=backend, address=address, force=force,
        desc="facts", progress=progress,
    )  # fmt: skip
    result = average_trace(
        records, model=lm.name, dataset=dataset.name, kinds=kinds, window=window,
        samples=samples, noise_std=std, method=method,
    )  # fmt: skip
    return result, records
