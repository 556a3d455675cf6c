"""Training throughput of a TopK SAE: factscope's trainer against a plain PyTorch loop.

Both do the same update on the same batches (d_in 640 as gemma-3-270m's residual stream,
2,048 latents, k = 64, batches of 1,024 tokens): encode, top-k, decode, normalised MSE,
backward, Adam, decoder rows back to unit norm. factscope's step also removes the
gradient's part along each decoder row, keeps the dead-latent counters and the AuxK loss
(no latent is dead in a run this short, so AuxK costs nothing here), and checkpoints once
at the end. Rounds alternate the two so a busy machine slows both alike; the median
tokens/s of each is printed with the ratio (target >= 1.0x) and the FLOP floor: 12 x d_in x
d_sae FLOPs a token for the dense products (encoder forward and weight gradient, decoder
forward, both decoder gradients) at this machine's float32 matmul rate.

    python benchmarks/sae.py [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    floors = machine_report("sae")
    data = torch.randn(BATCH * (args.steps + 1), D_IN) * 3 + 1
    times: dict[str, list[float]] = {"factscope": [], "plain PyTorch": []}
    for _ in range(args.rounds):
        times["factscope"].append(ours(data, args.steps))
        times["plain PyTorch"].append(plain_loop(data, args.steps))
    tokens = args.steps * BATCH
    rate = {name: tokens / statistics.median(t) for name, t in times.items()}
    gflop = 12 * D_IN * D_SAE * tokens / 1e9
    floor = floors.seconds(gflop=gflop)
    for name, r in rate.items():
        print(f"{name:>14}: {r:,.0f} tokens/s ({tokens / r / floor:.1f}x the FLOP floor's time)")
    ratio = rate["factscope"] / rate["plain PyTorch"]
    print(f"ratio factscope / plain: {ratio:.2f}x (target >= 1.0x)")
    print(
        f"FLOP floor: 12 x {D_IN} x {D_SAE} x {tokens:,} = {gflop:.0f} GFLOP at "
        f"{floors.gflops:.0f} GFLOP/s = {floor:.2f} s, {tokens / floor:,.0f} tokens/s"
    )


if __name__ == "__main__":
    main()
