"""How many facts of each packaged dataset a real model gets right (a sanity check, not a test).

    python scripts/dataset_sanity.py [--model gemma-3-270m] [--datasets a,b] [--sample N]

For every record, the model reads the relation's few-shot prefix + the prompt
("Fact: Nairobi is a city in the country of Kenya\\nFact: Lyon is a city in the country of")
and we look at the next-token distribution over the full vocabulary at the first token of
each answer in the relation's answer set. Reported per dataset:

- top-1 in set: the true answer's first token beats every other answer's first token;
- p > 0.5: the true answer's first token has probability above 0.5 over the whole
  vocabulary (the "known" rule of the Fact Finding study);
- top-1 overall: it is the model's single most likely next token.

`factscope know` is the real command for this; this script exists so the dataset author
can say whether a relation is known to a model at all. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from factscope.load import load_model
from factscope.study.datasets import answer_token_ids, list_datasets, load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--datasets", default="city_country,company_country,person_language")
    parser.add_argument("--sample", type=int, default=0, help="records per dataset (0: all)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    loaded = load_model(args.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    results = {}
    for name in args.datasets.split(","):
        if name not in list_datasets():
            raise SystemExit(f"unknown dataset {name}")
        dataset = load_dataset(name)
        relation = dataset.relation
        first_ids = {a: answer_token_ids(tokenizer, a)[0] for a in relation.answers}
        records = list(dataset.records)
        if args.sample and args.sample < len(records):
            records = random.Random(0).sample(records, args.sample)
        in_set = known = top1 = 0
        per_answer: dict[str, list[int]] = {a: [0, 0] for a in relation.answers}
        for record in records:
            tokens = loaded.encode(relation.with_few_shot(record.prompt))
            with torch.inference_mode():
                logits = model(tokens, logits_at="last")[0, -1]
            probs = torch.softmax(logits.float(), dim=-1)
            scores = {a: float(probs[i]) for a, i in first_ids.items()}
            right = max(scores, key=scores.__getitem__) == record.answer
            in_set += right
            known += scores[record.answer] > 0.5
            top1 += int(probs.argmax()) == first_ids[record.answer]
            per_answer[record.answer][0] += right
            per_answer[record.answer][1] += 1
        n = len(records)
        results[name] = {
            "records": n,
            "top1_in_answer_set": in_set,
            "p_above_half": known,
            "top1_overall": top1,
            "per_answer_top1_in_set": per_answer,
        }
        print(
            f"{name:>16} n={n:4d}  top-1 in set {in_set:4d} ({in_set / n:.0%})  "
            f"p>0.5 {known:4d} ({known / n:.0%})  top-1 overall {top1:4d} ({top1 / n:.0%})"
        )
        weak = [a for a, (r, t) in per_answer.items() if t and r / t < 0.5]
        if weak:
            print(f"{'':>16} answers right for under half their facts: {weak}")
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "results": results}, indent=1))


if __name__ == "__main__":
    main()
