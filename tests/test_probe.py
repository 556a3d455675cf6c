"""probe: planted linear signal found, shuffled labels at chance; activations equal the
plain forward pass at the right tokens (clean, bare name, attention mean-ablated)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from factscope.errors import FactscopeError
from factscope.hooks import hooks, run_with_cache
from factscope.study.probe import (
    ABLATE_FROM,
    chance_accuracy,
    collect_activations,
    probe,
    probe_layers,
)
from study_tiny import tiny_dataset, tiny_lm


def planted(n: int = 150, d: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Layer 0: pure noise; layer 1: noise + a class-dependent direction; layer 2: weak."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    directions = rng.normal(size=(3, d))
    noise = rng.normal(size=(n, 3, d))
    x = noise.copy()
    x[:, 1] += 2.0 * directions[labels]
    x[:, 2] += 0.05 * directions[labels]
    return x, labels


def test_probe_finds_a_planted_linear_signal() -> None:
    x, y = planted()
    curve = probe_layers(x, y, folds=5)
    chance = chance_accuracy(y)
    assert curve.mean[1] > 0.95
    assert curve.first_above == 1
    assert curve.mean[0] < chance + 0.15
    assert len(curve.fold_accuracy[1]) == 5
    assert all(lo <= m <= hi for lo, m, hi in zip(curve.min, curve.mean, curve.max, strict=True))


def test_probe_on_shuffled_labels_sits_at_chance() -> None:
    x, y = planted()
    shuffled = np.random.default_rng(1).permutation(y)
    curve = probe_layers(x, shuffled, folds=5)
    chance = chance_accuracy(shuffled)
    assert max(curve.mean) < chance + 0.15  # 3 classes, n=150: chance ~0.36
    assert curve.first_above is None


def test_probe_needs_enough_facts_per_class() -> None:
    x, _ = planted(n=12)
    with pytest.raises(FactscopeError, match="5 facts each"):
        probe_layers(x, np.r_[np.zeros(11, int), 1], folds=5)


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return tiny_lm(tmp_path_factory.mktemp("tiny"))


def test_activations_equal_the_plain_forward_pass(lm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = tiny_dataset()
    facts = list(ds.records[:9])
    labels, feats = collect_activations(lm, ds, facts, tmp_path, batch_size=4, progress=False)
    model, tok, L = lm.model, lm.tokenizer, lm.cfg.n_layers
    sites = ["embed", *(f"blocks.{i}.resid_post" for i in range(L))]
    attn = {}
    for i, fact in enumerate(facts):
        assert labels[i] == ds.relation.answers.index(fact.answer)
        text = ds.relation.few_shot + fact.prompt
        _, stop = tok.find_subject_span(text, fact.subject)
        _, cache = run_with_cache(
            model, lm.encode(text), sites + [f"blocks.{j}.attn.out" for j in range(L)]
        )
        want = torch.stack([cache[s][0] for s in sites])  # (L + 1, T, D)
        np.testing.assert_allclose(feats["subject"][i], want[:, stop - 1], atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(feats["final"][i], want[:, -1], atol=1e-4, rtol=1e-4)
        attn[fact.id] = torch.stack([cache[f"blocks.{j}.attn.out"][0, stop - 1] for j in range(L)])
        _, bare = run_with_cache(model, lm.encode(fact.subject), sites)
        np.testing.assert_allclose(
            feats["bare"][i], torch.stack([bare[s][0, -1] for s in sites]), atol=1e-4, rtol=1e-4
        )
    means = torch.stack(list(attn.values())).mean(0)  # (L, D)
    for i, fact in enumerate(facts):
        text = ds.relation.few_shot + fact.prompt
        _, stop = tok.find_subject_span(text, fact.subject)

        def ablate(x: torch.Tensor, site: str, stop: int = stop) -> torch.Tensor:
            x = x.clone()
            x[0, stop - 1] = means[int(site.split(".")[1])]
            return x

        fns = {f"blocks.{j}.attn.out": ablate for j in range(ABLATE_FROM, L)}
        with hooks(model, fns):
            _, cache = run_with_cache(model, lm.encode(text), sites)
        want = torch.stack([cache[s][0] for s in sites])
        np.testing.assert_allclose(
            feats["ablated_subject"][i], want[:, stop - 1], atol=1e-4, rtol=1e-4
        )
        np.testing.assert_allclose(feats["ablated_final"][i], want[:, -1], atol=1e-4, rtol=1e-4)
        # the ablation changes the subject token's residual after block ABLATE_FROM only
        same = np.isclose(feats["ablated_subject"][i], feats["subject"][i]).all(axis=1)
        assert same.tolist() == [layer <= ABLATE_FROM for layer in range(L + 1)]


def test_probe_result_on_the_tiny_model(lm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = tiny_dataset(40)
    result = probe(lm, ds, list(ds.records), tmp_path, folds=3, progress=False)
    assert set(result.curves) == {
        "subject", "final", "bare", "ablated_subject", "ablated_final", "shuffled",
    }  # fmt: skip
    assert all(len(c.mean) == lm.cfg.n_layers + 1 for c in result.curves.values())
    assert result.n_facts == 40 and result.chance == pytest.approx(0.25)
    # resumed: same activations, same curves
    again = probe(lm, ds, list(ds.records), tmp_path, folds=3, progress=False)
    assert again.curves == result.curves
    # the report holds the figure and the data
    import json

    from factscope.report.html import read_report_data
    from factscope.report.study_html import probe_report

    data = json.loads(json.dumps(result.to_dict()))
    page = probe_report(data, command="factscope probe --dataset toy")
    assert read_report_data(page) == data and page.count("<svg") == 1


def test_cli_probe_writes_results(lm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import json

    from factscope.cli import main
    from study_tiny import write_tiny_dataset

    monkeypatch.setenv("FACTSCOPE_CACHE", str(tmp_path / "cache"))
    toy = write_tiny_dataset(tmp_path / "toy.jsonl", tiny_dataset())
    code = main(["probe", "--dataset", str(toy), "--model", str(lm.source), "--all",
                 "--folds", "3", "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "run" / "probe.json").read_text())
    assert result["n_facts"] == 24 and result["folds"] == 3
    assert (tmp_path / "run" / "clean" / "run.json").exists()
    assert (tmp_path / "run" / "probe.png").exists()
