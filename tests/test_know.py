"""know: p(correct) with a shared few-shot prefix equals the plain forward pass; the counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from factscope.report.html import read_report_data
from factscope.study.know import (
    KNOWN_THRESHOLD,
    few_shot_prompts,
    know,
    known_facts,
    summarize,
)
from study_tiny import tiny_dataset, tiny_lm


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return tiny_lm(tmp_path_factory.mktemp("tiny"))


def test_prefix_plus_suffix_is_the_whole_prompt(lm) -> None:  # type: ignore[no-untyped-def]
    ds = tiny_dataset()
    prompts = few_shot_prompts(lm.tokenizer, ds, ds.records)
    for r in ds.records:
        whole = lm.tokenizer.encode(ds.relation.few_shot + r.prompt)
        assert prompts.prefix + prompts.suffixes[r.id] == whole
        # the token just before subject_end spells the subject's last characters
        last = lm.tokenizer.decode(whole[: prompts.subject_ends[r.id]])
        assert last.endswith(r.subject)


def test_cached_batched_p_correct_equals_one_prompt_at_a_time(lm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = tiny_dataset()
    summary, records = know(lm, ds, tmp_path / "run", batch_size=5, progress=False)
    answers = ds.relation.answers
    for fact, rec in zip(ds.records, records, strict=True):
        assert rec["id"] == fact.id
        tokens = lm.encode(ds.relation.few_shot + fact.prompt)
        with torch.no_grad():
            logits = lm.model(tokens)[0, -1].double()
        first = {a: lm.tokenizer.encode(" " + a, add_bos=False)[0] for a in answers}
        p = torch.softmax(logits, dim=-1)
        assert rec["p_correct"] == pytest.approx(float(p[first[fact.answer]]), abs=1e-6)
        p_set = torch.softmax(logits[[first[a] for a in answers]], dim=-1)
        assert rec["predicted"] == answers[int(p_set.argmax())]
        single = len(lm.tokenizer.encode(" " + fact.answer, add_bos=False)) == 1
        assert rec["single_token"] == single
        assert rec["known"] == (single and rec["p_correct"] > KNOWN_THRESHOLD)
    assert summary.counts["candidates"]["all"] == 24
    assert summary.counts["single_token"]["golf"] == 0  # spelled letter by letter
    assert summary.counts["single_token"]["all"] == 18
    # resumed: same records, nothing recomputed
    again = know(lm, ds, tmp_path / "run", batch_size=7, progress=False)[1]
    assert again == records


def test_summary_counts_each_step_per_answer_class() -> None:
    ds = tiny_dataset(12)

    def rec(i: int, answer: str, wf: bool, single: bool, p: float, pred: str) -> dict:  # type: ignore[type-arg]
        known = wf and single and p > KNOWN_THRESHOLD
        return {"id": f"x/{i}", "answer": answer, "well_formed": wf, "single_token": single,
                "p_correct": p, "predicted": pred, "known": known}  # fmt: skip

    records = [
        rec(0, "of", True, True, 0.9, "of"),
        rec(1, "of", True, True, 0.4, "of"),
        rec(2, "of", False, True, 0.9, "of"),
        rec(3, "the", True, True, 0.6, "the"),
        rec(4, "the", True, True, 0.1, "sport"),
        rec(5, "golf", True, False, 0.9, "golf"),
    ]
    s = summarize("m", ds, records)
    assert s.counts["candidates"] == {"of": 3, "the": 2, "sport": 0, "golf": 1, "all": 6}
    assert s.counts["well_formed"] == {"of": 2, "the": 2, "sport": 0, "golf": 1, "all": 5}
    assert s.counts["single_token"] == {"of": 2, "the": 2, "sport": 0, "golf": 0, "all": 4}
    assert s.counts["known"] == {"of": 1, "the": 1, "sport": 0, "golf": 0, "all": 2}
    assert s.known_ids == ["x/0", "x/3"]
    assert s.accuracy["the"] == 0.5 and s.accuracy["all"] == pytest.approx(4 / 5)
    assert s.confusion["the"]["sport"] == 1


def test_known_facts_reads_the_know_run(lm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = tiny_dataset()
    know(lm, ds, tmp_path, progress=False)
    # plant a verdict to see that known_facts reads the run rather than recomputing
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    planted = [json.loads(line) for line in lines]
    for r in planted[:3]:
        r["known"] = True
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in planted))
    known = known_facts(lm, ds, tmp_path, progress=False)
    assert {f.id for f in known} == {r["id"] for r in planted[:3]}


def test_cli_refuses_a_run_folder_of_another_dataset(
    lm, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from factscope.cli import main
    from study_tiny import write_tiny_dataset

    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))
    toy = write_tiny_dataset(tmp_path / "toy.jsonl", tiny_dataset())
    common = ["--model", str(lm.source), "--out", str(tmp_path / "run")]
    assert main(["know", "--dataset", str(toy), *common]) == 0
    summary = json.loads((tmp_path / "run" / "know.json").read_text())
    assert summary["counts"]["candidates"]["all"] == 24
    capsys.readouterr()
    other = ["know", "--dataset", "city_country", "--limit", "3", *common]
    assert main(other) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: run directory"), lines
    assert "dataset 'toy_sport'" in lines[0] and "--force" in lines[0]
    assert main([*other, "--force"]) == 0
    assert json.loads((tmp_path / "run" / "know.json").read_text())["dataset"] == "city_country"
    page = (tmp_path / "run" / "report.html").read_text()
    assert read_report_data(page)["counts"]["candidates"]["all"] == 3 and page.count("<svg") == 2


FLOATS = ("p_correct", "mass_on_answer_set", "p_answer_set")


def test_know_on_ray_gives_the_local_records(lm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ray = pytest.importorskip("ray")
    ds = tiny_dataset()
    _, local = know(lm, ds, tmp_path / "local", batch_size=8, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:  # each actor loads the model from its file (KnowWork pickles as the model's path)
        _, on_ray = know(
            lm, ds, tmp_path / "ray", batch_size=8, backend="ray", workers=1, progress=False
        )
    finally:
        ray.shutdown()
    # the same verdicts; probabilities equal up to float rounding (another process may
    # order a matmul's sums differently)
    strip = [{k: v for k, v in r.items() if k not in FLOATS}
             for r in on_ray]  # fmt: skip
    assert strip == [{k: v for k, v in r.items() if k not in FLOATS} for r in local]
    for a, b in zip(on_ray, local, strict=True):
        assert a["p_correct"] == pytest.approx(b["p_correct"], rel=1e-5, abs=1e-8)
