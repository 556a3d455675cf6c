"""What an edit did, measured one way for every caller (the `edit` command, the story, the app).

Test prompts: the edited prompt, paraphrases (the same question in other words: does the edit
generalise?) and neighbours (other subjects that should keep their answer: is it specific?).
Where from, in order: the caller's own lists; the packaged fact dataset whose record has this
prompt, else this subject (its paraphrases and neighbourhood); the packaged relation whose
template gives this prompt (its paraphrase templates, no neighbours); otherwise the prompt
behind two unrelated sentences (ROME's way of asking the same thing in another context).

Measurement: p(new) and p(old) as CounterFact scores them (`answer_probabilities`, here: every
token of the answer, length-normalised), and the model's top next token.

Recall (`recall`): where in the network an answer is read out — the logit lens's p(answer)
at the last token after each block, and the attribution-patching causal trace's MLP effect
at the last subject token, per layer. Run before and after an edit it shows where the new
answer is now recalled and whether the old one is gone (`report.edit_html.recall_summary`
says it in words).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from factscope.edit.request import answer_ids
from factscope.load import LoadedModel

CONTEXTS = ("The meeting was moved to the afternoon. ", "It rained all day in the city. ")


@dataclass(frozen=True)
class ProbePrompt:
    kind: str  # "prompt", "paraphrase" or "neighbour"
    prompt: str


def test_prompts(
    prompt: str,
    subject: str,
    paraphrases: Sequence[str] | None = None,
    neighbours: Sequence[str] | None = None,
) -> list[ProbePrompt]:
    """The prompt, its paraphrases and neighbours (see the module doc for where from); a
    found neighbour that names the subject is left out (the caller's own lists are kept)."""
    found_p: list[str] = list(paraphrases or [])
    found_n: list[str] = list(neighbours or [])
    if paraphrases is None or neighbours is None:
        auto_p, auto_n = dataset_prompts(prompt, subject)
        if paraphrases is None:
            found_p = auto_p or [c + prompt for c in CONTEXTS]
        if neighbours is None:
            found_n = [n for n in auto_n if subject not in n]
    return (
        [ProbePrompt("prompt", prompt)]
        + [ProbePrompt("paraphrase", p) for p in found_p]
        + [ProbePrompt("neighbour", n) for n in found_n]
    )


def dataset_prompts(prompt: str, subject: str) -> tuple[list[str], list[str]]:
    """Paraphrases and neighbours from the packaged datasets: the record with this prompt,
    else with this subject, else the relation whose template gives the prompt."""
    from factscope.study.datasets import list_datasets, load_dataset

    datasets = [load_dataset(name) for name in list_datasets()]
    for match in (lambda r: r.prompt == prompt, lambda r: r.subject == subject):
        for dataset in datasets:
            for record in dataset.records:
                if match(record):
                    return list(record.paraphrases), list(record.neighbourhood)
    for dataset in datasets:
        if dataset.relation.prompt(subject) == prompt:
            templates = dataset.relation.paraphrase_templates
            return [t.replace("{}", subject) for t in templates[:3]], []
    return [], []


@torch.no_grad()
def answer_probabilities(
    lm: LoadedModel, prompts: Sequence[str], answers: Sequence[str], batch_size: int = 32
) -> list[list[float]]:
    """p(answer | prompt) per prompt and answer (length-normalised, CounterFact's), as
    [[p(answers[0]), p(answers[1]), ...] per prompt]. Rows are right-padded into batches
    and only the scored positions are unembedded."""
    model, tok = lm.model, lm.tokenizer
    rows: list[tuple[int, int, list[int], int]] = []  # prompt, answer, tokens, prompt length
    for i, prompt in enumerate(prompts):
        ids = tok.encode(prompt)
        for j, answer in enumerate(answers):
            a = answer_ids(tok, prompt, answer)
            rows.append((i, j, ids + a[:-1], len(ids)))
    out = [[0.0] * len(answers) for _ in prompts]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        T = max(len(r[2]) for r in chunk)
        tokens = torch.zeros(len(chunk), T, dtype=torch.long)
        for b, r in enumerate(chunk):
            tokens[b, : len(r[2])] = torch.tensor(r[2])
        tokens = tokens.to(model.device)
        positions = torch.arange(T, device=model.device)
        h = model.run_blocks(model.embed_tokens(tokens), positions)  # (B, T, D)
        for b, (i, j, seq, n_prompt) in enumerate(chunk):
            targets = [*seq[n_prompt:], answer_ids(tok, prompts[i], answers[j])[-1]]
            pos = torch.arange(n_prompt - 1, n_prompt - 1 + len(targets), device=model.device)
            log_p = torch.log_softmax(model.unembed_residual(h[b : b + 1, pos]).float()[0], -1)
            picked = log_p[torch.arange(len(targets)), torch.tensor(targets, device=model.device)]
            out[i][j] = float(picked.mean().exp())
    return out


@torch.inference_mode()
def measure(
    lm: LoadedModel, probes: Sequence[ProbePrompt], new: str, old: str
) -> list[dict[str, Any]]:
    """For each test prompt: p(new), p(old) (CounterFact's), whether new wins, the top token."""
    probs = answer_probabilities(lm, [p.prompt for p in probes], [new, old])
    rows = []
    for probe, (p_new, p_old) in zip(probes, probs, strict=True):
        top = int(lm.model(lm.encode(probe.prompt), logits_at="last")[0, -1].argmax())
        rows.append({**asdict(probe), "p_new": p_new, "p_old": p_old,
                     "top": lm.tokenizer.token_str(top), "new_wins": p_new > p_old})  # fmt: skip
    return rows


def recall(lm: LoadedModel, prompt: str, subject: str, answers: Sequence[str]) -> dict[str, Any]:
    """Where each answer is read out of the prompt: per answer, the logit lens's p(answer)
    at the last token after each block (rows 1..L; the last row is the model's output) and
    the approximate causal trace's MLP indirect effect at the last subject token per layer
    (scored on that answer's first token)."""
    from factscope.edit.request import answer_ids
    from factscope.locate.lens import lens_prompt
    from factscope.locate.trace import trace_prompt

    out: dict[str, Any] = {"prompt": prompt, "subject": subject, "answers": {}}
    for answer in answers:  # as the prompt continues (" Rome"), the way the edit scores it
        said = lm.tokenizer.decode(answer_ids(lm.tokenizer, prompt, answer))
        lens = lens_prompt(lm, prompt, said, top_k=1)
        trace = trace_prompt(lm, prompt, subject, said, kinds=["mlp"], method="approx")["mlp"]
        out["answers"][answer] = {
            "lens_p": lens.answer_prob[1:],
            "mlp_effect": trace.ie_last_subject_token,
            "clean_p": trace.clean_p,
        }
    return out
