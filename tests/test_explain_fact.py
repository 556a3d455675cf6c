"""`factscope explain-fact`: chapters written from the measured numbers, absent capabilities
left out cleanly, and one self-contained page (nothing fetched from the network)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from factscope.load import LoadedModel, load_model
from factscope.locate.lens import lens_prompt
from factscope.predict import predict_next
from factscope.registry import MODELS
from factscope.report.html import read_report_data
from factscope.story import capabilities
from factscope.story.capabilities import Capability
from factscope.story.explain import CHAPTERS, Chapter, explain_fact, story_page
from factscope.study.datasets import load_dataset
from factscope.study.probe import collect_activations, fit_probe, probe_layers
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf

PROMPT = "Michael Jordan plays the sport of"
SUBJECT = "Michael Jordan"


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("story") / "tiny-gemma.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("gemma3", seed=3))
    return path


@pytest.fixture(scope="module")
def lm(tiny_path: Path) -> LoadedModel:
    return load_model(tiny_path)


def chapters(*names: str) -> list[Chapter]:
    return [c for c in CHAPTERS if c.name in names]


def test_sentences_carry_the_measured_numbers(lm: LoadedModel) -> None:
    story = explain_fact(lm, PROMPT, SUBJECT, chapters=chapters("prediction", "trace", "flow"))
    written = {c.name: c for c in story.chapters}
    assert list(written) == ["prediction", "trace", "flow"]
    top = predict_next(lm, PROMPT, 2).top
    first = written["prediction"].sentences[0]
    assert repr(top[0].token) in first and f"{top[0].prob:.3f}" in first
    assert repr(top[1].token) in first
    trace = written["trace"].data["traces"][0]
    assert f"{trace['clean_p']:.3f}" in written["trace"].sentences[0]
    assert f"{trace['corrupted_p']:.3f}" in written["trace"].sentences[0]
    assert trace["method"] == "approx" and trace["samples"] == 3
    assert any("--exact" in s for s in written["trace"].sentences)  # says it is an estimate
    hidden = next(t for t in written["trace"].data["traces"] if t["kind"] == "hidden")
    said = next(s for s in written["trace"].sentences if s.startswith("Restoring the hidden"))
    for t in (hidden["subject_span"][1] - 1, len(hidden["tokens"]) - 1):
        row = hidden["indirect_effect"][t]
        layer = max(range(len(row)), key=row.__getitem__)
        if row[layer] > 0:  # the sentence names the peak layer and its p at both tokens
            assert f"layer {layer} brings p back to {hidden['scores'][t][layer]:.3f}" in said
    lens = lens_prompt(lm, PROMPT)
    flow = written["flow"].data["flow"]
    assert [row[-1] for row in flow["rank"]] == lens.answer_rank
    dla = written["flow"].data["dla"]
    assert f"{dla['logit']:.2f}" in " ".join(written["flow"].sentences)


def test_page_is_self_contained(lm: LoadedModel) -> None:
    story = explain_fact(lm, PROMPT, SUBJECT, chapters=chapters("prediction", "trace", "flow"))
    page = story_page(story, command="factscope explain-fact ...")
    without_namespaces = re.sub(r'xmlns(:\w+)?="http://www\.w3\.org/[^"]*"', "", page)
    assert "http://" not in without_namespaces and "https://" not in without_namespaces
    assert "<script src" not in page and "<link" not in page and "<img" not in page
    assert page.count("<svg") >= 5  # prediction, three traces, flow, DLA
    for chapter in story.chapters:
        assert chapter.title in page and chapter.sentences[0].split("(")[0][:30] in page
    data = read_report_data(page)
    assert set(data["chapters"]) == {"prediction", "trace", "flow"}


def test_absent_capability_is_left_out(lm: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = Capability("ghost", "factscope.not_landed_yet", ("f",), "a capability to come")
    monkeypatch.setitem(capabilities.CAPABILITIES, "ghost", ghost)

    def never(context: object) -> object:
        raise AssertionError("an absent chapter must not run")

    missing = Chapter("ghost", "A chapter to come", ("ghost",), never)  # type: ignore[arg-type]
    story = explain_fact(lm, PROMPT, SUBJECT, chapters=[*chapters("prediction"), missing])
    assert [c.name for c in story.chapters] == ["prediction"] and story.skipped == ["ghost"]
    page = story_page(story)
    assert "A chapter to come" not in page and "ghost" in page  # named as left out


def test_edit_chapter_only_with_new(lm: LoadedModel) -> None:
    story = explain_fact(lm, PROMPT, SUBJECT, chapters=chapters("prediction", "edit"))
    assert [c.name for c in story.chapters] == ["prediction"] and story.skipped == []


def test_probe_chapter_equals_the_study_probe(lm: LoadedModel, tmp_path: Path) -> None:
    """The prompt is athlete_sport's question: the chapter trains the study's probe on a
    sample of that dataset (Michael Jordan, a record of it, held out) and its curve and its
    reading of the subject equal the probe module's own on the same facts."""
    story = explain_fact(
        lm, PROMPT, SUBJECT, probe_facts=45, chapters=chapters("prediction", "probe")
    )
    assert [c.name for c in story.chapters] == ["prediction", "probe"], story.skipped
    chapter = story.chapters[1]
    data = chapter.data
    assert data["dataset"] == "athlete_sport" and data["facts_from"] == "all"
    dataset = load_dataset("athlete_sport")
    by_id = {r.id: r for r in dataset.records}
    facts = [by_id[i] for i in data["record_ids"]]
    assert len(facts) == 45 and data["counts"] == {"basketball": 15, "baseball": 15, "football": 15}
    own = next(r for r in dataset.records if r.subject == SUBJECT)
    assert own.id not in data["record_ids"] and data["subject_answer"] == own.answer
    _, features = collect_activations(lm, dataset, [*facts, own], tmp_path / "acts", progress=False)
    x = features["subject"]  # (N + 1, L + 1, D): the study's own activation sweep
    y = np.array([data["classes"].index(f.answer) for f in facts])
    want = probe_layers(x[:-1], y, folds=5, seed=0)
    assert data["curve"]["fold_accuracy"] == want.fold_accuracy  # fractions of 9 facts: exact
    assert data["curve"]["mean"] == want.mean
    best = int(np.argmax(want.mean))
    assert data["best_layer"] == best
    assert data["reaches"] == next(i for i, m in enumerate(want.mean) if m >= 0.9 * want.mean[best])
    for layer in range(x.shape[1]):
        reading = fit_probe(x[:-1, layer].astype(np.float64), y)
        p = reading.predict_proba(x[-1:, layer].astype(np.float64))[0]
        assert data["subject_probs"][layer] == pytest.approx(p.tolist(), abs=1e-6)
    said = " ".join(chapter.sentences)
    assert f"at layer {data['reaches']} ({want.mean[data['reaches']]:.3f};" in said
    assert f"best {want.mean[best]:.3f} at layer {best}" in said
    p_best = data["subject_probs"][best][data["classes"].index(own.answer)]
    assert f"at layer {best} it predicts" in said and f"= {p_best:.3f}" in said
    assert "whether or not the model knows each fact" in said
    page = story_page(story)
    assert "Whether a linear probe reads it" in page and page.count("<svg") >= 2


def test_probe_chapter_left_out_without_a_matching_dataset(
    lm: LoadedModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other_model = tmp_path / "know-other"  # a know run of another model: said, not used
    other_model.mkdir()
    meta = {"task": "know", "model": "gemma-3-270m", "dataset": "athlete_sport"}
    (other_model / "run.json").write_text(json.dumps({"meta": meta}))
    story = explain_fact(lm, PROMPT, SUBJECT, probe_known=other_model, chapters=chapters("probe"))
    assert story.chapters == [] and "is a know run of gemma-3-270m" in story.skipped[0]
    other = "Fact Michael Jordan plays the sport of"  # no dataset's template
    story = explain_fact(lm, other, SUBJECT, chapters=chapters("prediction", "probe"))
    assert [c.name for c in story.chapters] == ["prediction"]
    assert story.skipped == [
        "probe (no packaged dataset asks this question (a relation's template with the "
        "subject), so there are no facts to train a probe on)"
    ]
    page = story_page(story)
    assert "Whether a linear probe reads it" not in page and "no packaged dataset" in page
    absent = Capability("probe", "factscope.study.no_such_probe", ("probe_layers",), "absent")
    monkeypatch.setitem(capabilities.CAPABILITIES, "probe", absent)
    story = explain_fact(lm, PROMPT, SUBJECT, chapters=chapters("prediction", "probe"))
    assert [c.name for c in story.chapters] == ["prediction"] and story.skipped == ["probe"]
    story = explain_fact(lm, PROMPT, SUBJECT, probe_facts=0, chapters=chapters("probe"))
    assert story.chapters == [] and story.skipped == []  # not asked for: not mentioned


def test_bad_subject_is_said_before_any_work(lm: LoadedModel) -> None:
    from factscope.errors import FactscopeError

    with pytest.raises(FactscopeError, match="does not occur"):
        explain_fact(lm, PROMPT, "Tom Brady")


def test_command_writes_one_page_and_refuses_to_overwrite(tiny_path: Path, tmp_path: Path) -> None:
    factscope = str(Path(sys.executable).parent / "factscope")
    out = tmp_path / "story.html"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    args = [factscope, "explain-fact", PROMPT, "--subject", SUBJECT, "--model", str(tiny_path)]
    done = subprocess.run([*args, "--out", str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "What the model predicts" in done.stdout and out.exists()
    assert "Whether a linear probe reads it" in done.stdout  # athlete_sport's question
    page = out.read_text(encoding="utf-8")
    assert read_report_data(page)["prompt"] == PROMPT
    again = subprocess.run([*args, "--out", str(out)], capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "--force" in again.stderr


@pytest.mark.realmodel
def test_michael_jordan_on_gemma() -> None:
    if not MODELS["gemma-3-270m"].is_installed():
        pytest.skip("gemma-3-270m is not installed")
    lm = load_model("gemma-3-270m")
    story = explain_fact(lm, PROMPT, SUBJECT, chapters=chapters("prediction", "flow"))
    assert story.chapters[0].data["top"][0]["token"] == " basketball"
    flow = story.chapters[1]
    assert "becomes the top token at the last position" in flow.sentences[0]
    assert flow.data["dla"]["logit"] == pytest.approx(
        sum(flow.data["dla"]["attn"]) + sum(flow.data["dla"]["mlp"]) + flow.data["dla"]["embed"],
        rel=1e-5,
    )


def test_features_chapter_only_with_an_sae(lm: LoadedModel, tmp_path: Path) -> None:
    from factscope.features.formats import load_dictionary
    from factscope.features.inspect import inspect_prompt
    from tiny_saes import saelens_folder

    sae = load_dictionary(saelens_folder(tmp_path / "sae", lm.cfg.d_model))
    names = ("prediction", "features")
    without = explain_fact(lm, PROMPT, SUBJECT, chapters=chapters(*names))
    assert [c.name for c in without.chapters] == ["prediction"] and not without.skipped
    story = explain_fact(lm, PROMPT, SUBJECT, chapters=chapters(*names), sae=sae)
    assert [c.name for c in story.chapters] == ["prediction", "features"]
    chapter = story.chapters[1]
    answer = story.chapters[0].data["top"][0]["token"]
    expected = inspect_prompt(lm, sae, PROMPT, subject=SUBJECT, answer=answer, top=3)
    assert f"from {expected.p_clean:.3f} to {expected.p_spliced:.3f}" in chapter.sentences[0]
    top_subject = next(b for b in expected.dashboards if b.position == "subject")
    assert any(f"#{top_subject.latent} (" in s for s in chapter.sentences)
    page = story_page(story)
    assert "Which features of a sparse dictionary carry it" in page
    assert read_report_data(page)["options"]["sae"]["d_sae"] == 32


def test_bad_sae_paths_are_one_line_exit_2(
    tiny_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from factscope.cli import main
    from tiny_saes import saelens_folder

    missing = tmp_path / "no-such-sae"
    assert main(["serve", "--model", str(tiny_path), "--sae", str(missing)]) == 2
    assert "--sae" in capsys.readouterr().err
    wrong = saelens_folder(tmp_path / "wide", d_model=7)  # another model's width
    out = tmp_path / "story.html"
    args = ["explain-fact", PROMPT, "-s", SUBJECT, "--model", str(tiny_path), "--out", str(out)]
    assert main([*args, "--sae", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert "d_in=7" in err and len(err.strip().splitlines()) == 1 and not out.exists()
