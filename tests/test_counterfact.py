"""ROME's counterfact.json read as a dataset, and `edit-eval` on it as the papers run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factscope.cli import main
from factscope.study.counterfact import is_counterfact, load_counterfact, load_edit_dataset
from factscope.study.datasets import InvalidDataset


def case(i: int, subject: str, true: str, new: str) -> dict[str, object]:
    """One case in the published shape (keys factscope does not read included)."""
    return {
        "case_id": 100 + i,
        "pararel_idx": 7 + i,
        "requested_rewrite": {
            "prompt": "The mother tongue of {} is",
            "relation_id": "P103",
            "target_new": {"str": new, "id": "Q1860"},
            "target_true": {"str": true, "id": "Q150"},
            "subject": subject,
        },
        "paraphrase_prompts": [f"Shayna does this. {subject} spoke the language"],
        "neighborhood_prompts": [
            f"The native language of Person {i} is",
            f"Person {i + 9} is a native speaker of",
        ],
        "attribute_prompts": ["J. R. R. Tolkien is a native speaker of"],
        "generation_prompts": [f"{subject}'s mother tongue is", f"Where {subject} is from,"],
    }


CASES = [case(0, "Danielle Darrieux", "French", "English"),
         case(1, "Edwin of Northumbria", "English", "Dutch")]  # fmt: skip


def write(path: Path, cases: object) -> Path:
    path.write_text(json.dumps(cases), encoding="utf-8")
    return path


def test_cases_become_records_with_their_own_prompts(tmp_path: Path) -> None:
    path = write(tmp_path / "counterfact.json", CASES)
    assert is_counterfact(path)
    data = load_edit_dataset(str(path))
    assert data == load_counterfact(path)
    first = data.records[0]
    assert first.id == "counterfact/00100" and first.relation == "counterfact"
    assert first.prompt == "The mother tongue of Danielle Darrieux is"
    assert (first.answer, first.counterfactual) == ("French", "English")
    assert first.paraphrases == ("Shayna does this. Danielle Darrieux spoke the language",)
    assert first.neighbourhood == ("The native language of Person 0 is",
                                   "Person 9 is a native speaker of")  # fmt: skip
    assert first.generation == tuple(CASES[0]["generation_prompts"])  # type: ignore[arg-type]
    assert first.source == "CounterFact case 100 (P103)"
    assert set(data.relation.answers) == {"French", "English", "Dutch"}


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda c: c.pop("requested_rewrite"), "no 'requested_rewrite'"),
        (lambda c: c["requested_rewrite"].update(target_new="English"), "target_new must be"),
        (lambda c: c["requested_rewrite"].update(prompt="No slot"), "has no '{}'"),
        (lambda c: c.update(neighborhood_prompts=[]), "needs paraphrase_prompts and"),
        (lambda c: c.update(case_id=100), "case_id 00100 occurs more than once"),
    ],
)
def test_a_bad_case_is_named(tmp_path: Path, mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    cases = json.loads(json.dumps(CASES))
    mutate(cases[1])
    with pytest.raises(InvalidDataset, match=reason):
        load_counterfact(write(tmp_path / "cf.json", cases))


def test_edit_eval_on_counterfact_edits_every_case_with_its_own_prompts(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `know` filter (the papers edit every case); neighbours and GE prompts from the file."""
    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))
    path = write(tmp_path / "counterfact.json", CASES)
    run = tmp_path / "run"
    args = ["edit-eval", "--dataset", str(path), "--out", str(run), "--model", str(tiny_gguf),
            "--layer", "1", "--identity-stats", "--fluency-tokens", "3"]  # fmt: skip
    assert main(args) == 0
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["counterfact/00100", "counterfact/00101"]
    for r, c in zip(records, CASES, strict=True):
        assert len(r["pre"]["probs"]["neighbourhood"]) == len(c["neighborhood_prompts"])  # type: ignore[arg-type]
        texts = r["pre"]["texts"]
        assert [t[: len(p)] for t, p in zip(texts, c["generation_prompts"], strict=True)] == (
            c["generation_prompts"]
        )
    meta = json.loads((run / "run.json").read_text())["meta"]
    assert meta["neighbours"] == "dataset" and meta["n_items"] == 2
    assert json.loads((run / "summary.json").read_text())["n_facts"] == 2


def test_a_bad_counterfact_file_is_one_line_through_the_command(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "factscope"  # the installed command
    assert exe.is_file()
    cases = json.loads(json.dumps(CASES))
    cases[0]["requested_rewrite"].pop("subject")
    path = write(tmp_path / "cf.json", cases)
    env = {**os.environ, "FACTSCOPE_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    done = subprocess.run(
        [str(exe), "edit-eval", "--dataset", str(path), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "case 0: requested_rewrite.subject must be" in lines[0]
    assert "Traceback" not in done.stderr
