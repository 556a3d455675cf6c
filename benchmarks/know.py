"""`know` over every athlete candidate, against its FLOP floor and transformers; probe timing.

    python benchmarks/know.py [--model gemma-3-270m] [--n 640] [--hf-n 64] [--probe-n 200]
                              [--skip-reference]

What is measured (one process, this machine; subsets are timed and extrapolated, as said in
the output):

1. ours: `know`'s work (few-shot prefix's keys/values computed once and shared by the batch,
   batches of 64 facts of equal length, only the final position unembedded) on the `--n`
   facts spread evenly over the dataset, through the sweep runner (records written, as the
   command does). Extrapolated to the whole dataset by FLOPs (the facts' lengths differ).
2. the floor: FLOPs of that work, 2 x body parameters per token of each fact's own tokens +
   the prefix once + 2 x d_model x vocab per fact for the final unembedding + attention
   scores, divided by the machine's matmul rate. Target: ours within 2x of it.
3. transformers as a user would run it: the GGUF loaded with `from_pretrained(gguf_file=)`,
   the whole few-shot prompt of each fact, padded batches of 32, logits of every position
   (the default), on `--hf-n` facts, extrapolated per fact.
4. probe: residual activations (every layer, last subject token + final token + bare name)
   for `--probe-n` facts, extrapolated per fact to 1,000; then one probe curve (19 layers x
   5 folds of logistic regression) on 1,000 facts' activations (the --probe-n real ones
   repeated with small noise to make 1,000 rows), times the 6 curves `probe` fits.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import numpy as np
import torch

from machine import machine_report


def body_params(cfg: Any) -> int:
    from factscope.read.params import count_params

    counts = count_params(cfg, "").components
    return int(counts["attention"] + counts["mlp"])


def know_gflop(cfg: Any, prefix: int, lengths: list[int]) -> float:
    """FLOPs of `know` on facts whose own tokens number `lengths`, after a shared prefix."""
    body = body_params(cfg)
    unembed = 2 * cfg.d_model * cfg.vocab_size
    flops = 2 * body * prefix
    for n in lengths:
        flops += 2 * body * n + unembed
        # attention scores and mixing: per layer, query heads x d_head x attended keys, x 2 x 2
        keys = sum(prefix + i + 1 for i in range(n))
        flops += cfg.n_layers * 4 * cfg.n_heads * cfg.d_head * keys
    return flops / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--dataset", default="athlete_sport")
    parser.add_argument("--n", type=int, default=640, help="facts timed for ours")
    parser.add_argument("--hf-n", type=int, default=64, help="facts timed for transformers")
    parser.add_argument("--probe-n", type=int, default=200, help="facts for activations")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    floors = machine_report("know")
    from factscope.load import load_model
    from factscope.study.datasets import Dataset, load_dataset
    from factscope.study.know import KnowWork, few_shot_prompts, know

    lm = load_model(args.model)
    data = load_dataset(args.dataset)
    total = len(data.records)
    prompts = few_shot_prompts(lm.tokenizer, data, data.records)
    all_lengths = [len(prompts.suffixes[r.id]) for r in data.records]
    full_gflop = know_gflop(lm.cfg, len(prompts.prefix), all_lengths)
    step = max(1, total // args.n)
    subset = data.records[::step][: args.n]
    sub = Dataset(data.name, data.version, data.relation, tuple(subset), data.answer_tokens)
    sub_gflop = know_gflop(
        lm.cfg, len(prompts.prefix), [len(prompts.suffixes[r.id]) for r in subset]
    )
    print(
        f"{data.name}: {total} facts, shared prefix {len(prompts.prefix)} tokens, own tokens "
        f"mean {np.mean(all_lengths):.1f}; all of know = {full_gflop:.0f} GFLOP"
    )

    KnowWork(lm, sub)  # warm-up: tokenizer, prefix cache, first matmuls
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        know(lm, sub, run_dir, progress=False)
        ours = time.perf_counter() - start
    ours_full = ours * full_gflop / sub_gflop
    floor_full = floors.seconds(full_gflop)
    print(
        f"ours  know: {len(subset)} facts in {ours:.1f} s ({len(subset) / ours:.1f} facts/s); "
        f"extrapolated to all {total}: {ours_full:.0f} s"
    )
    print(
        f"floor (FLOPs / matmul rate): {floor_full:.0f} s for all {total}; ours / floor = "
        f"{ours_full / floor_full:.2f}x   target <= 2x"
    )

    if not args.skip_reference:
        hf_per_fact = time_transformers(lm, data, subset[: args.hf_n])
        hf_full = hf_per_fact * total
        print(
            f"hf    know: {args.hf_n} facts, padded batches of 32, {hf_per_fact * 1000:.0f} ms "
            f"per fact; extrapolated to all {total}: {hf_full:.0f} s; hf / ours = "
            f"{hf_full / ours_full:.1f}x"
        )

    time_probe(lm, data, args.probe_n)
    print(f"(load average now {os.getloadavg()[0]:.2f}; floors measured at {floors.load:.2f})")


def time_transformers(lm: Any, data: Any, facts: Any) -> float:
    """Seconds per fact for transformers on the full few-shot prompts, padded batches of 32."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    path = lm.source
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tokenizer.padding_side = "left"
    texts = [data.relation.with_few_shot(f.prompt) for f in facts]
    answer_ids = [tokenizer(" " + f.answer, add_special_tokens=False).input_ids[0] for f in facts]
    with torch.inference_mode():  # warm-up
        model(**tokenizer(texts[:2], return_tensors="pt", padding=True))
        start = time.perf_counter()
        p_correct = []
        for i in range(0, len(texts), 32):
            batch = tokenizer(texts[i : i + 32], return_tensors="pt", padding=True)
            logits = model(**batch).logits[:, -1].float()
            p = torch.softmax(logits, dim=-1)
            p_correct += [float(p[j, answer_ids[i + j]]) for j in range(len(logits))]
        seconds = time.perf_counter() - start
    ours = {f.id: None for f in facts}
    with tempfile.TemporaryDirectory() as run_dir:
        from factscope.study.datasets import Dataset
        from factscope.study.know import know

        sub = Dataset(data.name, data.version, data.relation, tuple(facts), data.answer_tokens)
        _, records = know(lm, sub, run_dir, progress=False)
        ours = {r["id"]: r["p_correct"] for r in records}
    diff = max(abs(ours[f.id] - p) for f, p in zip(facts, p_correct, strict=True))
    print(f"hf    p(correct) agrees with ours to {diff:.1e} (max abs difference) on {len(facts)}")
    return seconds / len(facts)


def time_probe(lm: Any, data: Any, n: int) -> None:
    from factscope.study.datasets import Dataset
    from factscope.study.probe import ActivationWork, probe_layers

    facts = list(data.records[:: max(1, len(data.records) // n)][:n])  # every sport
    sub = Dataset(data.name, data.version, data.relation, tuple(facts))
    work = ActivationWork(lm, sub)
    start = time.perf_counter()
    rows = []
    for i in range(0, len(facts), 32):
        rows += work(facts[i : i + 32])
    seconds = time.perf_counter() - start
    print(
        f"probe activations (every layer; subject, final, bare name): {n} facts in "
        f"{seconds:.1f} s; x2 with the ablated pass, extrapolated to 1,000 facts: "
        f"{2 * seconds * 1000 / n:.0f} s"
    )
    x = np.stack([r["subject"] for r in rows])  # (n, L + 1, D)
    labels = np.array([r["label"] for r in rows])
    reps = -(-1000 // n)
    rng = np.random.default_rng(0)
    big = np.concatenate([x] * reps)[:1000]
    big = big + 0.01 * big.std() * rng.standard_normal(big.shape).astype(np.float32)
    big_labels = np.concatenate([labels] * reps)[:1000]
    start = time.perf_counter()
    probe_layers(big, big_labels, folds=5)
    fit = time.perf_counter() - start
    print(
        f"probe fit: one curve ({x.shape[1]} layers x 5 folds) on 1,000 facts in {fit:.1f} s; "
        f"the 6 curves of `probe`: {6 * fit:.0f} s"
    )


if __name__ == "__main__":
    main()
