"""Editing speed: one ROME edit against its FLOP floor; statistics; MEMIT/AlphaEdit batches.

    python benchmarks/edit.py [--models gemma-3-270m,smollm2-135m] [--stats-tokens 2048]
                              [--batch-facts 2] [--skip-batch]

1. One ROME edit ("Michael Jordan plays the sport of" -> " baseball", authors' defaults,
   20 context rows + 1 KL row) with the statistics already at hand (C = I here: the solve
   with a cached C costs the same). The floor counts the work the algorithm must do:
   the clean pass of every row once, then per optimisation step the forward and backward
   (x3) of the blocks above the edit layer for the positions from each row's subject token
   on, plus the unembedding of the scored positions (x3). Target: within 3x of the floor.
2. Key statistics: the pass over `--stats-tokens` corpus tokens up to the edit layer, timed
   and extrapolated linearly to 100,000 tokens (the printout says so).
3. MEMIT and AlphaEdit on `--batch-facts` athlete facts (5 layers), timed and extrapolated
   per fact to 100 facts: the z optimisation is per fact, the solves per layer are tiny.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from machine import machine_report

PROMPT, SUBJECT, NEW = "Michael Jordan plays the sport of", "Michael Jordan", "baseball"
LAYER = {"gemma-3-270m": 6, "smollm2-135m": 10}


def block_flops_per_token(model: torch.nn.Module, context: int) -> float:
    """2 FLOPs per weight per token for one block, plus attention's QKᵀ and PV."""
    block = model.blocks[0]  # type: ignore[index]
    weights = sum(p.numel() for n, p in block.named_parameters() if "norm" not in n)
    cfg = model.cfg  # type: ignore[attr-defined]
    return 2 * weights + 4 * context * cfg.n_heads * cfg.d_head


def rome_floor_gflop(lm: object, result: object, layer: int) -> float:
    from factscope.edit.request import answer_ids, build_batch, context_templates

    model, tok = lm.model, lm.tokenizer  # type: ignore[attr-defined]
    cfg = model.cfg
    contexts = context_templates(model, tok)
    batch = build_batch(tok, contexts, PROMPT, SUBJECT, answer_ids(tok, PROMPT, NEW), ["{} is a"])
    T = batch.tokens.shape[1]
    per_token = block_flops_per_token(model, T)
    clean = sum(batch.lengths) * per_token * cfg.n_layers
    suffix = sum(batch.lengths[r] - int(batch.lookup[r]) for r in range(len(batch.lengths)))
    steps = result.optimisation.steps  # type: ignore[attr-defined]
    body = 3 * suffix * per_token * (cfg.n_layers - layer - 1)
    unembed = 3 * 2 * cfg.vocab_size * cfg.d_model * (len(batch.target_pos) + 1)
    return (clean + steps * (body + unembed)) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="gemma-3-270m,smollm2-135m")
    parser.add_argument("--stats-tokens", type=int, default=2048)
    parser.add_argument("--batch-facts", type=int, default=2)
    parser.add_argument("--skip-batch", action="store_true")
    args = parser.parse_args()
    floors = machine_report("edit")

    from factscope.edit import EditRequest, ROMEHyperParams, edit
    from factscope.edit.corpus import SEEDS, Corpus
    from factscope.edit.memit import MEMITHyperParams, apply_memit, edit_layers
    from factscope.edit.stats import collect_key_stats, identity_stats
    from factscope.load import load_model
    from factscope.study.datasets import load_dataset

    for name in args.models.split(","):
        lm = load_model(name)
        layer = LAYER.get(name, lm.cfg.n_layers // 3)
        request = EditRequest(PROMPT, SUBJECT, NEW, "basketball")
        stats = {layer: identity_stats(lm.model, layer)}
        hp = ROMEHyperParams()
        edit(
            lm, request, "rome", layer, hparams=ROMEHyperParams(v_num_grad_steps=1), stats=stats
        ).undo()  # warm-up, prefixes
        start = time.perf_counter()
        handle = edit(lm, request, "rome", layer, hparams=hp, stats=stats)
        seconds = time.perf_counter() - start
        handle.undo()
        result = handle.results[0]
        gflop = rome_floor_gflop(lm, result, layer)
        floor = floors.seconds(gflop)
        print(
            f"{name}: ROME edit of layer {layer}: {seconds:.2f} s, {result.optimisation.steps} "
            f"steps, final loss {result.optimisation.losses[-1]['loss']:.3f}; floor {gflop:.1f} "
            f"GFLOP = {floor:.2f} s -> {seconds / floor:.1f}x the floor (target <= 3x)"
        )

        # statistics: a subset, extrapolated to 100k tokens
        words = " ".join(SEEDS).split()
        docs = tuple(" ".join(words[i : i + 300]) for i in range(0, len(words), 300)) * 40
        start = time.perf_counter()
        collect_key_stats(lm.model, lm.tokenizer, [layer], Corpus("bench", docs),
                          args.stats_tokens, progress=False)  # fmt: skip
        s = time.perf_counter() - start
        per_token = block_flops_per_token(lm.model, 256) * (layer + 1) / 1e9
        print(
            f"{name}: statistics of layer {layer}: {s:.2f} s for {args.stats_tokens} tokens -> "
            f"{s * 100_000 / args.stats_tokens:.0f} s for 100,000 tokens (extrapolated); floor "
            f"{floors.seconds(per_token * 100_000):.0f} s"
        )

        if args.skip_batch:
            continue
        data = load_dataset("athlete_sport")
        requests = [
            EditRequest(r.prompt, r.subject, r.counterfactual, r.answer, r.id)
            for r in data.records[: args.batch_facts]
        ]
        layers = edit_layers(layer, 5)
        batch_stats = {l: identity_stats(lm.model, l) for l in layers}
        for method in ("memit", "alphaedit"):
            # C = I: AlphaEdit's null space of I is empty, so for timing its threshold is 2 (all)
            mhp = MEMITHyperParams(nullspace_threshold=2.0 if method == "alphaedit" else 2e-2)
            start = time.perf_counter()
            h = apply_memit(lm, requests, layer, mhp, method=method, stats=batch_stats)
            s = time.perf_counter() - start
            h.undo()
            print(
                f"{name}: {method} on {len(requests)} facts over layers {layers}: {s:.1f} s -> "
                f"~{s / len(requests) * 100 / 60:.1f} min for 100 facts (extrapolated per fact)"
            )


if __name__ == "__main__":
    main()
