"""MEMIT's λ (`mom2_update_weight`) and AlphaEdit's null space, swept on known facts.

Usage: python scripts/edit_lambda_sweep.py [OUT_DIR] [--layer L] [--lambdas 200,2000,...]
           [--energies 0.01,0.05,...] [--facts N]

The facts gemma-3-270m knows of athlete_sport (the `known_ids` of
docs/results/study-know/athlete_sport.json) are split in two by a hash of their id: the
tuning half, on which every setting is run as one batch edit, and the held-out half, on which
only the chosen setting and the authors' are run. Each fact's three neighbours are known
athletes of the same sport from the other half, which the batch leaves unedited (as
`edit-eval` picks them for a batch). ES / PS / NS / S as CounterFact (percent;
ES: p(new) > p(old) on the prompt, PS on the paraphrases, NS: p(old) > p(new) on the
neighbours). The choice is the setting with the highest S on the tuning half (ties: the
higher NS). Each run also
records the edit's reach per layer (edit/memit.py). Every fact's z is optimised once and read
from the disk cache by the other runs (edit/target.py). The result is written after every run
to OUT_DIR/result.json (default docs/results/edit-lambda); a killed sweep started again keeps
the runs already there (same split, layer and neighbours) and makes only the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

KNOW = Path(__file__).resolve().parents[1] / "docs/results/study-know/athlete_sport.json"


def option(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def tuning(fact_id: str) -> bool:
    """The split: half of the facts, by a hash of the id (stable, blind to the answers)."""
    return hashlib.sha256(fact_id.encode()).digest()[0] % 2 == 0


def run_batch(lm: Any, records: list[Any], layer: int, hp: Any, method: str) -> dict[str, Any]:
    """One batch edit of `records`, scored after it and undone."""
    from factscope.edit.evaluate import fact_request, score_fact, summarise
    from factscope.edit.memit import apply_memit

    start = time.perf_counter()
    handle = apply_memit(lm, [fact_request(r) for r in records], layer, hp, method=method)
    seconds = time.perf_counter() - start
    try:
        scores = [
            score_fact(
                lm, r.prompt, r.paraphrases, r.neighbourhood, r.counterfactual, r.answer
            ).measures()
            for r in records
        ]
    finally:
        handle.undo()
    result = handle.results[0]
    post = summarise([{"post": s} for s in scores], "post")
    edit = result.to_dict()
    return {
        "ES": post["efficacy"], "PS": post["paraphrase"], "NS": post["neighbourhood"],
        "S": post["score"], "facts": len(records), "seconds": seconds,
        "reached": edit["reached"], "error": edit["error"], "rho": edit["rho"],
        "z_error": edit["z_error"], "null_dims": edit.get("null_dims"),
        "null_energy": edit.get("null_energy"), "layers": edit["layers"],
    }  # fmt: skip


def main(argv: list[str]) -> int:
    from factscope.edit.evaluate import known_neighbourhood
    from factscope.edit.memit import MEMITHyperParams
    from factscope.load import load_model
    from factscope.registry import DEFAULT_MODEL
    from factscope.study.datasets import load_dataset

    flags = ("--layer", "--lambdas", "--energies", "--facts")
    values = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in flags}
    positional = [a for a in argv if not a.startswith("--") and a not in values]
    out = Path(positional[0] if positional else "docs/results/edit-lambda")
    layer = int(option(argv, "--layer", "6"))
    lambdas = [float(x) for x in option(argv, "--lambdas", "200,1000,2000,5000,20000").split(",")]
    energies = [float(x) for x in option(argv, "--energies", "0.01,0.02,0.05,0.1").split(",")]
    n_facts = int(option(argv, "--facts", "0")) or None

    lm = load_model(DEFAULT_MODEL)
    data = load_dataset("athlete_sport")
    known_ids = set(json.loads(KNOW.read_text())["known_ids"])
    known = [r for r in data.records if r.id in known_ids]
    halves = {
        "tune": [r for r in known if tuning(r.id)][:n_facts],
        "held": [r for r in known if not tuning(r.id)][:n_facts],
    }
    for half, facts in halves.items():  # neighbours: known facts this batch leaves unedited
        halves[half] = known_neighbourhood(facts, known, edited={r.id for r in facts})
    authors = MEMITHyperParams()
    settings: dict[str, tuple[str, Any]] = {}
    for lam in dict.fromkeys([*lambdas, authors.mom2_update_weight]):
        hp = dataclasses.replace(authors, mom2_update_weight=lam)
        settings[f"memit λ={lam:g}"] = ("memit", hp)
    settings[f"alphaedit threshold={authors.nullspace_threshold:g}"] = ("alphaedit", authors)
    for energy in energies:
        settings[f"alphaedit energy={energy:g}"] = (
            "alphaedit", dataclasses.replace(authors, nullspace_energy=energy),
        )  # fmt: skip
    result: dict[str, Any] = {
        "model": lm.name, "dataset": "athlete_sport", "layer": layer,
        "split": {k: [r.id for r in v] for k, v in halves.items()},
        "neighbours": "known facts with the same answer, not edited in the batch",
        "authors": {"memit": f"memit λ={authors.mom2_update_weight:g}",
                    "alphaedit": f"alphaedit threshold={authors.nullspace_threshold:g}"},
        "tune": {}, "held": {}, "chosen": {},
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "result.json"
    earlier = json.loads(saved.read_text()) if saved.exists() else {}
    same = ("split", "layer", "neighbours")
    if all(earlier.get(k) == result[k] for k in same):
        for half in ("tune", "held"):  # resume: runs already made are kept, not repeated
            result[half] = {k: v for k, v in earlier[half].items() if k in settings}

    def save() -> None:
        (out / "result.json").write_text(json.dumps(result, indent=1))

    for name, (method, hp) in settings.items():
        if name in result["tune"]:
            continue
        row = run_batch(lm, halves["tune"], layer, hp, method)
        result["tune"][name] = row
        seconds = row["seconds"]
        print(f"tune  {name}: ES {row['ES']:.1f} PS {row['PS']:.1f} NS {row['NS']:.1f} "
              f"S {row['S']:.1f} ({row['facts']} facts, {seconds:.0f} s)", flush=True)  # fmt: skip
        save()
    for method in ("memit", "alphaedit"):
        tried = {k: v for k, v in result["tune"].items() if settings[k][0] == method}
        best = max(tried, key=lambda k: (tried[k]["S"], tried[k]["NS"]))  # ties: the kinder
        result["chosen"][method] = best
        for name in dict.fromkeys([best, result["authors"][method]]):
            if name in result["held"]:
                continue
            row = run_batch(lm, halves["held"], layer, settings[name][1], method)
            result["held"][name] = row
            print(f"held  {name}: ES {row['ES']:.1f} PS {row['PS']:.1f} NS {row['NS']:.1f} "
                  f"S {row['S']:.1f} ({row['facts']} facts)", flush=True)  # fmt: skip
            save()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
