"""`factscope neurons` with its ablation curve: time and forward passes, against the floor
and against one plain forward per ablated row.

    python benchmarks/neurons.py [--model gemma-3-270m] [--max-k 200] [--draws 5] [--sample 16]

The job: "Michael Jordan plays the sport of" (subject "Michael Jordan", answer
" basketball"), every MLP neuron scored at the last subject token (gradient x (activation -
mean)) and at the final token (direct logit contribution), the top 10 read up close (AND
test with 15 name variants, tokens written and read, each ablated alone), and ablation
curves (zero and mean, both positions, the default k grid up to --max-k, --draws random
draws per k).

- ours: `find_neurons`, whose ablation rows go through batched forwards that recompute only
  the tokens from the ablated position on (the prefix's keys/values computed once) and
  unembed only the final position. It counts its forward passes.
- baseline: the plain way, one full forward of the whole prompt per ablated row (logits at
  the final position only, so the baseline is not charged for a full-sequence
  unembedding). Timed on `--sample` rows and extrapolated to the number of rows ours ran.
- floor: the FLOPs ours must do (2 x block parameters per computed token, 2 x d_model x
  vocab per unembedded row) at this machine's matmul rate.

Prints time, forward passes (batched calls, sequences, token positions), ratios. No target
is asserted; the ratio to the floor says how much room is left.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from factscope.hooks import hooks
from factscope.load import load_model
from factscope.read.ablation import neuron_set, random_like
from factscope.read.neurons import find_neurons
from machine import machine_report, median_time

PROMPT = "Michael Jordan plays the sport of"
SUBJECT = "Michael Jordan"
ANSWER = " basketball"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--max-k", type=int, default=200)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--sample", type=int, default=16, help="baseline rows timed")
    args = parser.parse_args()

    floors = machine_report("neurons")
    lm = load_model(args.model)
    model, cfg = lm.model, lm.cfg
    start = time.perf_counter()
    result = find_neurons(lm, PROMPT, SUBJECT, ANSWER, max_k=args.max_k, draws=args.draws)
    ours = time.perf_counter() - start
    fp = result.forward_passes
    block_params = sum(p.numel() for p in model.blocks.parameters())
    gflop = (2 * block_params * fp["tokens"] + 2 * cfg.d_model * cfg.vocab_size * fp["rows"]) / 1e9
    floor = floors.seconds(gflop)
    n_ks = len(result.ablation[0].ks)
    print(
        f"ours: {ours:.1f} s for {len(result.ablation)} curves x {n_ks} k values x "
        f"(1 top + {args.draws} random) rows, plus scores and details"
    )
    print(
        f"forward passes: {fp['calls']} batched calls, {fp['rows']} sequences, "
        f"{fp['tokens']} token positions, {fp['backward']} backward"
    )
    print(f"floor: {gflop:.0f} GFLOP -> {floor:.1f} s; ours / floor = {ours / floor:.1f}x")

    # baseline: one full forward per ablated row, on a sample of rows
    tokens = torch.tensor([lm.tokenizer.encode(PROMPT)])
    position = result.positions["final"]
    ranking = [(n.layer, n.index) for n in result.top["final"]]
    generator = torch.Generator().manual_seed(0)
    rows = [neuron_set(random_like(ranking, cfg.d_mlp, generator)) for _ in range(args.sample)]

    def one_row(row: dict[int, torch.Tensor]) -> None:
        def ablate(x: torch.Tensor, site: str) -> torch.Tensor:
            x = x.clone()
            x[:, position, row[int(site.split(".")[1])]] = 0
            return x

        with torch.no_grad(), hooks(model, {f"blocks.{layer}.mlp.post": ablate for layer in row}):
            model(tokens, logits_at="last")

    per_row = median_time(lambda: [one_row(r) for r in rows], repeats=3) / len(rows)
    baseline = per_row * fp["rows"]
    print(
        f"baseline (one full forward per row): {per_row * 1e3:.0f} ms/row x {fp['rows']} rows "
        f"= {baseline:.1f} s (extrapolated from {len(rows)} rows); baseline / ours = "
        f"{baseline / ours:.1f}x"
    )
    print(
        f"load average when measured: {floors.load:.2f} on {floors.cores} cores "
        f"(threads {floors.threads})"
    )


if __name__ == "__main__":
    main()
