"""Load and forward-pass speed: factscope vs Hugging Face transformers on the same GGUF.

    python benchmarks/load_and_forward.py [--model gemma-3-270m] [--skip-reference]

Measured in one process on this machine:
- cold load: first ever load (parse, dequantize, build tokenizer, write our cache);
  transformers' `from_pretrained(gguf_file=...)` plus its tokenizer.
- warm load: ours from the cache (memory-mapped float weights).
- forward: median latency for a ~10-token prompt; ours unembeds only the last position
  (all a next-token prediction needs), transformers unembeds every position.

The floor, for reference: Gemma 3 270M's body costs ~0.2 GFLOP per token and its
262,144 x 640 unembedding 0.34 GFLOP (671 MB of float32 read) per position that needs
logits; this machine does ~27 GFLOP/s and reads ~9 GB/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import torch

from machine import machine_report, median_time

PROMPT = "Michael Jordan plays the sport of basketball and"


def machine_speed() -> tuple[float, float]:
    """This machine's float32 matrix-product rate (GFLOP/s) and memory read rate (GB/s)."""
    floors = machine_report()
    return floors.gflops, floors.gbps


def forward_work(cfg: Any, n_tokens: int, n_unembedded: int) -> tuple[float, float]:
    """(GFLOP, GB of float32 weights read) of one forward: the body's matrix products for
    every token plus the unembedding of `n_unembedded` positions."""
    from factscope.read.params import count_params

    counts = count_params(cfg, "").components
    body = counts["attention"] + counts["mlp"]
    unembed = cfg.vocab_size * cfg.d_model
    flops = 2 * n_tokens * body + 2 * n_unembedded * unembed
    return flops / 1e9, 4 * (body + unembed) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    os.environ["FACTSCOPE_CACHE"] = tempfile.mkdtemp(prefix="factscope-bench-")
    from factscope.load import load_model, wait_for_cache_writes

    start = time.perf_counter()
    lm = load_model(args.model)
    cold = time.perf_counter() - start
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in lm.timings.items())
    print(f"ours  cold load   {cold:7.2f} s   ({stages})")
    del lm
    print(f"      (cache written in the background: {wait_for_cache_writes():.2f} s more)")
    start = time.perf_counter()
    lm = load_model(args.model)
    warm = time.perf_counter() - start
    print(f"ours  warm load   {warm:7.2f} s")
    tokens = lm.encode(PROMPT)
    print(f"prompt: {tokens.shape[1]} tokens")
    with torch.inference_mode():
        ours_fwd = median_time(lambda: lm.model(tokens, logits_at="last"))
        ours_full = median_time(lambda: lm.model(tokens))
    print(
        f"ours  forward     {ours_fwd * 1000:7.1f} ms (last position) "
        f"{ours_full * 1000:7.1f} ms (all positions)"
    )
    if args.skip_reference:
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    path = lm.source
    start = time.perf_counter()
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()
    transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    ref_cold = time.perf_counter() - start
    print(f"hf    cold load   {ref_cold:7.2f} s")
    with torch.inference_mode():
        ref_fwd = median_time(lambda: ref(tokens))
    print(f"hf    forward     {ref_fwd * 1000:7.1f} ms")
    print()
    print(f"cold load  ratio (hf / ours): {ref_cold / cold:6.1f}x   target >= 20x, <= 6 s")
    print(f"warm load  ours: {warm:.2f} s                 target < 1 s")
    print(f"forward    ratio (hf / ours): {ref_fwd / ours_fwd:6.1f}x   target >= 2x")
    gflops, gbps = machine_speed()
    T = tokens.shape[1]
    print(f"\nfloors on this machine: {gflops:.0f} GFLOP/s float32 matmul, {gbps:.1f} GB/s read")
    for name, positions, seconds in (("ours", 1, ours_fwd), ("hf", T, ref_fwd)):
        work, weights = forward_work(lm.cfg, T, positions)
        floor = max(work / gflops, weights / gbps)
        print(
            f"  {name:<4} forward: {work:.2f} GFLOP, {weights:.2f} GB of weights -> floor "
            f"{floor * 1000:.0f} ms; measured {seconds * 1000:.0f} ms ({seconds / floor:.1f}x)"
        )


if __name__ == "__main__":
    main()
