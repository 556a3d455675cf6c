"""The knowledge check: does the model answer attribute questions about people it read of?

For each question of a corpus ("Question: Which city was Anya Wren Ashdown born in?
Answer:") the model must produce the whole answer (" Lisbon") greedily. With the answer fed
in (teacher forcing), greedy decoding produces it exactly when the model's top token is the
answer's next token at every answer position, which one forward pass checks.

Accuracy is reported separately for the "trained" people (their questions were in the
fine-tuning data: this measures memorised question answering) and the "held-out" people
(their questions never were: this is knowledge *extraction*, the paper's test).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from factscope.errors import FactscopeError
from factscope.result import Result
from factscope.scratch.corpus import QA, read_qa

SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class KnowledgeResult(Result):
    model: str
    accuracy: dict[str, dict[str, float]]  # split -> attribute (and "all") -> accuracy
    counts: dict[str, int]  # split -> number of questions
    first_token_accuracy: dict[str, float]  # split -> accuracy of the answer's first token
    examples: list[dict[str, Any]] = field(default_factory=list)  # a few answers, right or not


@torch.no_grad()
def answer_correct(
    lm: Any, questions: list[QA], batch_size: int = 64
) -> tuple[list[bool], list[bool], list[str]]:
    """For each question: whole answer right, first answer token right, the model's greedy
    tokens at the answer positions (spelled)."""
    model, tokenizer = lm.model, lm.tokenizer
    whole, first, guesses = [], [], []
    for start in range(0, len(questions), batch_size):
        chunk = questions[start : start + batch_size]
        prompts = [tokenizer.encode(q.prompt) for q in chunk]
        answers = [tokenizer.encode(" " + q.answer, add_bos=False) for q in chunk]
        rows = [p + a for p, a in zip(prompts, answers, strict=True)]
        T = max(len(r) for r in rows)
        if model.cfg.context_length < T:
            raise FactscopeError(
                f"a question is {T} tokens, longer than the model's context of "
                f"{model.cfg.context_length}"
            )
        pad = tokenizer.eos_id if tokenizer.eos_id is not None else 0
        ids = torch.tensor([r + [pad] * (T - len(r)) for r in rows], device=model.device)
        top = model(ids).argmax(-1)  # (B, T): the model's next token after each position
        for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
            predicted = top[i, len(p) - 1 : len(p) - 1 + len(a)].tolist()
            whole.append(predicted == a)
            first.append(predicted[0] == a[0])
            guesses.append(tokenizer.decode(predicted))
    return whole, first, guesses


def knowledge_check(
    lm: Any, corpus: Path, *, limit: int | None = None, batch_size: int = 64
) -> KnowledgeResult:
    """Accuracy on every attribute question of `corpus` (a folder from `factscope corpus`),
    for trained and held-out people; `limit` caps the questions per split."""
    qa = read_qa(corpus)
    per_split = {s: [q for q in qa if q.split == s] for s in SPLITS}
    if limit is not None:
        per_split = {s: qs[:limit] for s, qs in per_split.items()}
    accuracy: dict[str, dict[str, float]] = {}
    first_accuracy: dict[str, float] = {}
    examples: list[dict[str, Any]] = []
    for split, questions in per_split.items():
        if not questions:
            continue
        whole, first, guesses = answer_correct(lm, questions, batch_size)
        by_attribute: dict[str, list[bool]] = defaultdict(list)
        for q, ok in zip(questions, whole, strict=True):
            by_attribute[q.attribute].append(ok)
        accuracy[split] = {a: sum(v) / len(v) for a, v in sorted(by_attribute.items())}
        accuracy[split]["all"] = sum(whole) / len(whole)
        first_accuracy[split] = sum(first) / len(first)
        examples += [
            {"split": split, "prompt": q.prompt, "answer": q.answer, "model": g.strip(), "ok": ok}
            for q, g, ok in list(zip(questions, guesses, whole, strict=True))[:3]
        ]
    return KnowledgeResult(
        lm.name,
        accuracy,
        {s: len(qs) for s, qs in per_split.items()},
        first_accuracy,
        examples,
    )
