"""The video's almost-orthogonal experiment (10,000 vectors in 100 dimensions, 250 Adam
steps) against its FLOP floor, and against the scene code's own autograd formulation.

    python benchmarks/jl.py [--n 10000] [--dim 100] [--steps 250] [--timed-steps 8] [--full]

Floor: one step must form the Gram matrix's upper half (N^2 d FLOPs, it is symmetric) and
the gradient product S V with the dense N x N sign matrix S (2 N^2 d): 3 N^2 d FLOPs, 30
GFLOP per step and 7.5 TFLOP for the run at N = 10,000, d = 100. The floor time is that at
the machine's measured float32 matrix-product rate (benchmarks/machine.py). The Adam
update and the O(N^2) elementwise work (threshold, sign, loss) are not in the floor.

By default `--timed-steps` steps are timed (median per step over several repeats of the
fused loss-and-gradient plus one Adam update) and the 250-step time is extrapolated from
that; `--full` runs all 250 steps of `run_jl` once instead. The printout says which.

Baseline: the scene code as written (autograd over the full N x N Gram matrix, 400 MB at
N = 10,000, plus the identity matrix and the |G - I| temporaries), timed for a few steps at
the same N when memory allows (`--skip-baseline` to skip).
"""

from __future__ import annotations

import argparse
import time

import torch

from factscope.read.angles import random_directions
from factscope.read.superposition import (
    jl_step_flops,
    optimize_directions,
    run_jl,
    video_loss_and_grad,
)
from machine import machine_report, median_time


def scene_code_step(v: torch.Tensor, eye: torch.Tensor, adam: torch.optim.Optimizer) -> None:
    """One step of 3b1b's almost_orthogonal.py as written (autograd, full Gram matrix)."""
    adam.zero_grad()
    diff = v @ v.T - eye
    loss = (diff.abs() - 0.01).relu().sum() + v.shape[0] * diff.diag().pow(2).sum()
    loss.backward()
    adam.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--timed-steps", type=int, default=5, help="steps timed per repeat")
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--full", action="store_true", help="run every step, no extrapolation")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    floors = machine_report("jl")
    n, d = args.n, args.dim
    step_gflop = jl_step_flops(n, d) / 1e9
    floor_step = floors.seconds(gflop=step_gflop)
    print(
        f"job: {n:,} vectors in {d} dims, {args.steps} Adam steps; floor {step_gflop:.1f} GFLOP "
        f"per step (3 N^2 d) = {floor_step:.3f} s/step, {floor_step * args.steps:.1f} s per run"
    )

    if args.full:
        start = time.perf_counter()
        result = run_jl(n, d, args.steps, block=args.block)
        seconds = time.perf_counter() - start
        per_step = result.seconds / max(1, args.steps)
        print(f"ours, full run (incl. angle statistics): {seconds:.1f} s; optimiser "
              f"{result.seconds:.1f} s = {per_step:.3f} s/step")  # fmt: skip
    else:
        v = random_directions(n, d, seed=0)
        per_step = (
            median_time(
                lambda: optimize_directions(v, args.timed_steps, block=args.block), repeats=3
            )
            / args.timed_steps
        )
        grad_only = median_time(lambda: video_loss_and_grad(v, 0.01, args.block), repeats=3)
        print(f"ours: {per_step:.3f} s/step (median of 3 runs of {args.timed_steps} steps; "
              f"loss and gradient alone {grad_only:.3f} s); {args.steps} steps extrapolated: "
              f"{per_step * args.steps:.1f} s")  # fmt: skip
    ratio = per_step / floor_step
    print(f"ratio to the FLOP floor: {ratio:.2f}x (target <= 2x)"
          f"{'  [machine busy: see the warning above]' if floors.busy else ''}")  # fmt: skip
    print(f"effective rate: {step_gflop / per_step:.1f} GFLOP/s of {floors.gflops:.1f}")

    if args.skip_baseline:
        return
    need_gb = 4 * n * n * 4 / 1e9  # G, I, diff, |diff| and its gradient, roughly
    try:
        v = random_directions(n, d, seed=0).requires_grad_(True)
        eye = torch.eye(n)
        adam = torch.optim.Adam([v], lr=0.01)
        steps = 2
        scene = median_time(lambda: scene_code_step(v, eye, adam), repeats=steps, warmup=1)
        print(f"baseline (scene code, autograd, ~{need_gb:.1f} GB of N x N temporaries): "
              f"{scene:.3f} s/step = {scene / floor_step:.2f}x floor; ours is "
              f"{scene / per_step:.2f}x faster")  # fmt: skip
    except RuntimeError as error:  # out of memory on a small machine
        print(f"baseline skipped: {error}"[:200])


if __name__ == "__main__":
    main()
