"""CounterFact as published: ROME's `counterfact.json` read as a factscope dataset.

Meng et al.'s file is one JSON array; each case is

    {"case_id": 0,
     "requested_rewrite": {"prompt": "The mother tongue of {} is", "subject": "Danielle Darrieux",
                           "target_new": {"str": "English"}, "target_true": {"str": "French"}},
     "paraphrase_prompts": [...], "neighborhood_prompts": [...], "generation_prompts": [...]}

(`relation_id` goes into the record's source; other keys, such as `attribute_prompts`, are
not read). A case becomes a
`FactRecord` with answer = target_true, counterfactual = target_new, the paraphrase and
neighbourhood prompts as they are, and the generation prompts for GE. The cases span many
relations, so the dataset's relation is a container ("counterfact") whose answer set is
every target; it has no single template and no few-shot prefix, and `edit-eval` edits
every case, as the papers do, with each case's own neighbourhood prompts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factscope.study.datasets import Dataset, FactRecord, InvalidDataset, Relation

NAME = "counterfact"


def is_counterfact(path: Path) -> bool:
    """Whether `path` looks like ROME's file: a .json whose text starts with an array."""
    if path.suffix != ".json" or not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(64).lstrip()
    return head.startswith(b"[")


def load_edit_dataset(name_or_path: str) -> Dataset:
    """What `edit-eval --dataset` reads: ROME's counterfact.json, or a factscope dataset."""
    from factscope.study.datasets import load_dataset

    path = Path(name_or_path)
    return load_counterfact(path) if is_counterfact(path) else load_dataset(name_or_path)


def load_counterfact(path: Path) -> Dataset:
    """Read a CounterFact-shaped file; `InvalidDataset` names the first bad case and why."""
    where = str(path)
    try:
        cases = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidDataset(f"not a JSON array of CounterFact cases ({e})", 0, where) from None
    if not isinstance(cases, list) or not cases:
        raise InvalidDataset("expected a non-empty JSON array of CounterFact cases", 0, where)
    records = [_record(case, i, where) for i, case in enumerate(cases)]
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidDataset(f"case_id {dup.split('/')[1]} occurs more than once", 0, where)
    answers = sorted({a for r in records for a in (r.answer, r.counterfactual)})
    relation = Relation(
        name=NAME,
        description="CounterFact (Meng et al. 2022): cases of many relations",
        template="{}",
        few_shot="",
        answers=tuple(answers),
        paraphrase_templates=(),
    )
    return Dataset(path.stem, "counterfact", relation, tuple(records))


def _record(case: Any, index: int, where: str) -> FactRecord:
    def bad(reason: str) -> InvalidDataset:
        return InvalidDataset(f"case {index}: {reason}", 0, where)

    if not isinstance(case, dict):
        raise bad("is not a JSON object")
    rewrite = case.get("requested_rewrite")
    if not isinstance(rewrite, dict):
        raise bad("has no 'requested_rewrite' object")
    for key in ("prompt", "subject"):
        if not isinstance(rewrite.get(key), str) or not rewrite[key].strip():
            raise bad(f"requested_rewrite.{key} must be a non-empty string")
    targets = {}
    for key in ("target_new", "target_true"):
        target = rewrite.get(key)
        text = target.get("str") if isinstance(target, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise bad(f"requested_rewrite.{key} must be an object with a non-empty 'str'")
        targets[key] = text.strip()
    if "{}" not in rewrite["prompt"]:
        raise bad("requested_rewrite.prompt has no '{}' where the subject goes")
    lists = {}
    for key in ("paraphrase_prompts", "neighborhood_prompts", "generation_prompts"):
        value = case.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"{key} must be a list of strings")
        lists[key] = tuple(v.rstrip() for v in value)
    if not lists["paraphrase_prompts"] or not lists["neighborhood_prompts"]:
        raise bad("needs paraphrase_prompts and neighborhood_prompts (at least one each)")
    case_id = case.get("case_id", index)
    if not isinstance(case_id, int):
        raise bad("case_id must be an integer")
    subject = rewrite["subject"].strip()
    return FactRecord(
        id=f"{NAME}/{case_id:05d}",
        relation=NAME,
        subject=subject,
        answer=targets["target_true"],
        prompt=rewrite["prompt"].replace("{}", subject).rstrip(),
        paraphrases=lists["paraphrase_prompts"],
        neighbourhood=lists["neighborhood_prompts"],
        counterfactual=targets["target_new"],
        source=f"CounterFact case {case_id}"
        + (f" ({rewrite['relation_id']})" if isinstance(rewrite.get("relation_id"), str) else ""),
        generation=lists["generation_prompts"],
    )
