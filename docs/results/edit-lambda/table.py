"""The λ / null-space table of docs/edit.md from result.json (scripts/edit_lambda_sweep.py).

python docs/results/edit-lambda/table.py     (from the repository root)
"""

import json
from pathlib import Path

result = json.loads((Path(__file__).parent / "result.json").read_text())
authors, chosen = set(result["authors"].values()), set(result["chosen"].values())
sizes = {half: len(ids) for half, ids in result["split"].items()}
layers = next(iter(result["tune"].values()))["layers"]
print(f"{result['model']}, {result['dataset']} known facts: tuning half {sizes['tune']}, "
      f"held-out half {sizes['held']}; layers {layers}")  # fmt: skip
print()
print("| half | setting | | ES | PS | NS | S | reached per layer | null dims per layer |")
print("|---|---|---|---|---|---|---|---|---|")
for half in ("tune", "held"):
    for name, row in result[half].items():
        mark = ", ".join(
            [w for w, s in (("authors'", authors), ("chosen", chosen)) if name in s]
        )
        reached = ", ".join(f"{x:.2f}" for x in row["reached"])
        null = ", ".join(str(v) for v in (row["null_dims"] or {}).values()) or "–"
        print(f"| {half} | {name} | {mark} | {row['ES']:.1f} | {row['PS']:.1f} | "
              f"{row['NS']:.1f} | {row['S']:.1f} | {reached} | {null} |")  # fmt: skip
