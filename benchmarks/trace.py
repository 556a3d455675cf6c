"""Causal tracing speed: our fast tracer vs ROME's algorithm on the transformers model.

    python benchmarks/trace.py [--model gemma-3-270m] [--cells 12] [--quick] [--skip-reference]

The job: the full trace of "Michael Jordan plays the sport of" (subject "Michael Jordan",
answer " basketball") on gemma-3-270m: 3 kinds (hidden, mlp, attn) x 18 layers x 7 tokens
(BOS included) = 378 cells, 10 noise samples, window 10.

- ours: `trace_fact`, which re-runs only the tokens and layers a restoration changes, many
  cells and samples per batch, unembedding only the final position. Timed for hidden alone
  and for all three kinds, plus `--approx` (attribution patching).
- baseline: ROME's `trace_with_patch` as ROME runs it, on transformers' Gemma 3 loaded from
  the same GGUF: per cell one forward of a batch of 11 (the clean row 0 + 10 noisy rows),
  logits at every position, noise added to `embed_tokens`' output (which Gemma scales by
  sqrt(d) inside the module), the clean row's state copied into the noisy rows with forward
  hooks on the decoder layer (hidden) or on the post-norm after attention / MLP (what those
  add to the residual, our `attn.out` / `mlp.out`). A seeded subset of `--cells` cells per
  kind is timed and the per-cell time extrapolated to all 126 cells of the kind; the
  printout says so. Same noise as ours, so the subset's scores are compared with ours too.

`--quick` times the baseline for hidden only. The floor, as the issue estimates it: with
prefix reuse the three kinds cost ~2.6 TFLOP, ~40% of it the 262,144-row unembedding of
the final position, ~100 s at ~27 GFLOP/s. Machines differ (the issue measured the ROME loop
at 1.48 s per cell; read the s/cell line printed here), so compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from typing import Any

import torch

PROMPT = "Michael Jordan plays the sport of"
SUBJECT = "Michael Jordan"
ANSWER = " basketball"
KINDS = ("hidden", "mlp", "attn")


def timed(label: str, fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {seconds:8.1f} s")
    return out, seconds


def rome_cell(
    hf: Any,
    tokens: torch.Tensor,
    span: tuple[int, int],
    noise: torch.Tensor,
    answer_id: int,
    kind: str,
    t: int,
    layer: int,
    window: int,
) -> float:
    """ROME's trace_with_patch for one cell: a batch of 1 clean + S noisy rows, one full
    forward with logits at every position, p(answer) at the last position of the noisy rows."""
    from factscope.locate.corruption import window_layers

    n_layers = len(hf.model.layers)
    batch = tokens.expand(noise.shape[0] + 1, -1)
    start, stop = span

    def corrupt(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        output[1:, start:stop] += noise.to(output.dtype)
        return output

    def restore(module: Any, args: Any, output: Any) -> Any:
        h = output[0] if isinstance(output, tuple) else output
        h[1:, t] = h[0, t]
        return output

    if kind == "hidden":
        modules = [hf.model.layers[layer]]
    else:
        name = "post_feedforward_layernorm" if kind == "mlp" else "post_attention_layernorm"
        modules = [
            getattr(hf.model.layers[j], name) for j in window_layers(layer, window, n_layers)
        ]
    handles = [hf.model.embed_tokens.register_forward_hook(corrupt)]
    handles += [m.register_forward_hook(restore) for m in modules]
    try:
        with torch.no_grad():
            logits = hf(batch).logits  # (S + 1, T, V): every position, as ROME does
    finally:
        for h in handles:
            h.remove()
    return float(torch.softmax(logits[1:, -1].float(), dim=-1)[:, answer_id].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--cells", type=int, default=12, help="baseline cells timed per kind")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="baseline: hidden only")
    parser.add_argument("--skip-reference", action="store_true", help="no baseline at all")
    args = parser.parse_args()

    from factscope.load import load_model
    from factscope.locate.attribution import approx_trace
    from factscope.locate.corruption import estimate_noise_std, subject_noise
    from factscope.locate.prompts import answer_token
    from factscope.locate.trace import trace_fact

    lm = load_model(args.model)
    model, tokenizer = lm.model, lm.tokenizer
    tokens = lm.encode(PROMPT)
    span = tokenizer.find_subject_span(PROMPT, SUBJECT)
    answer = answer_token(tokenizer, ANSWER)
    noise_std = estimate_noise_std(model, tokenizer)
    T, L = tokens.shape[1], model.cfg.n_layers
    print(
        f"{lm.name}: {T} tokens, {L} layers, {T * L} cells per kind, {args.samples} samples, "
        f"window {args.window}, noise std {noise_std:.3f}, torch threads "
        f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    common: dict[str, Any] = dict(samples=args.samples, window=args.window, noise_std=noise_std)

    trace_fact(
        model, tokens, span, answer.id, kinds=("hidden",), samples=1, window=2, noise_std=noise_std
    )  # warm-up
    _, ours_hidden = timed(
        "ours  exact, hidden",
        lambda: trace_fact(model, tokens, span, answer.id, kinds=("hidden",), **common),
    )
    ours, ours_all = timed(
        "ours  exact, hidden + mlp + attn",
        lambda: trace_fact(model, tokens, span, answer.id, kinds=KINDS, **common),
    )
    approx, ours_approx = timed(
        "ours  --approx (attribution patching), 3 kinds",
        lambda: approx_trace(model, tokens, span, answer.id, kinds=KINDS, **common),
    )

    print()
    labels = [tokenizer.token_str(i) for i in tokens[0].tolist()]
    print(
        f"clean p({ANSWER.strip()}) = {ours['hidden'].clean_p:.4f}, "
        f"corrupted p = {ours['hidden'].corrupted_p:.4f}"
    )
    for kind in KINDS:
        peak = ours[kind].peak
        ie = torch.tensor(ours[kind].indirect_effect)
        best_token = int(ie.max(dim=1).values.argmax())
        row = ", ".join(f"{x:.2f}" for x in ie[best_token].tolist())
        exact, est = torch.tensor(ours[kind].scores), torch.tensor(approx[kind].scores)
        corr = float(torch.corrcoef(torch.stack([exact.flatten(), est.flatten()]))[0, 1])
        print(
            f"{kind:<6} peak: token {peak['token_index']} {labels[peak['token_index']]!r}, layer "
            f"{peak['layer']}, indirect effect {peak['effect']:.3f}; "
            f"AIE last subject token {ours[kind].aie_last_subject_token:.3f}, "
            f"last token {ours[kind].aie_last_token:.3f}; approx vs exact r = {corr:.2f}"
        )
        print(f"       effect by layer at {labels[best_token]!r}: {row}")

    if args.skip_reference:
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    print()
    path = lm.source
    hf, _ = timed(
        "hf    from_pretrained(gguf_file=...)",
        lambda: transformers.AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        ).eval(),
    )
    noise = subject_noise(args.samples, span[1] - span[0], model.cfg.d_model, noise_std, seed=0)
    kinds = ("hidden",) if args.quick else KINDS
    rng = random.Random(0)
    cells = [(t, l) for t in range(T) for l in range(L)]
    extrapolated: dict[str, float] = {}
    for kind in kinds:
        subset = rng.sample(cells, min(args.cells, len(cells)))
        rome_cell(hf, tokens, span, noise, answer.id, kind, *subset[0], args.window)  # warm-up
        start = time.perf_counter()
        ps = [
            rome_cell(hf, tokens, span, noise, answer.id, kind, t, l, args.window)
            for t, l in subset
        ]
        per_cell = (time.perf_counter() - start) / len(subset)
        extrapolated[kind] = per_cell * T * L
        diff = max(abs(p - ours[kind].scores[t][l]) for p, (t, l) in zip(ps, subset, strict=True))
        print(
            f"hf    ROME loop, {kind:<6}: {len(subset)} cells timed, {per_cell:.2f} s/cell "
            f"-> {T * L} cells ~ {extrapolated[kind]:.0f} s (extrapolated); "
            f"max |p_hf - p_ours| on those cells {diff:.1e}"
        )

    print()
    print(
        f"hidden only   : ours {ours_hidden:6.1f} s   ROME loop ~{extrapolated['hidden']:6.0f} s"
        f"   ratio {extrapolated['hidden'] / ours_hidden:5.1f}x   target ours <= 45 s"
    )
    if not args.quick:
        total = sum(extrapolated.values())
        print(
            f"three kinds   : ours {ours_all:6.1f} s   ROME loop ~{total:6.0f} s"
            f"   ratio {total / ours_all:5.1f}x   target ours <= 150 s"
        )
        print(
            f"--approx      : ours {ours_approx:6.1f} s   ratio to ROME loop "
            f"{total / ours_approx:5.0f}x"
        )


if __name__ == "__main__":
    main()
