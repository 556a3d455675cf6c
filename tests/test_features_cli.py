"""`factscope sae train`, `sae eval` and `features` end to end on a tiny GGUF model, at a
layer and on a fact that docs/features.md does not use."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from factscope.cli import main
from tiny_checkpoints import tiny_hf_for_gguf, write_tiny_gguf

WORDS = [
    "the",
    "city",
    "of",
    "Paris",
    "is",
    "the",
    "capital",
    "of",
    "France",
    "and",
    "Rome",
    "is",
    "in",
    "Italy",
    "while",
    "Tokyo",
    "lies",
    "in",
    "Japan",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    tmp = Path(tmp_path_factory.mktemp("feat"))
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTSCOPE_CACHE", str(tmp / "cache"))  # collected activations stay in tmp
    tiny = tmp / "tiny.gguf"
    write_tiny_gguf(tiny, tiny_hf_for_gguf("gemma3", seed=3))
    rng = random.Random(0)
    docs = [" ".join(rng.choice(WORDS) for _ in range(60)) for _ in range(300)]
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(docs))
    out = tmp / "run"
    args = [
        "sae",
        "train",
        "--model",
        str(tiny),
        "--layer",
        "1",
        "--latents",
        "64",
        "--k",
        "4",
        "--tokens",
        "4000",
        "--held-out-tokens",
        "100",
        "--epochs",
        "2",
        "--batch-size",
        "256",
        "--seq-len",
        "32",
        "--corpus",
        str(corpus),
        "--ce-sequences",
        "2",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    yield {"tiny": tiny, "out": out, "corpus": corpus, "args": args}  # type: ignore[misc]
    patch.undo()


def test_sae_train_writes_metrics_and_a_saelens_folder(trained: dict[str, Path]) -> None:
    data = json.loads((trained["out"] / "train.json").read_text())
    m = data["metrics"]
    assert m["l0"] <= 4 + 1e-9 and 0 < m["explained_variance"] <= 1
    assert m["ce_loss_recovered"] is not None and m["ce_clean"] > 0
    assert data["history"] and data["layer"] == 1
    assert (trained["out"] / "sae" / "cfg.json").is_file()
    assert (trained["out"] / "report.html").read_text().startswith("<!DOCTYPE html>")
    # the outputs are never overwritten silently
    assert main(trained["args"]) == 2  # type: ignore[arg-type]


def test_features_writes_top_latents(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "f"
    args = [
        "features",
        "Paris is the capital of",
        "--sae",
        str(trained["out"] / "sae"),
        "--subject",
        "Paris",
        "--answer",
        " France",
        "--model",
        str(trained["tiny"]),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    data = json.loads((out / "features.json").read_text())
    assert data["dashboards"], "no latent fires at the subject or the last token"
    assert {b["position"] for b in data["dashboards"]} <= {"subject", "last"}
    assert all(b["promotes"] and b["suppresses"] for b in data["dashboards"])
    assert any(b["contexts"] for b in data["dashboards"])
    assert data["attribution"] and data["interventions"]
    for row in data["interventions"]:
        if row["mode"] == "ablate":
            assert 0 <= row["p_after"] <= 1
    # attribution is first-order: it has the sign of the ablation's change where that is large
    big = [r for r in data["attribution"] if abs(r["ablation_delta"]) > 1e-3]
    assert all((r["grad_x_act"] > 0) == (r["ablation_delta"] > 0) for r in big[:3])


def test_sae_eval_prints_json(trained: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "sae",
        "eval",
        str(trained["out"] / "sae"),
        "--model",
        str(trained["tiny"]),
        "--corpus",
        str(trained["corpus"]),
        "--held-out-tokens",
        "100",
        "--ce-sequences",
        "1",
        "--json",
    ]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert 0 < data["metrics"]["explained_variance"] <= 1
