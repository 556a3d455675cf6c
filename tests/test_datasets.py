"""Packaged fact datasets: every record valid, bad files refused by line, exact round trips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from factscope.errors import FactscopeError
from factscope.registry import MODELS
from factscope.study.authoring import UNRELATED_PREFIXES, Fact, make_records, write_dataset
from factscope.study.datasets import (
    InvalidDataset,
    Relation,
    dataset_lines,
    dataset_path,
    list_datasets,
    load_dataset,
    parse_dataset,
    subject_key,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS = ("gemma-3-270m", "smollm2-135m")
DATASETS = list_datasets()


def test_the_promised_datasets_ship() -> None:
    assert "athlete_sport" in DATASETS
    general = [name for name in DATASETS if name != "athlete_sport"]
    assert len(general) >= 3, f"need 3+ general-knowledge relations, have {general}"
    for name in general:
        assert len(load_dataset(name)) >= 100, name


@pytest.mark.parametrize("name", DATASETS)
def test_every_packaged_record_is_valid(name: str) -> None:
    """The loader already refuses any of these; assert them again here, independently."""
    dataset = load_dataset(name)
    relation = dataset.relation
    assert dataset.name == relation.name == name
    assert dataset.version.isdigit()
    assert [r.id for r in dataset.records] == [f"{name}/{i:05d}" for i in range(len(dataset))]
    keys = [subject_key(r.subject) for r in dataset.records]
    assert len(set(keys)) == len(keys), "duplicate subjects"
    answer_of_prompt = {r.prompt: r.answer for r in dataset.records}
    for r in dataset.records:
        assert r.relation == name
        assert r.subject in r.prompt and r.prompt == relation.prompt(r.subject)
        assert all(r.subject in p for p in r.paraphrases) and len(r.paraphrases) >= 2
        assert r.answer in relation.answers
        assert r.counterfactual in relation.answers and r.counterfactual != r.answer
        assert len(r.neighbourhood) >= 2
        for text in r.neighbourhood:  # another subject, asked the same way, same answer
            assert r.subject not in text
            assert answer_of_prompt[text] == r.answer
        assert r.source
    # the relation's worked example is not itself one of the facts
    assert not any(r.subject in relation.few_shot for r in dataset.records)
    # every answer has at least 3 subjects (so each record has 2+ neighbours)
    assert min(len(group) for group in dataset.by_answer().values()) >= 3


@pytest.mark.parametrize("name", DATASETS)
def test_answers_are_marked_per_shipped_model(name: str) -> None:
    dataset = load_dataset(name)
    assert set(dataset.answer_tokens) == set(SHIPPED_MODELS)
    for model in SHIPPED_MODELS:
        for answer in dataset.relation.answers:
            assert dataset.single_token(model, answer) is (
                dataset.answer_tokens[model][answer] == 1
            )
    assert dataset.single_token("some-other-model", dataset.relation.answers[0]) is None


@pytest.mark.realmodel
@pytest.mark.parametrize("model", SHIPPED_MODELS)
def test_answer_marks_match_the_real_tokenizers(model: str) -> None:
    if MODELS[model].installed_path() is None:
        pytest.skip(f"{model} is not installed")
    from factscope.load import load_model
    from factscope.study.authoring import count_answer_tokens

    tokenizer = load_model(model).tokenizer
    for name in DATASETS:
        dataset = load_dataset(name)
        assert dict(dataset.answer_tokens[model]) == count_answer_tokens(
            tokenizer, dataset.relation.answers
        ), name


@pytest.mark.parametrize("name", DATASETS)
def test_round_trip_is_exact(name: str, tmp_path: Path) -> None:
    path = dataset_path(name)
    dataset = load_dataset(name)
    assert parse_dataset(dataset_lines(dataset)) == dataset
    copy = tmp_path / f"{name}.jsonl"
    write_dataset(dataset, copy)
    assert load_dataset(str(copy)) == dataset
    assert copy.read_bytes() == path.read_bytes(), "the packaged file is not in canonical form"


# ---- corrupted files: one line, naming the line and the reason -------------------------

RELATION = Relation(
    name="toy",
    description="a toy relation",
    template="{} is in",
    few_shot="Fact: the Eiffel Tower is in Paris\nFact: ",
    answers=("Rome", "Oslo"),
    paraphrase_templates=("{} can be found in", "{} lies in"),
)
TOY_FACTS = [
    Fact(subject, answer, "test")
    for subject, answer in [
        ("the Colosseum", "Rome"),
        ("the Pantheon", "Rome"),
        ("the Trevi Fountain", "Rome"),
        ("the Opera House", "Oslo"),
        ("the Munch Museum", "Oslo"),
        ("the Royal Palace", "Oslo"),
    ]
]


def toy_lines() -> list[str]:
    records = make_records(RELATION, TOY_FACTS, UNRELATED_PREFIXES, seed=1)
    from factscope.study.datasets import Dataset

    return dataset_lines(Dataset("toy", "1", RELATION, records))


def edit_record(line_number: int, change: Any) -> list[str]:
    """The toy file with the JSON object on `line_number` (1-based) changed by `change`."""
    lines = toy_lines()
    data = json.loads(lines[line_number - 1])
    change(data)
    lines[line_number - 1] = json.dumps(data)
    return lines


def _set(**fields: Any) -> Any:
    return lambda data: data.update(fields)


def _drop(field: str) -> Any:
    return lambda data: data.pop(field)


def _replace_line(lines: list[str], number: int, text: str) -> list[str]:
    lines[number - 1] = text
    return lines


CORRUPTIONS: list[tuple[str, Any, int, str]] = [
    # (case, lines of the bad file, line named, words of the reason)
    ("bad JSON", lambda: _replace_line(toy_lines(), 3, '{"id": "toy/00001",'), 3, "bad JSON"),
    ("not an object", lambda: _replace_line(toy_lines(), 4, "[1, 2]"), 4, "JSON object"),
    ("blank line", lambda: _replace_line(toy_lines(), 5, ""), 5, "blank line"),
    ("missing field", lambda: edit_record(2, _drop("answer")), 2, "misses field 'answer'"),
    ("unknown field", lambda: edit_record(6, _set(answr="Rome")), 6, "unknown field 'answr'"),
    ("wrong type", lambda: edit_record(3, _set(paraphrases="x")), 3, "must be a list"),
    (
        "subject not in prompt",
        lambda: edit_record(4, _set(prompt="Something else is in")),
        4,
        "does not occur in prompt",
    ),
    (
        "subject not in a paraphrase",
        lambda: edit_record(4, _set(paraphrases=["the Trevi Fountain lies in", "It is in"])),
        4,
        "does not occur in paraphrase 1",
    ),
    ("duplicate id", lambda: edit_record(3, _set(id="toy/00000")), 3, "duplicate id 'toy/00000'"),
    (
        "duplicate subject",
        lambda: edit_record(
            3,
            _set(
                subject="The Colosseum",
                prompt="The Colosseum is in",
                paraphrases=["The Colosseum can be found in", "The Colosseum lies in"],
            ),
        ),
        3,
        "duplicate subject 'The Colosseum' (first on line 2)",
    ),
    (
        "counterfactual equals answer",
        lambda: edit_record(2, _set(counterfactual="Rome")),
        2,
        "counterfactual equals the answer",
    ),
    (
        "counterfactual outside the answer set",
        lambda: edit_record(2, _set(counterfactual="Paris")),
        2,
        "counterfactual 'Paris' is not in the relation's answer set",
    ),
    (
        "answer outside the answer set",
        lambda: edit_record(5, _set(answer="Bergen")),
        5,
        "answer 'Bergen' is not in the relation's answer set",
    ),
    (
        "neighbourhood about the own subject",
        lambda: edit_record(2, _set(neighbourhood=["the Colosseum is in", "the Pantheon is in"])),
        2,
        "own subject",
    ),
    (
        "neighbour with another answer",
        lambda: edit_record(2, _set(neighbourhood=["the Pantheon is in", "the Opera House is in"])),
        2,
        "has answer 'Oslo', not 'Rome'",
    ),
    (
        "too few neighbours",
        lambda: edit_record(2, _set(neighbourhood=["x is in"])),
        2,
        "at least 2",
    ),
    (
        "prompt ending in a space",
        lambda: edit_record(2, _set(prompt="the Colosseum is in ")),
        2,
        "ends in whitespace",
    ),
    ("wrong relation", lambda: edit_record(7, _set(relation="other")), 7, "not the dataset's"),
    (
        "header missing",
        lambda: toy_lines()[1:],
        1,
        "header misses",
    ),
    (
        "header template without {}",
        lambda: edit_record(1, lambda d: d["relation"].update(template="is in")),
        1,
        "exactly once",
    ),
    (
        "answer token counts incomplete",
        lambda: edit_record(1, _set(answer_tokens={"m": {"Rome": 1}})),
        1,
        "every answer",
    ),
    ("header only", lambda: toy_lines()[:1], 1, "no records"),
]


@pytest.mark.parametrize(
    ("lines", "line", "reason"),
    [pytest.param(lines, line, reason, id=case) for case, lines, line, reason in CORRUPTIONS],
)
def test_a_corrupted_file_is_refused_naming_the_line(
    lines: Any, line: int, reason: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines()) + "\n", encoding="utf-8")
    with pytest.raises(InvalidDataset) as caught:
        load_dataset(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path} line {line}: "), message
    assert reason in message
    assert "\n" not in message
    assert caught.value.line == line


def test_the_toy_file_itself_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "toy.jsonl"
    path.write_text("\n".join(toy_lines()) + "\n", encoding="utf-8")
    dataset = load_dataset(str(path))
    assert [r.subject for r in dataset.records] == [f.subject for f in TOY_FACTS]


def test_not_utf8_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes("\n".join(toy_lines()).encode("utf-8") + b"\xff\n")
    with pytest.raises(InvalidDataset, match="not UTF-8"):
        load_dataset(str(path))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InvalidDataset, match="line 1: the file is empty"):
        load_dataset(str(empty))


def test_unknown_names_and_missing_files() -> None:
    with pytest.raises(FactscopeError, match=r"unknown dataset 'athletes'; known: .*athlete_sport"):
        load_dataset("athletes")
    with pytest.raises(FactscopeError, match="does not exist"):
        load_dataset("no/such/file.jsonl")


# ---- building ---------------------------------------------------------------------------


def test_make_records_is_seeded_and_per_subject() -> None:
    """Same seed, same records; a fact's paraphrases and counterfactual do not depend on
    which other facts are in the set; another seed changes the choices."""
    first = make_records(RELATION, TOY_FACTS, UNRELATED_PREFIXES, seed=1)
    assert make_records(RELATION, TOY_FACTS, UNRELATED_PREFIXES, seed=1) == first
    more = [*TOY_FACTS, Fact("the Forum", "Rome", "test")]
    extended = make_records(RELATION, more, UNRELATED_PREFIXES, seed=1)
    for a, b in zip(first, extended, strict=False):
        assert (a.paraphrases, a.counterfactual) == (b.paraphrases, b.counterfactual)
    reseeded = [make_records(RELATION, TOY_FACTS, UNRELATED_PREFIXES, seed=s) for s in range(2, 6)]
    assert any(r != first for r in reseeded)
    for record in first:
        assert record.paraphrases[1].split(". ")[0] + "." in UNRELATED_PREFIXES


def test_make_records_needs_two_neighbours() -> None:
    with pytest.raises(FactscopeError, match="fewer than 3 subjects"):
        make_records(RELATION, TOY_FACTS[:5], UNRELATED_PREFIXES)


# ---- the athletes build is reproducible ---------------------------------------------------


@pytest.mark.realmodel
def test_build_athletes_reproduces_the_packaged_file(tmp_path: Path) -> None:
    raw = ROOT.parent / "shared" / "data" / "athletes"
    if not raw.is_dir():
        pytest.skip("the raw athlete lists are not next to this checkout")
    if any(MODELS[m].installed_path() is None for m in SHIPPED_MODELS):
        pytest.skip("both shipped models are needed for the answer token counts")
    out = tmp_path / "athlete_sport.jsonl"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_athletes.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == dataset_path("athlete_sport").read_bytes()
