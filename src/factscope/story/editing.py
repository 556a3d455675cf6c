"""A rank-one edit seen from outside: p(new) and p(old) on the prompt, on paraphrases and
on neighbours (other subjects that should keep their answer), before and after the edit,
and again after undo.

Which prompts: when a packaged fact dataset (factscope.study) holds the subject, its
record's paraphrases and neighbourhood; when the prompt is a packaged relation's template,
the relation's paraphrase templates; otherwise the prompt behind two unrelated sentences
(ROME's way of asking the same thing in another context) and no neighbours. Callers may
give their own lists instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

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
    """The prompt, its paraphrases and neighbours (see the module doc for where from)."""
    found_paraphrases: list[str] = list(paraphrases or [])
    found_neighbours: list[str] = list(neighbours or [])
    if paraphrases is None or neighbours is None:
        auto_p, auto_n = _from_datasets(prompt, subject)
        if paraphrases is None:
            found_paraphrases = auto_p or [c + prompt for c in CONTEXTS]
        if neighbours is None:
            found_neighbours = auto_n
    return (
        [ProbePrompt("prompt", prompt)]
        + [ProbePrompt("paraphrase", p) for p in found_paraphrases]
        + [ProbePrompt("neighbour", n) for n in found_neighbours if subject not in n]
    )


def _from_datasets(prompt: str, subject: str) -> tuple[list[str], list[str]]:
    from factscope.story.capabilities import available

    if not available("datasets"):
        return [], []
    from factscope.study.datasets import list_datasets, load_dataset

    for name in list_datasets():
        dataset = load_dataset(name)
        for record in dataset.records:
            if record.subject == subject:
                return list(record.paraphrases), list(record.neighbourhood)
        if dataset.relation.prompt(subject) == prompt:
            templates = dataset.relation.paraphrase_templates
            return [t.replace("{}", subject) for t in templates[:3]], []
    return [], []


@torch.inference_mode()
def answer_probabilities(
    lm: LoadedModel, probes: Sequence[ProbePrompt], new: str, old: str
) -> list[dict[str, Any]]:
    """For each prompt: p(new), p(old) (first tokens, each as the prompt would continue)
    and the model's top token."""
    from factscope.edit.rome import answer_ids

    rows = []
    for probe in probes:
        tokens = lm.encode(probe.prompt)
        probs = lm.model(tokens, logits_at="last")[0, -1].float().softmax(-1)
        new_id = answer_ids(lm.tokenizer, probe.prompt, new)[0]
        old_id = answer_ids(lm.tokenizer, probe.prompt, old)[0]
        top = int(probs.argmax())
        rows.append(
            {
                **asdict(probe),
                "p_new": float(probs[new_id]),
                "p_old": float(probs[old_id]),
                "top": lm.tokenizer.token_str(top),
                "new_wins": float(probs[new_id]) > float(probs[old_id]),
            }
        )
    return rows


def edit_and_measure(
    lm: LoadedModel,
    prompt: str,
    subject: str,
    new: str,
    old: str,
    *,
    layer: int | None = None,
    probes: Sequence[ProbePrompt] | None = None,
    keep: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> tuple[dict[str, Any], Any]:
    """Edit the fact to `new` with ROME, measure before/after, and undo unless `keep`.

    Returns (the record, the edit handle). The record holds the rows before, after and
    (if undone) after undo, whether undo restored the weights bit for bit, and the layer."""
    from factscope.edit import EditRequest, edit

    probes = list(probes) if probes is not None else test_prompts(prompt, subject)
    progress("measuring before the edit")
    before = answer_probabilities(lm, probes, new, old)
    request = EditRequest(prompt, subject, new.strip(), old.strip() or None)
    weights = {
        name: p.detach().clone() for name, p in lm.model.named_parameters() if "down_proj" in name
    }
    progress("computing the rank-one edit (ROME)")
    handle = edit(lm, request, "rome", layer)
    progress("measuring after the edit")
    after = answer_probabilities(lm, probes, new, old)
    record: dict[str, Any] = {
        "prompt": prompt,
        "subject": subject,
        "new": new,
        "old": old,
        "method": "rome",
        "layers": list(handle.layers),
        "before": before,
        "after": after,
        "undone": False,
    }
    if not keep:
        handle.undo()
        restored = all(
            torch.equal(p, weights[name])
            for name, p in lm.model.named_parameters()
            if name in weights
        )
        record.update(
            undone=True,
            restored_exactly=restored,
            after_undo=answer_probabilities(lm, probes, new, old),
        )
    return record, handle


def edit_sentences(record: dict[str, Any]) -> list[str]:
    """The edit's effect in words, from `edit_and_measure`'s record."""
    new, old = repr(record["new"].strip()), repr(record["old"].strip())
    before, after = record["before"], record["after"]
    sentences = [
        f"A rank-one edit of the MLP in layer {', '.join(map(str, record['layers']))} (ROME) "
        f"makes p({new}) on the prompt go from {before[0]['p_new']:.3f} to "
        f"{after[0]['p_new']:.3f}, and p({old}) from {before[0]['p_old']:.3f} to "
        f"{after[0]['p_old']:.3f}; the top token is now {after[0]['top']!r}."
    ]
    for kind, what in (("paraphrase", "paraphrases"), ("neighbour", "neighbours")):
        rows = [(b, a) for b, a in zip(before, after, strict=True) if b["kind"] == kind]
        if not rows:
            continue
        wins = sum(a["new_wins"] for _, a in rows)
        mean_new = sum(a["p_new"] for _, a in rows) / len(rows)
        if kind == "paraphrase":
            sentences.append(
                f"On {len(rows)} {what}, {new} now beats {old} on {wins} "
                f"(mean p({new}) {mean_new:.3f}): the edit generalises "
                + ("well." if wins == len(rows) else "partly." if wins else "poorly.")
            )
        else:
            kept = len(rows) - wins
            sentences.append(
                f"On {len(rows)} {what} (other subjects), {kept} keep {old} ahead of {new} "
                f"(mean p({new}) {mean_new:.3f}): the edit is "
                + ("specific." if kept == len(rows) else "leaking to other subjects.")
            )
    if record.get("undone"):
        sentences.append(
            "Undone afterwards: the weights are restored "
            + ("bit for bit" if record.get("restored_exactly") else "NOT exactly")
            + f", and p({new}) on the prompt is back to {record['after_undo'][0]['p_new']:.3f}."
        )
    return sentences
