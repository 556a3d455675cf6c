"""The neighbour-share table of docs/edit.md from result.json (scripts/edit_neighbour_share.py).

python docs/results/edit-ns/table.py     (from the repository root)
"""

import json
from pathlib import Path

result = json.loads((Path(__file__).parent / "result.json").read_text())
KINDS = ("neighbours", "other sport", "landmarks")
print("Median over the edited facts i [quartiles]: ‖ΔW k‖ / ‖ΔW k_i‖, then the part along ΔW k_i")
print()
COLUMNS = ["run", "layer"] + [
    f"{k}: {m}" for k in ("neighbours", "other answer", "landmarks") for m in ("size", "along")
]
print("| " + " | ".join(COLUMNS) + " |")
print("|---|---|---|---|---|---|---|---|")
for name, run in result["runs"].items():
    for i, layer in enumerate(run["layers"]):
        shares = run["shares"][str(layer)]
        cells = [
            f"{q['median']:.2f} [{q['q1']:.2f}, {q['q3']:.2f}]"
            for kind in KINDS
            for q in (shares[kind], shares[f"{kind} along"])
        ]
        head = f"{name} ({run['facts']} facts)" if i == 0 else ""
        print(f"| {head} | {layer} | {' | '.join(cells)} |")
