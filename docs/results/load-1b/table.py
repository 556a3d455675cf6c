"""The 1B-class load table of docs/models.md from result.json (benchmarks/load_1b.py).

python docs/results/load-1b/table.py     (from the repository root)
"""

import json
from pathlib import Path

result = json.loads((Path(__file__).parent / "result.json").read_text())
machine, cfg, targets = result["machine"], result["config"], result["targets"]
print(f"`{result['command']}`: Llama 3.2 1B's config ({cfg['num_hidden_layers']} layers, "
      f"d_model {cfg['hidden_size']:,}, vocabulary {cfg['vocab_size']:,}), random weights "
      f"saved as {result['shards']} bfloat16 shards ({result['checkpoint_gb']:.2f} GB); "
      f"{machine['cores']} cores, {machine['threads']} torch threads, floors "
      f"{machine['gflops']:.0f} GFLOP/s float32 matmul and {machine['gbps']:.1f} GB/s memory "
      f"read, load average {machine['load_average']:.2f} when it started.")  # fmt: skip
print()
print(
    "| dtype | library | load (s) | next token (ms) | peak RSS (GB) | peak / weights "
    "| load average |"
)
print("|---|---|---|---|---|---|---|")
for run in result["runs"]:
    weights = run["weight_bytes"] / 1e9
    print(f"| {run['dtype']} | {run['library']} | {run['load_s']:.1f} | "
          f"{run['latency_s'] * 1000:,.0f} | {run['peak_rss_gb']:.2f} | "
          f"{run['peak_rss_gb'] / weights:.2f}x of {weights:.2f} GB | "
          f"{run['load_average']:.2f} |")  # fmt: skip
print()
print(
    "| dtype | load: transformers / ours | next token: transformers / ours | ours / floor "
    "| peak / weights: ours, transformers' | logits vs transformers |"
)
print("|---|---|---|---|---|---|")
for dtype, s in result["summary"].items():
    a = result["agreement"][dtype]
    top1 = "same top-1" if a["top1_equal"] else "top-1 differs"
    print(f"| {dtype} | {s['load_ratio']:.2f}x | {s['latency_ratio']:.2f}x | "
          f"{s['latency_vs_floor']:.1f}x of {s['floor_s'] * 1000:,.0f} ms | "
          f"{s['peak_over_weights']:.2f}x, {s['hf_peak_over_weights']:.2f}x | "
          f"{top1}, top-10 overlap {a['top10_overlap']}/10, max diff / max logit "
          f"{a['max_rel_error']:.1e} |")  # fmt: skip
print()
print(
    f"Targets (ratios): load and next token at least {targets['load_ratio']:.1f}x and "
    f"{targets['latency_ratio']:.1f}x transformers' (ours no slower), peak RSS at most "
    f"{targets['peak_over_weights']:.2f}x the weights in the dtype loaded. The floor is "
    "the weights' bytes at the memory rate: a 10-token forward reads every weight once."
)
