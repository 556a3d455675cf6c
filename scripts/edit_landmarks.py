"""MEMIT and AlphaEdit on a dozen landmark -> city facts that are not in the packaged data.

Usage: python scripts/edit_landmarks.py [OUT_DIR] [--identity-stats] [--layer L]
           [--runs memit,alphaedit,alphaedit-energy,memit-first-inversion,memit@2000,...]

memit@LAMBDA is MEMIT with `mom2_update_weight` LAMBDA (the authors' 20,000 is the default).
memit-tuned and alphaedit-tuned use gemma-3-270m's measured defaults (`memit_hparams`, from
the λ sweep of scripts/edit_lambda_sweep.py), which `factscope edit` and `edit-eval` use.

alphaedit uses the authors' absolute null-space threshold 2e-2; alphaedit-energy the null space
holding 2% of tr C (`--nullspace-energy 0.02`); memit-first-inversion is MEMIT with the
post-norm inversion this project used before (y' ∝ (o + r)/g, `first_inversion` below), for
comparison on the same facts.

For each landmark the model names its city top-1 (the facts it knows), the batch moves every
one to another known landmark's city. ES: p(new) > p(old) on the prompt; PS: on the
paraphrases; both in percent, as CounterFact. The result also holds, per layer, the edit's
‖R‖ (z_error), ρ and the share of each wanted output change reached (edit/memit.py), and it
is written to OUT_DIR/result.json (default docs/results/edit-landmarks); runs already there
(same facts, layer and statistics) are kept unless named again.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

LANDMARKS = [
    ("The Eiffel Tower", "Paris"), ("The Colosseum", "Rome"), ("Big Ben", "London"),
    ("The Brandenburg Gate", "Berlin"), ("The Sagrada Familia", "Barcelona"),
    ("The Golden Gate Bridge", "San Francisco"), ("The Kremlin", "Moscow"),
    ("The Acropolis", "Athens"), ("The Forbidden City", "Beijing"),
    ("The Space Needle", "Seattle"), ("The Sydney Opera House", "Sydney"),
    ("The CN Tower", "Toronto"), ("The Burj Khalifa", "Dubai"), ("The Taj Mahal", "Agra"),
    ("The Statue of Liberty", "New York"), ("The Rialto Bridge", "Venice"),
    ("The Little Mermaid statue", "Copenhagen"), ("The Atomium", "Brussels"),
]  # fmt: skip
PROMPT = "{} is located in the city of"
PARAPHRASES = ("{} can be found in the city of", "You can visit {} in the city of")


def first_inversion(model, layer, y, o, r):  # type: ignore[no-untyped-def]
    """The replaced map: y' = rms(y) · ((o + r)/g) / rms((o + r)/g) (dead coordinates kept)."""
    import torch

    from factscope.edit.handle import mlp_of

    g = mlp_of(model, layer).post_norm.weight.detach().double()
    y, o, r = y.double(), o.double(), r.double()

    def rms(x: torch.Tensor) -> torch.Tensor:
        return x.pow(2).mean(-1, keepdim=True).sqrt()

    dead = g.abs() <= 1e-9 * g.abs().max()
    want = torch.where(dead, y / rms(y), (o + r) / torch.where(dead, torch.ones_like(g), g))
    return rms(y) * want / rms(want) - y, rms(want)[:, 0]


def main(argv: list[str]) -> int:
    from factscope.edit import EditRequest
    from factscope.edit.measure import answer_probabilities
    from factscope.edit.memit import MEMITHyperParams, apply_memit, memit_hparams
    from factscope.load import load_model
    from factscope.predict import predict_next

    values = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--runs", "--layer")}
    positional = [a for a in argv if not a.startswith("--") and a not in values]
    out = Path(positional[0] if positional else "docs/results/edit-landmarks")
    identity = "--identity-stats" in argv
    layer = int(argv[argv.index("--layer") + 1]) if "--layer" in argv else 6
    lm = load_model("gemma-3-270m")
    known = []
    for subject, city in LANDMARKS:
        top = predict_next(lm, PROMPT.format(subject), top_k=1).top[0].token.strip()
        if city.startswith(top) and top:
            known.append((subject, city))
    cities = [c for _, c in known]
    requests = [
        EditRequest(PROMPT.format(s), s, cities[(i + 1) % len(cities)], c)
        for i, (s, c) in enumerate(known)
    ]
    result: dict[str, object] = {"model": lm.name, "layer": layer, "identity_stats": identity,
                                 "known": [s for s, _ in known], "methods": {}}  # fmt: skip
    saved = out / "result.json"
    earlier = json.loads(saved.read_text()) if saved.exists() else {}
    if all(earlier.get(k) == result[k] for k in ("model", "layer", "identity_stats", "known")):
        result["methods"] = earlier["methods"]  # kept; the runs named below are made again
    import factscope.edit.memit as memit_module

    runs = argv[argv.index("--runs") + 1].split(",") if "--runs" in argv else ["memit", "alphaedit"]
    new_map = memit_module._down_proj_targets
    # z (each fact's target residual) depends on the facts and the v* settings only, which
    # every run shares: the disk cache of edit/target.py optimises it once for all runs.
    for run in runs:
        method = "alphaedit" if run.startswith("alphaedit") else "memit"
        hp = MEMITHyperParams(
            mom2_adjustment=not identity,
            nullspace_energy=0.02 if run == "alphaedit-energy" else None,
        )
        if run.endswith("-tuned"):
            hp = memit_hparams(lm.name, mom2_adjustment=not identity)
        if "@" in run:
            hp = dataclasses.replace(hp, mom2_update_weight=float(run.split("@")[1]))
        memit_module._down_proj_targets = (
            first_inversion if run == "memit-first-inversion" else new_map
        )
        start = time.perf_counter()
        handle = apply_memit(lm, requests, layer, hp, method=method, progress=True)
        seconds = time.perf_counter() - start
        memit_module._down_proj_targets = new_map
        try:
            rows = []
            for r in requests:
                prompts = [r.prompt, *(p.format(r.subject) for p in PARAPHRASES)]
                probs = answer_probabilities(lm, prompts, [r.new, r.old or ""])
                rows.append({"subject": r.subject, "new": r.new, "old": r.old, "probs": probs})
        finally:
            handle.undo()
        es = 100 * sum(row["probs"][0][0] > row["probs"][0][1] for row in rows) / len(rows)
        ps_hits = [p[0] > p[1] for row in rows for p in row["probs"][1:]]
        ps = 100 * sum(ps_hits) / len(ps_hits)
        edit = handle.results[0].to_dict()
        result["methods"][run] = {  # type: ignore[index]
            "ES": es, "PS": ps, "seconds": seconds, "rows": rows, "edit": edit,
            "facts": [handle.results[0].fact_report(i) for i in range(len(requests))],
        }  # fmt: skip
        print(f"{run}: ES {es:.1f} PS {ps:.1f} ({len(rows)} facts, {seconds:.0f} s); "
              f"reached {[round(x, 2) for x in edit['reached']]}, "
              f"rho {[round(x, 2) for x in edit['rho']]}")  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)  # after every run: a killed script keeps them
        (out / "result.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
