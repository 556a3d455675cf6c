"""Training throughput: `factscope train`'s step vs a minimal nanoGPT-style loop, same size.

    python benchmarks/train.py [--preset small] [--batch 16] [--seq 128] [--vocab 2048]
                               [--rounds 5] [--steps 4] [--mlp swiglu]

The job: one optimizer step (forward, cross-entropy, backward, gradient clipping, AdamW)
on a (batch x seq) batch of random token ids.

- ours: the Transformer of model.py in the Llama-style config `factscope train` builds
  (RMSNorm, rotary positions, gated MLP by default, a HookPoint at every site, tied
  embeddings), in training mode, with train.py's own `lm_loss`, `make_optimizer` and
  clipping. In training mode its linear layers compute their products and both gradients
  with oneDNN's kernel (onednn.OneDNNLinear); inference already used it.
- baseline: a GPT written here in plain PyTorch the way nanoGPT writes it (learned
  positions, LayerNorm with bias, fused qkv Linear, `F.scaled_dot_product_attention` with
  is_causal, 4x GELU MLP, tied embeddings), the same d_model, layers, heads, vocabulary,
  batch and AdamW settings (the same parameter groups, torch's default implementation);
  both losses are F.cross_entropy over the full vocabulary in float32. Its MLP has
  8 d^2 weights per block; ours 3 x d x 352 (8 d/3 rounded up to 16), 1.6% more products.
- the same baseline with factscope's `Linear` in place of nn.Linear (same kernel as ours):
  what is left of the difference is the architecture (RMSNorm and RoPE cost more
  elementwise passes than LayerNorm and learned positions), not the matrix products.

Rounds alternate the three so that a busy machine slows them alike; the median step time
of each is reported as tokens/s, with the ratio (target >= 1.0x) and the floor of the
work, 6 x parameters x tokens FLOPs at this machine's fastest float32 matmul rate (torch's
default kernel, MKL, and oneDNN's are both measured: on AMD CPUs they differ ~2x).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from factscope.config import model_config
from factscope.model import Linear, Transformer
from factscope.onednn import onednn_available
from factscope.scratch.train import (
    TrainingSettings,
    init_weights,
    lm_loss,
    make_optimizer,
)
from machine import machine_report, median_time

# ---- the baseline: nanoGPT's GPT, minimal -----------------------------------------------------


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        q, k, v = self.c_attn(x).split(D, dim=2)
        q = q.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, D))


class GPTBlock(nn.Module):
    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, n_heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int, context: int, d: int, n_layers: int, n_heads: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.h = nn.ModuleList(GPTBlock(d, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.ndim >= 2:
                std = 0.02 / math.sqrt(2 * n_layers) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: Tensor, targets: Tensor) -> Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def with_onednn_linears(model: GPT) -> GPT:
    """The same model with every nn.Linear computed as factscope's Linear (oneDNN)."""
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = Linear
    return model


def matrix_weights(model: nn.Module) -> int:
    """Weights that enter a matrix product (each tied matrix once); no norms, biases or
    learned positions (a lookup)."""
    seen = {id(m.weight): m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear)}
    return sum(seen.values())


def onednn_gflops() -> float:
    """oneDNN's float32 matmul rate on the product machine.py times with torch's default."""
    if not onednn_available():
        return 0.0
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    linear = torch.ops.mkldnn._linear_pointwise
    seconds = median_time(lambda: linear(a, b, None, "none", [None], ""), repeats=5)
    return 2 * 2048**3 / seconds / 1e9


def gpt_optimizer(model: GPT, cfg: TrainingSettings) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


# ---- timing -----------------------------------------------------------------------------------


def step_fn(
    loss_fn: Callable[[], Tensor], params: list[nn.Parameter], opt: torch.optim.Optimizer
) -> Callable[[], None]:
    def step() -> None:
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return step


def time_steps(step: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--mlp", default="swiglu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="Steps per round per model.")
    args = parser.parse_args()

    floors = machine_report("train")
    dnn_gflops = onednn_gflops()
    gflops = max(floors.gflops, dnn_gflops)
    print(
        f"float32 matmul 2048^3: torch default (MKL) {floors.gflops:.0f} GFLOP/s, oneDNN "
        f"{dnn_gflops:.0f} GFLOP/s; the floors below use {gflops:.0f}"
    )
    torch.manual_seed(0)
    cfg = model_config(args.preset, args.vocab, args.seq, args.mlp)
    train_cfg = TrainingSettings(batch_size=args.batch, seq_len=args.seq)
    ours = Transformer(cfg).train()
    init_weights(ours, 0)
    gpt = GPT(args.vocab, args.seq, cfg.d_model, cfg.n_layers, cfg.n_heads).train()
    gpt_dnn = with_onednn_linears(GPT(args.vocab, args.seq, cfg.d_model, cfg.n_layers, cfg.n_heads))
    gpt_dnn.load_state_dict(gpt.state_dict())
    gpt_dnn.train()
    x = torch.randint(0, args.vocab, (args.batch, args.seq))
    y = torch.randint(0, args.vocab, (args.batch, args.seq))

    models: dict[str, nn.Module] = {"ours": ours, "nanoGPT-style": gpt, "nanoGPT+oneDNN": gpt_dnn}
    losses: dict[str, Callable[[], Tensor]] = {
        "ours": lambda: lm_loss(ours, x, y),
        "nanoGPT-style": lambda: gpt(x, y),
        "nanoGPT+oneDNN": lambda: gpt_dnn(x, y),
    }
    optimizers = {
        "ours": make_optimizer(ours, train_cfg),
        "nanoGPT-style": gpt_optimizer(gpt, train_cfg),
        "nanoGPT+oneDNN": gpt_optimizer(gpt_dnn, train_cfg),
    }
    steps = {
        name: step_fn(losses[name], list(model.parameters()), optimizers[name])
        for name, model in models.items()
    }
    tokens = args.batch * args.seq
    n_params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    n_matrix = {name: matrix_weights(m) for name, m in models.items()}
    attention_gflop = 3 * 2 * 2 * args.batch * args.seq**2 * cfg.d_model * cfg.n_layers / 2 / 1e9
    print(
        f"config: {args.preset} (d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.n_heads} "
        f"heads, {args.mlp} MLP d_mlp {cfg.d_mlp}), vocab {args.vocab}, batch {args.batch} x "
        f"seq {args.seq} = {tokens} tokens/step; AdamW lr {train_cfg.lr} (same groups, torch "
        "default implementation), clip 1.0, F.cross_entropy over the full vocabulary in float32"
    )
    print(
        f"parameters: ours {n_params['ours']:,} ({n_matrix['ours']:,} in matrix products), "
        f"nanoGPT-style {n_params['nanoGPT-style']:,} ({n_matrix['nanoGPT-style']:,}; the rest "
        f"biases and learned positions); causal attention adds {attention_gflop:.2f} GFLOP/step "
        "to both"
    )
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(time_steps(step, args.steps))
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in medians.items():
        n = n_params[name]
        floor = (6 * n * tokens / 1e9) / gflops
        print(
            f"{name:>15}: {seconds * 1e3:7.1f} ms/step, {tokens / seconds:9,.0f} tokens/s; "
            f"FLOP floor 6 x {n:,} x {tokens} = {6 * n * tokens / 1e9:.2f} GFLOP = "
            f"{floor * 1e3:.1f} ms ({floor / seconds:.0%} of the floor's speed)"
        )
    ratio = medians["nanoGPT-style"] / medians["ours"]
    same_kernel = medians["nanoGPT+oneDNN"] / medians["ours"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"ratio ours / nanoGPT-style tokens/s: {ratio:.2f}x (target >= 1.0x)")
    print(
        f"ratio ours / nanoGPT-style with the same oneDNN matmuls: {same_kernel:.2f}x "
        f"(the architecture alone); load average at the end {load:.2f}"
    )


if __name__ == "__main__":
    main()
