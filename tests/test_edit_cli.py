"""`factscope edit` end to end on a tiny GGUF model: before/after table, --save, reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from factscope.cli import main
from factscope.edit.request import answer_ids
from factscope.load import load_model

PROMPT = "Fact Michael Jordan plays the sport of"


def test_edit_prints_before_after_saves_and_the_saved_model_reloads(
    tiny_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))
    saved = tmp_path / "edited"
    before_bytes = tiny_gguf.read_bytes()
    args = ["edit", PROMPT, "--subject", "the sport of", "--new", "plays", "--layer", "1",
            "--identity-stats", "--model", str(tiny_gguf), "--save", str(saved),
            "--neighbour", "Fact Jordan plays the sport of", "--out", str(tmp_path / "out"),
            "--json"]  # fmt: skip
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["kind"]: r for r in data["before_after"]["rows"]}
    assert set(rows) == {"prompt", "paraphrase", "neighbour"}
    assert rows["prompt"]["p_new_after"] > rows["prompt"]["p_new_before"]
    assert data["edit"]["method"] == "rome" and data["edit"]["layers"] == [1]
    assert tiny_gguf.read_bytes() == before_bytes  # the model file is never modified
    assert (tmp_path / "out" / "report.html").exists()
    # the saved folder loads like any model and holds the edited weights
    original, edited = load_model(tiny_gguf), load_model(saved)
    tokens = original.encode(PROMPT)
    with torch.no_grad():
        p_orig = torch.softmax(original.model(tokens)[0, -1], -1)
        p_edit = torch.softmax(edited.model(tokens)[0, -1], -1)
    plays = original.tokenizer.encode(" plays", add_bos=False)[0]
    assert float(p_edit[plays]) == pytest.approx(rows["prompt"]["p_new_after"], rel=1e-4)
    assert float(p_orig[plays]) == pytest.approx(rows["prompt"]["p_new_before"], rel=1e-4)
    meta = json.loads((saved / "factscope.json").read_text())
    assert "edit" in json.dumps(meta)
    # --save onto the existing folder is refused without --force
    assert main(args) == 2


def test_edit_clamp_and_lambda_flags_reach_the_memit_edit(
    tiny_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """--clamp and --mom2-update-weight set the hyperparameters the edit ran with, and the
    result reports each layer's reach of its wanted output change (the post-norm map)."""
    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))
    args = ["edit", PROMPT, "--subject", "the sport of", "--new", "plays", "--layer", "2",
            "--method", "memit", "--identity-stats", "--clamp", "2.5",
            "--mom2-update-weight", "3.0", "--model", str(tiny_gguf), "--json"]  # fmt: skip
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    result = data["edit"]["edits"][0]
    assert result["hparams"]["clamp_norm_factor"] == 2.5
    assert result["hparams"]["mom2_update_weight"] == 3.0
    assert len(result["reached"]) == len(result["layers"]) == len(result["rho"])


def test_retrace_shows_where_each_answer_is_recalled_before_and_after(
    tiny_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """--retrace: the lens and the approximate trace for the new and the old answer on the
    original and on the edited model; the lens's last row is the model's own output (p of
    the answer's first token)."""
    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))
    out_dir = tmp_path / "out"
    args = ["edit", PROMPT, "--subject", "the sport of", "--new", "plays", "--layer", "1",
            "--identity-stats", "--retrace", "--model", str(tiny_gguf), "--out", str(out_dir),
            "--json"]  # fmt: skip
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    table = data["before_after"]
    old = table["old"]
    for when in ("before", "after"):
        view = table["recall"][when]["answers"]
        assert set(view) == {"plays", old}
        assert len(view["plays"]["lens_p"]) == 3 and len(view["plays"]["mlp_effect"]) == 3
    original = load_model(tiny_gguf)
    first = answer_ids(original.tokenizer, PROMPT, "plays")[0]
    with torch.no_grad():
        p = torch.softmax(original.model(original.encode(PROMPT))[0, -1], -1)
    lens_before = table["recall"]["before"]["answers"]["plays"]["lens_p"]
    assert lens_before[-1] == pytest.approx(float(p[first]), rel=1e-4)
    after, before = table["recall"]["after"]["answers"], table["recall"]["before"]["answers"]
    assert after["plays"]["lens_p"][-1] > before["plays"]["lens_p"][-1]  # the edit worked
    page = (out_dir / "report.html").read_text()
    assert "Where each answer is recalled" in page and "<svg" in page
