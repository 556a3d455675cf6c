"""A rank-one edit seen from outside: p(new) and p(old) on the prompt, on paraphrases and
on neighbours (other subjects that should keep their answer), before and after the edit,
and again after undo. The prompts and the measurement are edit/measure.py's, the same the
`edit` command shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from factscope.edit.measure import ProbePrompt, measure, test_prompts
from factscope.load import LoadedModel
from factscope.progress import Messages

__all__ = ["ProbePrompt", "edit_and_measure", "edit_sentences", "test_prompts"]


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
    progress: Messages = lambda message: None,
) -> tuple[dict[str, Any], Any]:
    """Edit the fact to `new` with ROME, measure before/after, and undo unless `keep`.

    Returns (the record, the edit handle). The record holds the rows before, after and
    (if undone) after undo, whether undo restored the weights bit for bit, and the layer."""
    from factscope.edit import EditRequest, edit

    probes = list(probes) if probes is not None else test_prompts(prompt, subject)
    progress("measuring before the edit")
    before = measure(lm, probes, new, old)
    request = EditRequest(prompt, subject, new.strip(), old.strip() or None)
    weights = {
        name: p.detach().clone() for name, p in lm.model.named_parameters() if "down_proj" in name
    }
    progress("computing the rank-one edit (ROME)")
    handle = edit(lm, request, "rome", layer)
    progress("measuring after the edit")
    after = measure(lm, probes, new, old)
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
            after_undo=measure(lm, probes, new, old),
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
