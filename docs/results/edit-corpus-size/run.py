"""How ROME's edits change with the statistics C = E[k kᵀ]: C = I, and C from the first 10,000,
30,000 and 100,000 tokens of gemma-3-270m's own corpus ("self"), on the first N known
athletes, at one layer. Resumable (one edit-eval run folder per C).

    python docs/results/edit-corpus-size/run.py [N] [LAYER]     (from the repository root)

Writes docs/results/edit-corpus-size/summary.json: per C, ES/PS/NS/S and magnitudes."""

import json
import sys
from pathlib import Path

from factscope.edit import ROMEHyperParams
from factscope.edit.evaluate import known_neighbourhood, run_edit_eval
from factscope.edit.stats import identity_stats, layer_stats
from factscope.load import load_model
from factscope.study.know import known_facts

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20
LAYER = int(sys.argv[2]) if len(sys.argv) > 2 else 6
HERE = Path("docs/results/edit-corpus-size")

lm = load_model("gemma-3-270m")
known = known_facts(lm, "athlete_sport", Path("runs/know-athletes"))
facts = known_neighbourhood(known[:N], known)  # as edit-eval: neighbours the model knows
out = {}
for tokens in (0, 10_000, 30_000, 100_000):
    name = "identity" if tokens == 0 else f"self-{tokens}"
    if tokens:
        stats = layer_stats(lm.model, lm.tokenizer, [LAYER], "self", tokens, min_tokens=0)
    else:
        stats = {LAYER: identity_stats(lm.model, LAYER)}
    hp = ROMEHyperParams(layer=LAYER, stats_tokens=tokens, mom2_adjustment=bool(tokens))
    _, summary = run_edit_eval(
        lm, facts, Path("runs/edit-corpus-size") / name, "rome", LAYER, hparams=hp, stats=stats,
        fluency_tokens=0, drift_documents=0, meta={"model": lm.name, "dataset": "athlete_sport"},
    )  # fmt: skip
    out[name] = {"stats_tokens": tokens, **summary.to_dict()}
    print(name, {k: round(v, 1) for k, v in summary.post.items()}, flush=True)
(HERE / "summary.json").write_text(json.dumps(out, indent=1) + "\n")
