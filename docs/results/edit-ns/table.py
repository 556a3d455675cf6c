"""The neighbour-share table of docs/edit.md from result.json (scripts/edit_neighbour_share.py).

python docs/results/edit-ns/table.py     (from the repository root)
"""

import json
from pathlib import Path

result = json.loads((Path(__file__).parent / "result.json").read_text())
print("‖ΔW k‖ / ‖ΔW k_i‖ per layer: median [quartiles] over the edited facts i")
print()
print("| run | layer | neighbours (same answer) | other answer | landmarks |")
print("|---|---|---|---|---|")
for name, run in result["runs"].items():
    for i, layer in enumerate(run["layers"]):
        cells = [
            f"{q['median']:.2f} [{q['q1']:.2f}, {q['q3']:.2f}]"
            for q in (run["shares"][str(layer)][k] for k in ("neighbours", "other sport", "landmarks"))
        ]
        head = f"{name} ({run['facts']} facts)" if i == 0 else ""
        print(f"| {head} | {layer} | {' | '.join(cells)} |")
