"""The command line on a tiny GGUF model: outputs, JSON shapes, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factscope.cli import main
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf

PROMPT = "Fact Michael Jordan plays the sport of"  # every word is one token of the tiny vocab


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "tiny-gemma.gguf"
    write_tiny_gguf(path, tiny_hf_for_gguf("gemma3", seed=3))
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_json_shape(tiny_gguf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "predict", PROMPT, "--model", str(tiny_gguf), "--json", "--top-k", "3"
    )
    assert code == 0
    data = json.loads(out)
    assert data["prompt"] == PROMPT
    assert data["tokens"][0] == "<bos>" and len(data["tokens"]) == 8
    assert [set(c) for c in data["top"]] == [{"token", "id", "prob", "logit"}] * 3
    probs = [c["prob"] for c in data["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1


def test_trace_writes_outputs_and_refuses_overwrite(
    tiny_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "trace"
    args = [
        "trace", PROMPT, "--subject", "Michael Jordan", "--model", str(tiny_gguf),
        "--samples", "2", "--window", "2", "--out", str(out_dir),
    ]  # fmt: skip
    code, _, err = run(capsys, *args)
    assert code == 0, err
    names = {p.name for p in out_dir.iterdir()}
    assert names == {
        "trace.json", "report.html", "trace_hidden.png", "trace_mlp.png", "trace_attn.png"
    }  # fmt: skip
    data = json.loads((out_dir / "trace.json").read_text())
    traces = data["traces"]
    assert [t["kind"] for t in traces] == ["hidden", "mlp", "attn"]
    for t in traces:
        assert t["subject_span"] == [2, 4]
        assert len(t["scores"]) == 8 and all(len(row) == 3 for row in t["scores"])
        assert t["samples"] == 2 and t["window"] == 2
    before = (out_dir / "trace.json").read_bytes()
    code, _, err = run(capsys, *args)
    assert code == 2 and "already exists" in err and "--force" in err
    assert (out_dir / "trace.json").read_bytes() == before  # nothing overwritten
    code, _, err = run(capsys, *args, "--force")
    assert code == 0, err


def test_trace_errors_are_one_line(
    tiny_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["trace", PROMPT, "--model", str(tiny_gguf), "--out", str(tmp_path / "o")]
    for extra, message in [
        (["--subject", "Larry Bird"], "does not occur"),
        (["--subject", " "], "empty"),
        (["--subject", "Michael", "--kind", "hidden,neurons"], "--kind"),
    ]:
        code, _, err = run(capsys, *base, *extra)
        assert code == 2
        assert message in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_patch_and_lens_write_outputs(
    tiny_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "patch", PROMPT, "Fact Jordan Michael plays the sport of",
        "--answers", " the", " of", "--model", str(tiny_gguf), "--out", str(tmp_path / "p"),
        "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert set(data["scores"]) == {"resid", "attn", "mlp", "heads"}
    assert json.loads((tmp_path / "p" / "patch.json").read_text())["scores"] == data["scores"]
    assert (tmp_path / "p" / "patch_resid.png").stat().st_size > 0

    code, out, err = run(
        capsys, "lens", PROMPT, "--model", str(tiny_gguf), "--out", str(tmp_path / "l"), "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    dla = data["dla"]
    assert dla["total"] == pytest.approx(dla["logit"], rel=1e-4, abs=1e-4)
    assert {p.name for p in (tmp_path / "l").iterdir()} == {
        "lens.json", "report.html", "lens.png", "dla.png"
    }  # fmt: skip


def test_patch_needs_equal_lengths(tiny_gguf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "patch", PROMPT, "Fact Jordan plays the sport of", "--answers", " the", " of",
        "--model", str(tiny_gguf),
    )  # fmt: skip
    assert code == 2 and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "x", "--model", "/no/such/model.gguf"], "no such file"),
        (["predict", "", "--model", "gemma-3-270m"], "empty"),
        (["predict", "x", "--model", "gpt-5"], "unknown model"),
        (["predict", "x", "--device", "tpu"], "device"),
    ],
)
def test_bad_input_one_line_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in err.lower()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_not_a_gguf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model at all" * 4)
    code, _, err = run(capsys, "predict", "x", "--model", str(fake))
    assert code == 2 and "not a GGUF file" in err
    assert fake.read_bytes() == b"not a model at all" * 4
