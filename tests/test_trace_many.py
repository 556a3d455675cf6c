"""trace-many: ROME Figure 2's token groups, records equal to single traces, the averages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from factscope.locate.trace import trace_fact
from factscope.study.trace_many import GROUPS, average_trace, group_rows, trace_many
from study_tiny import tiny_dataset, tiny_lm


def test_group_rows_follow_rome() -> None:
    # "Fact: ... [Mi][cha][el] [plays] [the] [sport] [of]": 3 subject tokens, 4 after
    rows = group_rows(7, 3)
    assert rows == {
        "first subject token": [0],
        "middle subject tokens": [1],
        "last subject token": [2],
        "first subsequent token": [3],
        "further tokens": [4, 5],
        "last token": [6],
    }
    one = group_rows(3, 1)  # a one-token subject is first and last; nothing in the middle
    assert one["first subject token"] == one["last subject token"] == [0]
    assert one["middle subject tokens"] == [] and one["further tokens"] == []
    with pytest.raises(ValueError):
        group_rows(3, 3)


def test_average_pools_rows_like_read_knowlege() -> None:
    def record(n: int, subj: int, low: float, base: float) -> dict:  # type: ignore[type-arg]
        scores = [[base + t, base + t + 0.5] for t in range(n)]  # (tokens, 2 layers)
        return {"n_tokens": n, "subject_len": subj, "corrupted_p": low, "clean_p": 1.0,
                "scores": {"hidden": scores}}  # fmt: skip

    a, b = record(6, 3, 0.1, 0.0), record(5, 1, 0.2, 10.0)
    result = average_trace(
        [a, b], model="m", dataset="d", kinds=["hidden"], window=1, samples=1, noise_std=1.0,
        method="exact",
    )  # fmt: skip
    aie = dict(zip(GROUPS, result.aie["hidden"], strict=True))
    # first subject token: row 0 of both facts, minus each fact's corrupted p
    assert aie["first subject token"] == pytest.approx([(0 - 0.1 + 10 - 0.2) / 2, 5.35])
    # middle: only fact a has one (row 1)
    assert aie["middle subject tokens"] == pytest.approx([0.9, 1.4])
    # further tokens pooled: a rows 4 (3 subject + first after at 3), b rows 2, 3
    pooled = [4 - 0.1, 12 - 0.2, 13 - 0.2]
    assert aie["further tokens"][0] == pytest.approx(np.mean(pooled))
    assert result.group_counts["further tokens"] == 3
    assert result.corrupted_p == pytest.approx(0.15)


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return tiny_lm(tmp_path_factory.mktemp("tiny"))


def test_records_are_the_single_fact_traces(lm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = tiny_dataset()
    facts = list(ds.records[:3])
    result, records = trace_many(
        lm, ds, facts, tmp_path, samples=3, window=2, noise_std=0.5, progress=False
    )
    for fact, rec in zip(facts, records, strict=True):
        text = ds.relation.few_shot + fact.prompt
        tokens = lm.encode(text)
        span = lm.tokenizer.find_subject_span(text, fact.subject)
        answer = lm.tokenizer.encode(" " + fact.answer, add_bos=False)[0]
        single = trace_fact(lm.model, tokens, span, answer, samples=3, window=2, noise_std=0.5)
        for kind in ("hidden", "mlp", "attn"):
            np.testing.assert_allclose(
                rec["scores"][kind], single[kind].scores[span[0] :], atol=1e-9
            )
        assert rec["subject_len"] == span[1] - span[0]
        assert rec["corrupted_p"] == pytest.approx(single["hidden"].corrupted_p)
    assert result.n_facts == 3 and len(result.aie["mlp"]) == len(GROUPS)
    assert len(result.aie["mlp"][0]) == lm.cfg.n_layers
    approx, _ = trace_many(
        lm, ds, facts, tmp_path / "approx", samples=3, window=2, noise_std=0.5, approx=True,
        progress=False,
    )  # fmt: skip
    assert approx.method == "approx"
    import json

    from factscope.report.html import read_report_data
    from factscope.report.study_html import trace_many_report

    data = json.loads(json.dumps(result.to_dict()))
    page = trace_many_report(data)
    assert read_report_data(page) == data and page.count("<svg") == 1
    assert approx.corrupted_p == pytest.approx(result.corrupted_p, rel=1e-5)


def test_cli_writes_results_and_resumes_with_a_larger_n(
    lm, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import json

    from factscope.cli import main
    from study_tiny import write_tiny_dataset

    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))
    toy = write_tiny_dataset(tmp_path / "toy.jsonl", tiny_dataset())
    args = ["trace-many", "--dataset", str(toy), "--model", str(lm.source), "--all",
            "--samples", "2", "--approx", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main([*args, "--n", "2"]) == 0
    assert main([*args, "--n", "3"]) == 0  # resumes: same noise scale, one more fact
    result = json.loads((tmp_path / "run" / "trace_many.json").read_text())
    assert result["n_facts"] == 3 and result["method"] == "approx"
    assert (tmp_path / "run" / "trace_many.png").exists()
    assert (tmp_path / "run" / "records.jsonl").read_text().count("\n") == 3
