"""Datasets of facts: one relation, many subjects, one JSONL file each.

A fact is a (subject, relation, answer) triple asked as a prompt the model completes:
"Michael Jordan plays the sport of" -> " basketball". A dataset holds one relation and its
records; every record also carries what the editing tools need (CounterFact-style):
paraphrases (the same question in other words, to test that an edit generalises),
neighbourhood prompts (other subjects with the same answer, to test that it stays local)
and a counterfactual answer (what to rewrite the fact to).

File format (`src/factscope/study/data/<name>.jsonl`, UTF-8, one JSON object a line):

    {"dataset": "athlete_sport", "version": "1", "relation": {...}, "answer_tokens": {...}}
    {"id": "athlete_sport/00000", "relation": "athlete_sport", "subject": ..., ...}
    ...

The first line is the header: the relation (template, few-shot prefix, answer set, ...)
and, per model, how many tokens " " + each answer has (`answer_tokens`; an answer of more
than one token is scored by its first token only, so tools mark or skip those facts).
Every later line is one `FactRecord`. `load_dataset` checks every line and stops at the
first bad one with a one-line `FactscopeError` naming the file, the line and the reason;
`dataset_lines` writes them. Making a dataset from facts, and counting its answers' tokens
for the header, is authoring.py's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from factscope.errors import FactscopeError
from factscope.tokenizer import Tokenizer

FORMAT_VERSION = "1"  # the file format; each dataset also has its own content version
MIN_PARAPHRASES = 2
MIN_NEIGHBOURHOOD = 2

_RELATION_FIELDS = {
    "name": str,
    "description": str,
    "template": str,
    "few_shot": str,
    "answers": list,
    "paraphrase_templates": list,
    "kl_prompt": str,
}
_HEADER_FIELDS = {"dataset", "version", "relation", "answer_tokens", "notes"}
_RECORD_FIELDS = {
    "id": str,
    "relation": str,
    "subject": str,
    "answer": str,
    "prompt": str,
    "paraphrases": list,
    "neighbourhood": list,
    "counterfactual": str,
    "source": str,
}


class InvalidDataset(FactscopeError):
    """A dataset file or record that breaks the format; `line` is 1-based (0: not known)."""

    def __init__(self, reason: str, line: int = 0, where: str = "") -> None:
        self.reason, self.line, self.where = reason, line, where
        prefix = f"{where} line {line}: " if line else (f"{where}: " if where else "")
        super().__init__(f"{prefix}{reason}")


@dataclass(frozen=True)
class Relation:
    """What a dataset asks: the prompt template and the answers it allows."""

    name: str  # "athlete_sport"
    description: str
    template: str  # "{} plays the sport of"  ({} = subject; the answer follows after a space)
    few_shot: str  # "Fact: Tiger Woods plays the sport of golf\nFact: " -- prefix for `know`
    answers: tuple[str, ...]  # the answer set as typed, no leading space
    paraphrase_templates: tuple[str, ...]  # other ways to ask, each with one {}
    kl_prompt: str = "{} is a"  # ROME's essence prompt

    def prompt(self, subject: str) -> str:
        """The relation's question about `subject`: "Michael Jordan plays the sport of"."""
        return self.template.replace("{}", subject)

    def with_few_shot(self, prompt: str) -> str:
        """`prompt` after the relation's worked example, as `know` asks it."""
        return self.few_shot + prompt


@dataclass(frozen=True)
class FactRecord:
    """One fact, with the prompts that test an edit of it."""

    id: str  # "athlete_sport/00042", unique in its dataset
    relation: str
    subject: str  # "Michael Jordan"
    answer: str  # "basketball" (no leading space; tools add the tokenizer's space)
    prompt: str  # "Michael Jordan plays the sport of" (the subject occurs in it)
    paraphrases: tuple[str, ...]  # the same question in other words, subject included
    neighbourhood: tuple[str, ...]  # the question about OTHER subjects with the same answer
    counterfactual: str  # another answer from the relation's set, the target of an edit
    source: str  # provenance
    # prompts GE samples from (CounterFact's generation_prompts); empty: edit/evaluate.py's own
    generation: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    """A relation and its facts, as loaded from one JSONL file."""

    name: str
    version: str
    relation: Relation
    records: tuple[FactRecord, ...]
    # model name -> answer -> number of tokens of " " + answer for that model's tokenizer
    answer_tokens: Mapping[str, Mapping[str, int]] = field(default_factory=dict, hash=False)
    notes: str = ""

    def __len__(self) -> int:
        return len(self.records)

    def by_answer(self) -> dict[str, list[FactRecord]]:
        """Records grouped by answer, in the relation's answer order."""
        groups: dict[str, list[FactRecord]] = {a: [] for a in self.relation.answers}
        for record in self.records:
            groups[record.answer].append(record)
        return groups

    def single_token(self, model: str, answer: str) -> bool | None:
        """Whether " " + `answer` is one token for `model`, as the file marks it (None: the
        file says nothing about that model; use `answer_token_ids` with its tokenizer)."""
        counts = self.answer_tokens.get(model)
        return None if counts is None else counts[answer] == 1


# ---- answers as tokens ------------------------------------------------------------------


def answer_token_ids(tokenizer: Tokenizer, answer: str) -> list[int]:
    """The ids of " " + `answer` as it continues a prompt (no BOS)."""
    return tokenizer.encode(" " + answer, add_bos=False)


# ---- finding and loading ---------------------------------------------------------------


def _data_dir() -> Path:
    return Path(str(resources.files("factscope.study") / "data"))


def list_datasets() -> list[str]:
    """Names of the datasets that ship with factscope."""
    return sorted(p.stem for p in _data_dir().glob("*.jsonl"))


def dataset_path(name_or_path: str | Path) -> Path:
    """The file a dataset name (packaged) or path names."""
    text = str(name_or_path)
    if text in list_datasets():
        return _data_dir() / f"{text}.jsonl"
    path = Path(text)
    if path.suffix in (".jsonl", ".json") or path.exists():
        if not path.is_file():
            raise FactscopeError(
                f"dataset file {path} does not exist; give a .jsonl file (or CounterFact's .json)"
            )
        return path
    known = ", ".join(list_datasets()) or "none"
    raise FactscopeError(f"unknown dataset {text!r}; known: {known} (or give a .jsonl path)")


def load_dataset(name_or_path: str | Path) -> Dataset:
    """Read and check a dataset; raise `InvalidDataset` naming the first bad line."""
    path = dataset_path(name_or_path)
    where = path.name if path.parent == _data_dir() else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InvalidDataset(f"not UTF-8 text ({e.reason} at byte {e.start})", 0, where) from None
    return parse_dataset(text.splitlines(), where)


def parse_dataset(lines: Sequence[str], where: str = "<dataset>") -> Dataset:
    """Build a dataset from its JSONL lines (header first), checking each line."""
    if not lines or not lines[0].strip():
        raise InvalidDataset("the file is empty; the first line must be the header", 1, where)
    header = _json_object(lines[0], 1, where)
    try:
        name, version, relation, answer_tokens, notes = _parse_header(header)
    except InvalidDataset as e:
        raise InvalidDataset(e.reason, 1, where) from None

    records: list[FactRecord] = []
    line_of_id: dict[str, int] = {}
    line_of_subject: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise InvalidDataset("blank line; remove it (one record a line)", number, where)
        data = _json_object(line, number, where)
        try:
            record = validate_record(data, relation)
        except InvalidDataset as e:
            raise InvalidDataset(e.reason, number, where) from None
        if record.id in line_of_id:
            raise InvalidDataset(
                f"duplicate id {record.id!r} (first on line {line_of_id[record.id]})", number, where
            )
        key = subject_key(record.subject)
        if key in line_of_subject:
            raise InvalidDataset(
                f"duplicate subject {record.subject!r} (first on line {line_of_subject[key]})",
                number,
                where,
            )
        line_of_id[record.id], line_of_subject[key] = number, number
        records.append(record)
    if not records:
        raise InvalidDataset("the dataset has a header but no records", len(lines), where)
    _check_neighbourhoods(records, where)
    return Dataset(name, version, relation, tuple(records), answer_tokens, notes)


def subject_key(subject: str) -> str:
    """What makes two subjects the same for duplicate checks: case and spacing ignored."""
    return " ".join(subject.split()).casefold()


def _json_object(line: str, number: int, where: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidDataset(f"bad JSON ({e.msg} at column {e.colno})", number, where) from None
    if not isinstance(data, dict):
        raise InvalidDataset(f"expected a JSON object, got {type(data).__name__}", number, where)
    return data


def _parse_header(
    header: Mapping[str, Any],
) -> tuple[str, str, Relation, dict[str, dict[str, int]], str]:
    missing = {"dataset", "version", "relation"} - header.keys()
    if missing:
        raise InvalidDataset(f"header misses {sorted(missing)}; is the first line the header?")
    unknown = header.keys() - _HEADER_FIELDS
    if unknown:
        raise InvalidDataset(f"header has unknown fields {sorted(unknown)}")
    name, version = header["dataset"], header["version"]
    if not isinstance(name, str) or not name:
        raise InvalidDataset("header 'dataset' must be a non-empty string")
    if not isinstance(version, str) or not version:
        raise InvalidDataset("header 'version' must be a non-empty string such as \"1\"")
    relation = _parse_relation(header["relation"])
    answer_tokens = _parse_answer_tokens(header.get("answer_tokens", {}), relation.answers)
    notes = header.get("notes", "")
    if not isinstance(notes, str):
        raise InvalidDataset("header 'notes' must be a string")
    return name, version, relation, answer_tokens, notes


def _parse_relation(data: Any) -> Relation:
    if not isinstance(data, dict):
        raise InvalidDataset("header 'relation' must be a JSON object")
    _check_fields(data, _RELATION_FIELDS, "relation", optional=frozenset({"kl_prompt"}))
    answers = _strings(data["answers"], "relation 'answers'")
    paraphrase_templates = _strings(data["paraphrase_templates"], "relation 'paraphrase_templates'")
    if not answers:
        raise InvalidDataset("relation 'answers' is empty; list the answers the relation allows")
    if len(set(answers)) != len(answers):
        raise InvalidDataset("relation 'answers' lists an answer twice")
    for answer in answers:
        if not answer or answer != answer.strip():
            raise InvalidDataset(f"answer {answer!r} must be non-empty with no outer spaces")
    relation = Relation(
        name=data["name"],
        description=data["description"],
        template=data["template"],
        few_shot=data["few_shot"],
        answers=tuple(answers),
        paraphrase_templates=tuple(paraphrase_templates),
        kl_prompt=data.get("kl_prompt", "{} is a"),
    )
    if not relation.name:
        raise InvalidDataset("relation 'name' is empty")
    for label, template in [
        ("template", relation.template),
        ("kl_prompt", relation.kl_prompt),
        *(("paraphrase template", t) for t in relation.paraphrase_templates),
    ]:
        if template.count("{}") != 1:
            raise InvalidDataset(f"relation {label} {template!r} must contain {{}} exactly once")
    if "{}" in relation.few_shot:
        raise InvalidDataset("relation 'few_shot' must not contain {}; it is a fixed prefix")
    return relation


def _parse_answer_tokens(data: Any, answers: Sequence[str]) -> dict[str, dict[str, int]]:
    if not isinstance(data, dict):
        raise InvalidDataset("header 'answer_tokens' must map model name -> answer -> count")
    parsed: dict[str, dict[str, int]] = {}
    for model, counts in data.items():
        if not isinstance(counts, dict) or set(counts) != set(answers):
            raise InvalidDataset(
                f"answer_tokens[{model!r}] must give a token count for every answer, no others"
            )
        for answer, n in counts.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise InvalidDataset(f"answer_tokens[{model!r}][{answer!r}] must be an int >= 1")
        parsed[model] = {a: counts[a] for a in answers}
    return parsed


def _check_fields(
    data: Mapping[str, Any],
    fields: Mapping[str, type],
    what: str,
    optional: frozenset[str] = frozenset(),
) -> None:
    missing = [f for f in fields if f not in data and f not in optional]
    if missing:
        raise InvalidDataset(f"{what} misses field {missing[0]!r}")
    unknown = sorted(data.keys() - fields.keys())
    if unknown:
        raise InvalidDataset(f"{what} has unknown field {unknown[0]!r}")
    for name, kind in fields.items():
        if name in data and not isinstance(data[name], kind):
            raise InvalidDataset(
                f"{what} field {name!r} must be a {'list' if kind is list else 'string'}"
            )


def _strings(value: list[Any], what: str) -> list[str]:
    if not all(isinstance(v, str) for v in value):
        raise InvalidDataset(f"{what} must be a list of strings")
    return list(value)


def validate_record(data: Mapping[str, Any], relation: Relation) -> FactRecord:
    """Check one record against its relation and build it; `InvalidDataset` says why not.

    Checks: every field present with the right type and no unknown ones; the id names the
    relation; the subject occurs in the prompt and in every paraphrase; the answer and the
    counterfactual are in the relation's answer set and differ; at least two paraphrases and
    two neighbourhood prompts, none about the record's own subject; no prompt ends in
    whitespace (the answer's token brings its own space).
    """
    _check_fields(data, _RECORD_FIELDS, "record")
    record = FactRecord(
        id=data["id"],
        relation=data["relation"],
        subject=data["subject"],
        answer=data["answer"],
        prompt=data["prompt"],
        paraphrases=tuple(_strings(data["paraphrases"], "'paraphrases'")),
        neighbourhood=tuple(_strings(data["neighbourhood"], "'neighbourhood'")),
        counterfactual=data["counterfactual"],
        source=data["source"],
    )
    if record.relation != relation.name:
        raise InvalidDataset(
            f"relation {record.relation!r} is not the dataset's relation {relation.name!r}"
        )
    if not record.id.startswith(relation.name + "/") or record.id == relation.name + "/":
        raise InvalidDataset(f"id {record.id!r} must look like '{relation.name}/00042'")
    subject = record.subject
    if not subject or subject != subject.strip() or "\n" in subject:
        raise InvalidDataset(f"subject {subject!r} must be non-empty, one line, no outer spaces")
    if record.answer not in relation.answers:
        raise InvalidDataset(f"answer {record.answer!r} is not in the relation's answer set")
    if record.counterfactual not in relation.answers:
        raise InvalidDataset(
            f"counterfactual {record.counterfactual!r} is not in the relation's answer set"
        )
    if record.counterfactual == record.answer:
        raise InvalidDataset(f"counterfactual equals the answer {record.answer!r}; pick another")
    if not record.source.strip():
        raise InvalidDataset("source is empty; say where the fact comes from")
    _check_prompt(record.prompt, "prompt", subject)
    if len(record.paraphrases) < MIN_PARAPHRASES:
        raise InvalidDataset(f"needs at least {MIN_PARAPHRASES} paraphrases")
    for i, text in enumerate(record.paraphrases):
        _check_prompt(text, f"paraphrase {i}", subject)
        if text == record.prompt or text in record.paraphrases[:i]:
            raise InvalidDataset(f"paraphrase {i} repeats the prompt or another paraphrase")
    if len(record.neighbourhood) < MIN_NEIGHBOURHOOD:
        raise InvalidDataset(f"needs at least {MIN_NEIGHBOURHOOD} neighbourhood prompts")
    for i, text in enumerate(record.neighbourhood):
        _check_prompt(text, f"neighbourhood prompt {i}", None)
        if subject in text:
            raise InvalidDataset(
                f"neighbourhood prompt {i} {text!r} is about the record's own subject; "
                "neighbours must be other subjects"
            )
        if text in record.neighbourhood[:i]:
            raise InvalidDataset(f"neighbourhood prompt {i} repeats another")
    return record


def _check_prompt(text: str, what: str, subject: str | None) -> None:
    if not text.strip():
        raise InvalidDataset(f"{what} is empty")
    if text != text.rstrip():
        raise InvalidDataset(f"{what} {text!r} ends in whitespace; the answer brings its space")
    if "{}" in text:
        raise InvalidDataset(f"{what} {text!r} still contains {{}}; fill in the subject")
    if subject is not None and subject not in text:
        raise InvalidDataset(f"subject {subject!r} does not occur in {what} {text!r}")


def _check_neighbourhoods(records: Sequence[FactRecord], where: str) -> None:
    """A neighbourhood prompt that is another record's prompt must share the answer."""
    answer_of_prompt = {r.prompt: r.answer for r in records}
    for number, record in enumerate(records, start=2):
        for text in record.neighbourhood:
            other = answer_of_prompt.get(text)
            if other is not None and other != record.answer:
                raise InvalidDataset(
                    f"neighbourhood prompt {text!r} has answer {other!r}, not {record.answer!r}; "
                    "neighbours must share the answer",
                    number,
                    where,
                )


# ---- writing ----------------------------------------------------------------------------


def dataset_lines(dataset: Dataset) -> list[str]:
    """The JSONL lines of a dataset (header first), as `load_dataset` reads them."""
    relation = dataset.relation
    header: dict[str, Any] = {
        "dataset": dataset.name,
        "version": dataset.version,
        "relation": {
            "name": relation.name,
            "description": relation.description,
            "template": relation.template,
            "few_shot": relation.few_shot,
            "answers": list(relation.answers),
            "paraphrase_templates": list(relation.paraphrase_templates),
            "kl_prompt": relation.kl_prompt,
        },
    }
    if dataset.answer_tokens:
        header["answer_tokens"] = {m: dict(c) for m, c in dataset.answer_tokens.items()}
    if dataset.notes:
        header["notes"] = dataset.notes
    lines = [json.dumps(header, ensure_ascii=False)]
    for r in dataset.records:
        record = {
            "id": r.id,
            "relation": r.relation,
            "subject": r.subject,
            "answer": r.answer,
            "prompt": r.prompt,
            "paraphrases": list(r.paraphrases),
            "neighbourhood": list(r.neighbourhood),
            "counterfactual": r.counterfactual,
            "source": r.source,
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    return lines
