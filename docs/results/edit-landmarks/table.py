"""The landmark table of docs/edit.md from result.json (scripts/edit_landmarks.py).

python docs/results/edit-landmarks/table.py     (from the repository root)
"""

import json
from pathlib import Path

result = json.loads((Path(__file__).parent / "result.json").read_text())
print(f"{len(result['known'])} facts, layers {result['methods'][next(iter(result['methods']))]['edit']['layers']}, "  # noqa: E501
      f"{'C = I' if result['identity_stats'] else 'self-corpus statistics'}")  # fmt: skip
print()
print("| run | λ | ES | PS | reached per layer | ρ per layer |")
print("|---|---|---|---|---|---|")
for run, m in result["methods"].items():
    hp = m["edit"]["hparams"]
    reached = ", ".join(f"{x:.2f}" for x in m["edit"]["reached"])
    rho = ", ".join(f"{x:.1f}" for x in m["edit"]["rho"])
    print(f"| {run} | {hp['mom2_update_weight']:,.0f} | {m['ES']:.1f} | {m['PS']:.1f} | "
          f"{reached} | {rho} |")  # fmt: skip
