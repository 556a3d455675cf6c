"""A tiny model and a tiny dataset for the study tests (know, probe, trace-many): seconds."""

from __future__ import annotations

import random
from pathlib import Path

from factscope.load import LoadedModel, load_model
from factscope.study.authoring import Fact, make_records
from factscope.study.datasets import Dataset, Relation, dataset_lines
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf

# answers: three are single tokens of the tiny vocabulary (" of", " the", " sport"), "golf"
# is spelled letter by letter
RELATION = Relation(
    name="toy_sport",
    description="a made-up relation over made-up names",
    template="{} plays the sport of",
    few_shot="Fact: Michael Jordan plays the sport of the\nFact: ",
    answers=("of", "the", "sport", "golf"),
    paraphrase_templates=("{} plays", "the sport of {} is", "{} plays the"),
)


def tiny_lm(folder: Path, seed: int = 3) -> LoadedModel:
    """The tiny Gemma-like GGUF model (3 layers, d_model 64), written to `folder`."""
    path = folder / "tiny.gguf"
    if not path.exists():
        write_tiny_gguf(path, tiny_hf_for_gguf("gemma3", seed=seed))
    return load_model(path)


def tiny_dataset(n: int = 24, seed: int = 0) -> Dataset:
    """`n` facts about made-up two-word names, answers spread over the relation's set."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    subjects: list[str] = []
    while len(subjects) < n:
        name = " ".join(
            rng.choice("MJTS") + "".join(rng.choices(letters, k=rng.randint(2, 6)))
            for _ in range(2)
        )
        if name not in subjects:
            subjects.append(name)
    facts = [
        Fact(s, RELATION.answers[i % len(RELATION.answers)], "tests/study_tiny.py")
        for i, s in enumerate(subjects)
    ]
    records = make_records(RELATION, facts, prefixes=("Fact: a sport.",), seed=seed)
    return Dataset("toy_sport", "1", RELATION, records)


def write_tiny_dataset(path: Path, dataset: Dataset) -> Path:
    path.write_text("\n".join(dataset_lines(dataset)) + "\n", encoding="utf-8")
    return path
