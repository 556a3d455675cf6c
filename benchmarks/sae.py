"""Training throughput of a TopK SAE: factscope's trainer against a plain PyTorch loop.

Both do the same update on the same batches (d_in 640 as gemma-3-270m's residual stream,
2,048 latents, k = 64, batches of 1,024 tokens): encode, top-k, decode, normalised MSE,
backward, Adam, decoder rows back to unit norm. factscope's step also removes the
gradient's part along each decoder row, keeps the dead-latent counters and the AuxK loss
(no latent is dead in a run this short, so AuxK costs nothing here), and checkpoints once
at the end. Rounds alternate the two so a busy machine slows both alike; the median
tokens/s of each is printed with the ratio (target >= 1.0x) and two floors of one step
(N tokens, d = d_in, S = d_sae):

    dense (the plain loop's work): 12 N d S FLOPs, encoder forward, its weight and input
        gradients, decoder forward and both its gradients, all over (N, S) latents;
    sparse (factscope's work): 2 N d S for the encoder forward that chooses the latents,
        then 10 N k d for the chosen pre-activations' two gradients, the decoder and its
        two gradients; plus the bytes of Adam over the 2 d S weights (read p, g, m, v,
        write p, m, v: 28 bytes a weight) and of the unit-norm projection (~4 passes
        over W_dec).

Each floor is the larger of its FLOPs at this machine's float32 matmul rate and its bytes
at its memory rate. On a machine shared with other jobs, `--threads 1` avoids two-thread
OpenMP regions that wait on a busy core and make timings swing several-fold.

    python benchmarks/sae.py [--steps 20] [--rounds 3] [--threads N] [--out FILE.json]

`--out` also writes the numbers as JSON (docs/results/bench-sae/result.json is one such run,
rendered into docs/benchmarks.md by its table.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from factscope.features.activations import MemoryStore, ShuffledBatches
from factscope.features.sae import SAEConfig
from factscope.features.train import TrainConfig, initial_dictionary, train_dictionary
from machine import machine_report

D_IN, D_SAE, K, BATCH = 640, 2048, 64, 1024


def plain_loop(data: torch.Tensor, steps: int) -> float:
    """The update written out by hand; returns seconds."""
    gen = torch.Generator().manual_seed(0)
    w_dec = torch.randn(D_SAE, D_IN, generator=gen)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    w_dec.requires_grad_(True)
    w_enc = w_dec.detach().T.clone().requires_grad_(True)
    b_enc = torch.zeros(D_SAE, requires_grad=True)
    b_dec = data[:BATCH].mean(0).clone().requires_grad_(True)
    opt = torch.optim.Adam([w_enc, b_enc, w_dec, b_dec], lr=1e-3)
    start = time.perf_counter()
    for step in range(steps):
        x = data[(step * BATCH) % (data.shape[0] - BATCH) :][:BATCH]
        pre = (x - b_dec) @ w_enc + b_enc
        values, indices = pre.topk(K, dim=-1)
        latents = torch.zeros_like(pre).scatter(-1, indices, values.relu())
        recon = latents @ w_dec + b_dec
        loss = (x - recon).pow(2).sum(1).mean() / (x - x.mean(0)).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            w_dec /= w_dec.norm(dim=1, keepdim=True)
    return time.perf_counter() - start


def ours(data: torch.Tensor, steps: int) -> float:
    cfg = SAEConfig(d_in=D_IN, d_sae=D_SAE, kind="topk", k=K)
    tc = TrainConfig(n_steps=steps, lr=1e-3, warmup_steps=1, checkpoint_every=steps)
    batches = ShuffledBatches(MemoryStore({"resid": data}, data.shape[0]), ["resid"], BATCH)
    initial_dictionary(cfg, batches, tc)  # the first group is shuffled outside the timing
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_dictionary(cfg, tc, batches, Path(tmp), progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    floors = machine_report("sae")
    data = torch.randn(BATCH * (args.steps + 1), D_IN) * 3 + 1
    times: dict[str, list[float]] = {"factscope": [], "plain PyTorch": []}
    for _ in range(args.rounds):
        times["factscope"].append(ours(data, args.steps))
        times["plain PyTorch"].append(plain_loop(data, args.steps))
    tokens = args.steps * BATCH
    rate = {name: tokens / statistics.median(t) for name, t in times.items()}
    dense_gflop = 12 * D_IN * D_SAE * tokens / 1e9
    sparse_gflop = (2 * D_IN * D_SAE + 10 * K * D_IN) * tokens / 1e9
    step_gbytes = (28 * 2 * D_IN * D_SAE + 4 * 2 * 4 * D_SAE * D_IN) / 1e9
    gbytes = step_gbytes * args.steps
    floor = {
        "plain PyTorch": floors.seconds(gflop=dense_gflop, gbytes=gbytes),
        "factscope": floors.seconds(gflop=sparse_gflop, gbytes=gbytes),
    }
    for name, r in rate.items():
        print(f"{name:>14}: {r:,.0f} tokens/s ({tokens / r / floor[name]:.1f}x its floor's time)")
    ratio = rate["factscope"] / rate["plain PyTorch"]
    threads = torch.get_num_threads()
    print(f"ratio factscope / plain: {ratio:.2f}x (target >= 1.0x); torch threads {threads}")
    print(
        f"dense floor: 12 x {D_IN} x {D_SAE} x {tokens:,} = {dense_gflop:.0f} GFLOP at "
        f"{floors.gflops:.0f} GFLOP/s = {floor['plain PyTorch']:.2f} s, "
        f"{tokens / floor['plain PyTorch']:,.0f} tokens/s"
    )
    print(
        f"sparse floor: (2 x {D_IN} x {D_SAE} + 10 x {K} x {D_IN}) x {tokens:,} = "
        f"{sparse_gflop:.0f} GFLOP, {gbytes:.2f} GB of Adam and projection traffic at "
        f"{floors.gbps:.1f} GB/s = {floor['factscope']:.2f} s, "
        f"{tokens / floor['factscope']:,.0f} tokens/s"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "d_in": D_IN, "d_sae": D_SAE, "k": K, "batch": BATCH, "steps": args.steps,
            "rounds": args.rounds, "threads": threads, "seconds": times,
            "tokens_per_second": rate, "ratio": ratio, "floor_seconds": floor,
            "dense_gflop": dense_gflop, "sparse_gflop": sparse_gflop, "gbytes": gbytes,
            "gflops": floors.gflops, "gbps": floors.gbps, "load_average": floors.load,
            "cores": floors.cores, "torch": torch.__version__,
        }, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
