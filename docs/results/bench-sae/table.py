"""The SAE training-throughput table of docs/benchmarks.md from result.json
(`python benchmarks/sae.py --threads 1 --out docs/results/bench-sae/result.json`).

python docs/results/bench-sae/table.py     (from the repository root)
"""

import json
from pathlib import Path

r = json.loads((Path(__file__).parent / "result.json").read_text())
print(f"{r['cores']} cores, torch {r['torch']} ({r['threads']} thread), float32 matmul "
      f"{r['gflops']:.0f} GFLOP/s, memory read {r['gbps']:.1f} GB/s, load average "
      f"{r['load_average']:.2f}; TopK d_in {r['d_in']}, {r['d_sae']:,} latents, k {r['k']}, "
      f"batches of {r['batch']:,} tokens, {r['steps']} steps x {r['rounds']} rounds")  # fmt: skip
print()
print("| trainer | tokens/s (median of rounds) | floor | time / floor |")
print("|---|---|---|---|")
tokens = r["steps"] * r["batch"]
for name, rate in r["tokens_per_second"].items():
    floor = r["floor_seconds"][name]
    ratio = tokens / rate / floor
    print(f"| {name} | {rate:,.0f} | {tokens / floor:,.0f} tokens/s | {ratio:.1f}x |")
print()
print(f"factscope / plain PyTorch: **{r['ratio']:.2f}x** (target ≥ 1.0x)")
