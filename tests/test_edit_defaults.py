"""MEMIT's and AlphaEdit's settings per model: the measured ones where the sweep chose them
(docs/results/edit-lambda/result.json), the authors' everywhere else and one flag away."""

from __future__ import annotations

import json
import re
from pathlib import Path

from factscope.edit.memit import TUNED, MEMITHyperParams, memit_hparams

SWEEP = Path(__file__).resolve().parents[1] / "docs/results/edit-lambda/result.json"


def chosen_settings() -> dict[str, float]:
    """The sweep's choice for MEMIT, as the fields of MEMITHyperParams it sets."""
    result = json.loads(SWEEP.read_text())
    name = result["chosen"]["memit"]  # e.g. "memit λ=5000"
    match = re.fullmatch(r"memit λ=([0-9.e+]+)", name)
    assert match, name
    return {"mom2_update_weight": float(match.group(1))}


def test_gemma_defaults_are_the_sweeps_choice() -> None:
    result = json.loads(SWEEP.read_text())
    assert result["model"] == "gemma-3-270m"
    want = chosen_settings()
    for key, value in want.items():
        assert TUNED[result["model"]][key] == value
        assert getattr(memit_hparams(result["model"]), key) == value
    # the chosen setting beats the authors' on the tuning half
    tune = result["tune"]
    assert tune[result["chosen"]["memit"]]["S"] >= tune[result["authors"]["memit"]]["S"]


def test_authors_settings_are_one_flag_away_and_elsewhere_the_default() -> None:
    authors = MEMITHyperParams()
    assert memit_hparams("gemma-3-270m", authors=True) == authors
    assert memit_hparams("some-other-model") == authors
    assert memit_hparams(None) == authors
    given = memit_hparams("gemma-3-270m", mom2_update_weight=123.0, nullspace_energy=None)
    assert given.mom2_update_weight == 123.0  # what the user gives wins
    assert given.nullspace_energy == authors.nullspace_energy  # None: not given
