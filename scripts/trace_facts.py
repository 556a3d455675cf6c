"""Exact causal traces vs attribution patching (`--approx`) over many athlete facts.

    python scripts/trace_facts.py [--model gemma-3-270m] [--out docs/results/trace-facts.json]

For each candidate athlete the model is asked "Fact: Tiger Woods plays the sport of golf\\n
Fact: {name} plays the sport of"; facts it answers with the right sport at p > 0.5 are
kept (the filter of DeepMind's "Fact Finding" study). Each kept fact is traced exactly
(3 kinds, 10 noise samples, window 10) and approximately with the same noise, and the
script reports:

- the Pearson correlation between exact and approximate scores, over every cell of
  every fact, per kind (and the median of per-fact correlations);
- the average indirect effect (AIE) over facts per kind, at the last subject token and at
  the last token, with the layer where each peaks: ROME's averaged trace.

The result is written as JSON (plain data) for docs/locate.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from factscope.load import load_model
from factscope.locate.attribution import approx_trace
from factscope.locate.corruption import KINDS, TraceOptions, estimate_noise_std
from factscope.locate.prompts import answer_token
from factscope.locate.trace import trace_fact

TEMPLATE = "Fact: Tiger Woods plays the sport of golf\nFact: {} plays the sport of"

# Well-known athletes (candidates, filtered by what the model knows).
CANDIDATES = {
    " basketball": [
        "Michael Jordan",
        "LeBron James",
        "Kobe Bryant",
        "Shaquille O'Neal",
        "Stephen Curry",
        "Magic Johnson",
        "Larry Bird",
        "Kevin Durant",
        "Tim Duncan",
        "Dirk Nowitzki",
        "Kareem Abdul-Jabbar",
        "Dennis Rodman",
        "Yao Ming",
        "Scottie Pippen",
        "Allen Iverson",
    ],
    " baseball": [
        "Babe Ruth",
        "Derek Jeter",
        "Barry Bonds",
        "Ken Griffey Jr.",
        "Alex Rodriguez",
        "Jackie Robinson",
        "Hank Aaron",
        "Mickey Mantle",
        "Ichiro Suzuki",
        "Willie Mays",
        "Roger Clemens",
        "Cal Ripken Jr.",
        "Pete Rose",
        "Lou Gehrig",
        "Mark McGwire",
    ],
    " football": [
        "Tom Brady",
        "Peyton Manning",
        "Joe Montana",
        "Jerry Rice",
        "Brett Favre",
        "Walter Payton",
        "Dan Marino",
        "Emmitt Smith",
        "Aaron Rodgers",
        "Patrick Mahomes",
        "Barry Sanders",
        "John Elway",
        "Lawrence Taylor",
        "Drew Brees",
        "Jim Brown",
    ],
}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--out", type=Path, default=Path("docs/results/trace-facts.json"))
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--max-facts", type=int, default=30)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if args.out.exists() and not args.force:
        raise SystemExit(f"{args.out} exists; pass --force to overwrite")

    lm = load_model(args.model)
    model, tokenizer = lm.model, lm.tokenizer
    noise_std = estimate_noise_std(model, tokenizer)
    known: list[dict[str, Any]] = []
    for sport, names in CANDIDATES.items():
        answer = answer_token(tokenizer, sport)
        for name in names:
            tokens = lm.encode(TEMPLATE.format(name))
            with torch.no_grad():
                p = torch.softmax(model(tokens, logits_at="last")[0, -1], -1)[answer.id]
            if float(p) > 0.5:
                known.append({"name": name, "sport": sport, "p": float(p)})
    n_candidates = sum(len(v) for v in CANDIDATES.values())
    print(f"{len(known)} of {n_candidates} candidate facts known at p > 0.5")
    known = known[: args.max_facts]

    facts: list[dict[str, Any]] = []
    exact_cells: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
    approx_cells: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
    seconds = {"exact": 0.0, "approx": 0.0}
    for fact in tqdm(known, desc="tracing facts"):
        prompt = TEMPLATE.format(fact["name"])
        tokens = lm.encode(prompt)
        span = tokenizer.find_subject_span(prompt, fact["name"])
        answer_id = answer_token(tokenizer, fact["sport"]).id
        options = TraceOptions(kinds=KINDS, samples=args.samples, window=10, noise_std=noise_std)
        start = time.perf_counter()
        exact = trace_fact(model, tokens, span, answer_id, **options)
        seconds["exact"] += time.perf_counter() - start
        start = time.perf_counter()
        approx = approx_trace(model, tokens, span, answer_id, **options)
        seconds["approx"] += time.perf_counter() - start
        entry: dict[str, Any] = {**fact, "subject_span": list(span), "kinds": {}}
        for kind in KINDS:
            # only cells from the subject on: earlier cells are the corrupted p by definition
            e = np.array(exact[kind].scores)[span[0] :].ravel()
            a = np.array(approx[kind].scores)[span[0] :].ravel()
            exact_cells[kind].append(e)
            approx_cells[kind].append(a)
            entry["kinds"][kind] = {
                "clean_p": exact[kind].clean_p,
                "corrupted_p": exact[kind].corrupted_p,
                "ie_last_subject_token": exact[kind].ie_last_subject_token,
                "ie_last_token": exact[kind].ie_last_token,
                "approx_ie_last_subject_token": approx[kind].ie_last_subject_token,
                "approx_ie_last_token": approx[kind].ie_last_token,
                "correlation": pearson(e, a),
            }
        facts.append(entry)

    summary: dict[str, Any] = {}
    for kind in KINDS:
        pooled = pearson(np.concatenate(exact_cells[kind]), np.concatenate(approx_cells[kind]))
        per_fact = [f["kinds"][kind]["correlation"] for f in facts]
        subj = np.mean([f["kinds"][kind]["ie_last_subject_token"] for f in facts], axis=0)
        last = np.mean([f["kinds"][kind]["ie_last_token"] for f in facts], axis=0)
        summary[kind] = {
            "pooled_correlation": pooled,
            "median_fact_correlation": float(np.nanmedian(per_fact)),
            "aie_last_subject_token_by_layer": subj.tolist(),
            "aie_last_token_by_layer": last.tolist(),
            "peak_layer_last_subject_token": int(subj.argmax()),
            "peak_layer_last_token": int(last.argmax()),
        }
        print(
            f"{kind:<6} r(exact, approx) pooled {pooled:.3f}, median per fact "
            f"{summary[kind]['median_fact_correlation']:.3f}; AIE peak: last subject token "
            f"layer {subj.argmax()} ({subj.max():.3f}), last token layer {last.argmax()} "
            f"({last.max():.3f})"
        )
    print(f"time: exact {seconds['exact']:.0f} s, approx {seconds['approx']:.0f} s")
    result = {
        "model": lm.name,
        "template": TEMPLATE,
        "noise_std": noise_std,
        "samples": args.samples,
        "window": 10,
        "n_candidates": n_candidates,
        "n_known": len(known),
        "seconds": seconds,
        "summary": summary,
        "facts": facts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
