"""Making a dataset of facts: records with seeded paraphrases, neighbours and
counterfactuals, the header's per-model answer token counts, written after a round trip
through the reader (datasets.py).

The packaged datasets are authored by scripts/ (build_athletes.py, build_general_facts.py);
the library itself only reads them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from factscope.errors import FactscopeError
from factscope.study.datasets import (
    MIN_NEIGHBOURHOOD,
    MIN_PARAPHRASES,
    Dataset,
    FactRecord,
    Relation,
    answer_token_ids,
    dataset_lines,
    parse_dataset,
)
from factscope.tokenizer import Tokenizer

# Short sentences with nothing to do with any fact, put before a paraphrase the way
# CounterFact's paraphrase prompts start with unrelated generated text.
UNRELATED_PREFIXES = (
    "The weather was mild that week.",
    "Tickets went on sale on Monday morning.",
    "The library closes early on Fridays.",
    "She bought a new bicycle last spring.",
    "The meeting was moved to the afternoon.",
    "Rain is expected later tonight.",
    "The bridge reopened after repairs.",
    "He finished the crossword before breakfast.",
    "The train was ten minutes late.",
    "A new bakery opened on the corner.",
    "The garden needs watering again.",
    "Prices rose slightly over the summer.",
    "The museum added a new wing.",
    "Our neighbours adopted a puppy.",
    "The report was published yesterday.",
    "Snow fell overnight in the hills.",
)


@dataclass(frozen=True)
class Fact:
    """A fact before it becomes a record: who, what, and where we have it from."""

    subject: str
    answer: str
    source: str


def make_records(
    relation: Relation,
    facts: Sequence[Fact],
    prefixes: Sequence[str],
    seed: int = 0,
    n_neighbours: int = 3,
) -> tuple[FactRecord, ...]:
    """Records for `facts`, with seeded paraphrases, neighbours and counterfactuals.

    Per fact, a generator seeded by (seed, relation, subject) picks -- so a fact's
    paraphrases and counterfactual do not change when other facts are added or removed:
    - two paraphrase templates; the second follows a short unrelated sentence from
      `prefixes` (CounterFact's paraphrase prompts are a distracting prefix + a rewording);
    - `n_neighbours` other subjects with the same answer (at least two must exist), asked
      with the relation's template;
    - a counterfactual answer from the relation's answer set, never the true one.
    Ids number the facts in the order given.
    """
    if len(relation.paraphrase_templates) < MIN_PARAPHRASES:
        raise FactscopeError(f"relation {relation.name} needs at least 2 paraphrase templates")
    subjects_of: dict[str, list[str]] = {a: [] for a in relation.answers}
    for fact in facts:
        subjects_of[fact.answer].append(fact.subject)
    records = []
    for index, fact in enumerate(facts):
        rng = random.Random(f"{seed}/{relation.name}/{fact.subject}")
        first, second = rng.sample(relation.paraphrase_templates, 2)
        prefix = rng.choice(list(prefixes))
        others = [s for s in subjects_of[fact.answer] if fact.subject not in relation.prompt(s)]
        if len(others) < MIN_NEIGHBOURHOOD:
            raise FactscopeError(
                f"answer {fact.answer!r} has fewer than {MIN_NEIGHBOURHOOD + 1} subjects; "
                "add facts with that answer or drop it"
            )
        neighbours = rng.sample(others, min(n_neighbours, len(others)))
        wrong = [a for a in relation.answers if a != fact.answer]
        records.append(
            FactRecord(
                id=f"{relation.name}/{index:05d}",
                relation=relation.name,
                subject=fact.subject,
                answer=fact.answer,
                prompt=relation.prompt(fact.subject),
                paraphrases=(
                    first.replace("{}", fact.subject),
                    prefix + " " + second.replace("{}", fact.subject),
                ),
                neighbourhood=tuple(relation.prompt(s) for s in neighbours),
                counterfactual=rng.choice(wrong),
                source=fact.source,
            )
        )
    return tuple(records)


def count_answer_tokens(tokenizer: Tokenizer, answers: Sequence[str]) -> dict[str, int]:
    """answer -> number of tokens of " " + answer for `tokenizer` (a header's
    `answer_tokens` entry); 1 means the answer is scored exactly."""
    return {answer: len(answer_token_ids(tokenizer, answer)) for answer in answers}


def write_dataset(dataset: Dataset, path: Path) -> None:
    """Write `dataset` as JSONL after checking that it reads back identically."""
    lines = dataset_lines(dataset)
    if parse_dataset(lines, str(path)) != dataset:
        raise FactscopeError(f"dataset {dataset.name} does not survive a round trip; not written")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


__all__ = ["UNRELATED_PREFIXES", "Fact", "count_answer_tokens", "make_records", "write_dataset"]
