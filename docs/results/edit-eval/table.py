"""The evaluation table of docs/edit.md from the run folders' summary.json files.

python docs/results/edit-eval/table.py     (from the repository root)
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
KEYS = ("efficacy", "paraphrase", "neighbourhood", "score", "efficacy_magnitude",
        "paraphrase_magnitude", "neighbourhood_magnitude")  # fmt: skip
print("| run | facts | edited | | ES | PS | NS | S | EM | PM | NM | GE | ppl |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for summary in sorted(HERE.glob("*/summary.json")):
    d = json.loads(summary.read_text())
    how = "sequentially" if d["sequential"] else "alone" if d["method"] == "rome" else "in a batch"
    for when in ("pre", "post"):
        m = d[when]
        ge, ppl = d.get(f"fluency_{when}"), d.get(f"perplexity_{when}")
        cells = [f"{m[k]:.1f}" for k in KEYS]
        print(
            f"| {summary.parent.name if when == 'pre' else ''} | "
            f"{d['n_facts'] if when == 'pre' else ''} | {how if when == 'pre' else ''} | {when} | "
            f"{' | '.join(cells)} | "
            f"{'' if ge is None else f'{ge:.2f}'} | {'' if ppl is None else f'{ppl:.2f}'} |"
        )
