"""CounterFact measures: the formulas against ROME's summarize.py, and resumable sweeps."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from factscope.edit.evaluate import (
    FactScores,
    harmonic_mean,
    ngram_entropy,
    run_edit_eval,
    summarise,
)
from factscope.edit.measure import answer_probabilities
from factscope.edit.memit import MEMITHyperParams
from factscope.edit.rome import ROMEHyperParams
from factscope.study.datasets import FactRecord
from test_rome import PROMPT, p_answer, tiny_lm, tiny_stats


def test_ngram_entropy_is_rome_s_weighted_mean_of_bigram_and_trigram_entropies() -> None:
    text = "a b a b a c"
    words = text.split()

    def entropy(n: int) -> float:
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        total = sum(grams.values())
        return -sum(c / total * math.log2(c / total) for c in grams.values())

    expected = (2 / 3 * entropy(2) + 4 / 3 * entropy(3)) / 2  # np.mean of the weighted list
    assert ngram_entropy(text) == pytest.approx(expected)
    assert ngram_entropy("the the the the the the") == 0.0  # pure repetition: no fluency
    assert ngram_entropy("Hello, world.") > 0  # punctuation is a word, as nltk splits it


def test_measures_follow_counterfact_definitions() -> None:
    scores = FactScores(
        rewrite=[[0.6, 0.1]],
        paraphrase=[[0.3, 0.4], [0.5, 0.2]],
        neighbourhood=[[0.1, 0.7], [0.4, 0.3], [0.0, 0.2]],  # [p_new, p_old]
    )
    m = scores.measures()
    assert m["efficacy"] == 1.0 and m["paraphrase"] == 0.5
    assert m["neighbourhood"] == pytest.approx(2 / 3)  # p(old) > p(new) in two of three
    assert m["efficacy_magnitude"] == pytest.approx(0.5)
    assert m["neighbourhood_magnitude"] == pytest.approx(((0.6) + (-0.1) + 0.2) / 3)
    assert harmonic_mean([100.0, 50.0, 50.0]) == pytest.approx(3 / (1 / 100 + 2 / 50))
    summary = summarise([{"pre": m}, {"pre": {**m, "paraphrase": 1.0}}], "pre")
    assert summary["paraphrase"] == pytest.approx(75.0)
    assert summary["score"] == pytest.approx(harmonic_mean([100.0, 75.0, 200 / 3]))


def test_batched_answer_probabilities_equal_one_prompt_at_a_time() -> None:
    lm = tiny_lm("gemma3", seed=8)
    prompts = [PROMPT, "Fact Jordan plays", "Michael plays the sport of"]
    answers = ["plays", "the sport"]
    batched = answer_probabilities(lm, prompts, answers, batch_size=4)
    for i, p in enumerate(prompts):
        for j, a in enumerate(answers):
            assert batched[i][j] == pytest.approx(p_answer(lm, p, a), rel=1e-4)


def _records() -> list[FactRecord]:
    subjects = ["sport of", "the sport of", "Jordan plays the sport of"]
    news = ["plays", "Michael", "Fact"]
    return [
        FactRecord(
            id=f"tiny/{i}",
            relation="tiny",
            subject=s,
            answer="the",
            prompt=PROMPT,
            paraphrases=("Fact Jordan plays the sport of",),
            neighbourhood=("Michael plays the",),
            counterfactual=n,
            source="test",
        )
        for i, (s, n) in enumerate(zip(subjects, news, strict=True))
    ]


def test_rome_edit_eval_scores_each_fact_and_resumes(tmp_path: Path) -> None:
    lm = tiny_lm("llama", seed=1)
    stats = tiny_stats(lm, [1])
    weights = {n: w.detach().clone() for n, w in lm.model.state_dict().items()}
    hp = ROMEHyperParams(v_weight_decay=1e-3, v_num_grad_steps=10, clamp_norm_factor=50)
    done, summary = run_edit_eval(lm, _records()[:2], tmp_path / "run", "rome", 1, hparams=hp,
                                  stats=stats, fluency_tokens=6, drift_documents=0,
                                  progress=False)  # fmt: skip
    assert [r["id"] for r in done] == ["tiny/0", "tiny/1"]
    assert summary.n_facts == 2 and summary.post["efficacy"] >= summary.pre["efficacy"]
    page = summary._repr_html_()
    assert "89.2" in page and "rome on" in page  # ours beside the published ROME numbers
    assert all(torch.equal(weights[n], w) for n, w in lm.model.state_dict().items())
    lines = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 2
    # resume: the two done facts are read back, only the third is computed
    done3, _ = run_edit_eval(lm, _records(), tmp_path / "run", "rome", 1, hparams=hp,
                             stats=stats, fluency_tokens=6, drift_documents=0,
                             progress=False)  # fmt: skip
    assert [r["id"] for r in done3] == ["tiny/0", "tiny/1", "tiny/2"]
    assert (tmp_path / "run" / "records.jsonl").read_text().splitlines()[:2] == lines
    assert json.loads(lines[0])["post"]["efficacy"] == done3[0]["post"]["efficacy"]


@pytest.mark.parametrize("method", ["alphaedit", "memit"])
def test_sequential_batch_editors_restore_the_model_and_resume(method: str, tmp_path: Path) -> None:
    lm = tiny_lm("llama", seed=1)
    hp = MEMITHyperParams(v_weight_decay=1e-3, v_num_grad_steps=8, clamp_norm_factor=50,
                          n_layers=2, mom2_update_weight=10.0)  # fmt: skip
    stats = tiny_stats(lm, [1, 2])
    weights = {n: w.detach().clone() for n, w in lm.model.state_dict().items()}
    done, summary = run_edit_eval(lm, _records(), tmp_path / "seq", method, 2, sequential=2,
                                  hparams=hp, stats=stats, fluency_tokens=0,
                                  drift_documents=0, progress=False)  # fmt: skip
    assert [r["id"] for r in done] == ["tiny/0", "tiny/1"] and summary.sequential == 2
    assert all(torch.equal(weights[n], w) for n, w in lm.model.state_dict().items())
    saved = torch.load(tmp_path / "seq" / "edited.pt", weights_only=False)
    assert saved["done"] == ["tiny/0", "tiny/1"] and sorted(saved["weights"]) == [1, 2]
    if method == "alphaedit":
        assert saved["state"].n_edits == 2
    # each record carries what its edit did; the summary their means
    for r in done:
        e = r["edit"]
        assert e["method"] == method and e["layers"] == [1, 2]
        assert e["mom2_update_weight"] == 10.0
        assert len(e["z_error"]) == len(e["reached"]) == len(e["error"]) == len(e["rho"]) == 2
        assert all(x > 0 for x in e["z_error"])
        if method == "alphaedit":
            assert set(e["null_dims"]) == {"1", "2"} and set(e["null_energy"]) == {"1", "2"}
    means = summary.to_dict()["edit"]
    for key in ("z_error", "reached", "error", "rho"):
        expected = [
            (a + b) / 2 for a, b in zip(done[0]["edit"][key], done[1]["edit"][key], strict=True)
        ]
        assert means[key] == pytest.approx(expected)


def test_known_neighbourhood_takes_other_known_facts_with_the_same_answer() -> None:
    from factscope.edit.evaluate import known_neighbourhood

    def fact(i: int, answer: str) -> FactRecord:
        return FactRecord(f"d/{i}", "r", f"S{i}", answer, f"S{i} plays", (), ("unknown",), "x", "t")

    known = [fact(0, "a"), fact(1, "b"), fact(2, "a"), fact(3, "a"), fact(4, "a"), fact(5, "b")]
    out = known_neighbourhood([known[3], known[1], fact(9, "c")], known, n=3)
    assert out[0].neighbourhood == ("S4 plays", "S0 plays", "S2 plays")  # after S3, cycling
    assert out[1].neighbourhood == ("S5 plays",)  # only one other "b"
    assert out[2].neighbourhood == ()  # no known fact shares its answer
    assert [r.id for r in out] == ["d/3", "d/1", "d/9"] and out[0].prompt == "S3 plays"


def test_facts_edited_together_are_never_each_others_neighbours() -> None:
    """In a batch (or a sequence) every edited fact loses its old answer by design; as a
    neighbour it would count its own edit as damage."""
    from factscope.edit.evaluate import batch_halves, known_neighbourhood

    def fact(i: int, answer: str) -> FactRecord:
        return FactRecord(f"d/{i}", "r", f"S{i}", answer, f"S{i} plays", (), ("unknown",), "x", "t")

    known = [fact(i, "a") for i in range(5)] + [fact(i, "b") for i in range(5, 8)]
    to_edit, bystanders = batch_halves(known)
    assert [r.id for r in to_edit] == ["d/0", "d/2", "d/4", "d/5", "d/7"]
    assert [r.id for r in bystanders] == ["d/1", "d/3", "d/6"]
    edited = {r.id for r in to_edit}
    out = known_neighbourhood(to_edit, known, n=3, edited=edited)
    for record in out:
        assert record.neighbourhood  # every answer has an unedited fact
        assert not {p.split()[0] for p in record.neighbourhood} & {f"S{i}" for i in (0, 2, 4, 5, 7)}
    assert out[0].neighbourhood == ("S1 plays", "S3 plays")
    assert out[3].neighbourhood == ("S6 plays",)


def test_edit_eval_picks_batch_facts_from_one_half_and_neighbours_from_the_other() -> None:
    from factscope.edit.evaluate import known_facts_to_edit

    def fact(i: int, answer: str) -> FactRecord:
        return FactRecord(f"d/{i}", "r", f"S{i}", answer, f"S{i} plays", (), ("unknown",), "x", "t")

    known = [fact(i, "a") for i in range(6)] + [fact(6, "b")]
    alone = known_facts_to_edit(known, 2, together=False)  # ROME: one edit at a time
    assert [r.id for r in alone] == ["d/0", "d/1"] and "S1 plays" in alone[0].neighbourhood
    batch = known_facts_to_edit(known, 3, together=True)
    assert [r.id for r in batch] == ["d/0", "d/2", "d/4"]
    for record in batch:
        assert set(record.neighbourhood) <= {"S1 plays", "S3 plays", "S5 plays"}
    # "b" has one known fact: no neighbour could be kept, so it is left unedited
    assert [r.id for r in known_facts_to_edit(known, 4, together=True)] == ["d/0", "d/2", "d/4"]
