"""MEMIT's and AlphaEdit's settings per model: the measured ones where the sweep chose them
(docs/results/edit-lambda/result.json), the authors' everywhere else and one flag away."""

from __future__ import annotations

import json
import re
from pathlib import Path

from factscope.edit.memit import TUNED, MEMITHyperParams, memit_hparams

SWEEP = Path(__file__).resolve().parents[1] / "docs/results/edit-lambda/result.json"


def chosen_settings() -> dict[str, float | None]:
    """The sweep's choices for MEMIT and AlphaEdit, as the fields of MEMITHyperParams."""
    result = json.loads(SWEEP.read_text())
    memit = re.fullmatch(r"memit λ=([0-9.e+]+)", result["chosen"]["memit"])
    assert memit, result["chosen"]
    out: dict[str, float | None] = {"mom2_update_weight": float(memit.group(1))}
    chosen = result["chosen"]["alphaedit"]
    alpha = re.fullmatch(r"alphaedit (threshold|energy)=([0-9.e+-]+)", chosen)
    assert alpha, result["chosen"]
    if alpha.group(1) == "energy":
        out["nullspace_energy"] = float(alpha.group(2))
    else:
        out["nullspace_energy"] = None
        out["nullspace_threshold"] = float(alpha.group(2))
    return out


def test_gemma_defaults_are_the_sweeps_choice() -> None:
    result = json.loads(SWEEP.read_text())
    assert result["model"] == "gemma-3-270m"
    want = chosen_settings()
    for key, value in want.items():
        assert TUNED[result["model"]].get(key) == value
        assert getattr(memit_hparams(result["model"]), key) == value
    # each chosen setting scores at least the authors' on the tuning half
    tune = result["tune"]
    for method in ("memit", "alphaedit"):
        assert tune[result["chosen"][method]]["S"] >= tune[result["authors"][method]]["S"]


def test_authors_settings_are_one_flag_away_and_elsewhere_the_default() -> None:
    authors = MEMITHyperParams()
    assert memit_hparams("gemma-3-270m", authors=True) == authors
    assert memit_hparams("some-other-model") == authors
    assert memit_hparams(None) == authors
    given = memit_hparams("gemma-3-270m", mom2_update_weight=123.0, nullspace_energy=None)
    assert given.mom2_update_weight == 123.0  # what the user gives wins
    tuned = TUNED["gemma-3-270m"].get("nullspace_energy", authors.nullspace_energy)
    assert given.nullspace_energy == tuned  # None: not given, so the model's own stays
