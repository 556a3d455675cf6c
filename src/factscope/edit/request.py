"""What an edit asks for, and the prompts it is computed on: the request (prompt, subject,
new answer), ROME's context prefixes (the model's own short texts), and the right-padded
batch of "prefix + prompt + answer" rows with the subject's last token of each, where the
keys are read (ROME's `compute_u` side of the work). ROME, MEMIT and AlphaEdit share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from factscope.edit.fingerprint import model_identity
from factscope.errors import FactscopeError
from factscope.generate import Sampling, pick_token
from factscope.hooks import hooks
from factscope.model import KVCache, Transformer

if TYPE_CHECKING:
    from factscope.tokenizer import Tokenizer


# ---- what to edit ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EditRequest:
    """One fact to rewrite: `prompt` mentions `subject` and should continue with `new`.

    `new` and `old` are answers as a person types them ("baseball"); `target_text` adds the
    tokenizer's leading space when the prompt does not end in one."""

    prompt: str
    subject: str
    new: str
    old: str | None = None
    id: str = ""

    def check(self) -> None:
        if not self.subject.strip():
            raise FactscopeError("the subject is empty; give the words of the prompt it names")
        if self.subject not in self.prompt:
            raise FactscopeError(
                f"subject {self.subject!r} does not occur in prompt {self.prompt!r}; "
                "give it exactly as written in the prompt (case and spaces matter)"
            )
        if not self.new.strip():
            raise FactscopeError("the new answer is empty; give the answer to teach, e.g. baseball")
        if self.old is not None and self.new.strip() == self.old.strip():
            raise FactscopeError(
                f"the new answer {self.new.strip()!r} equals the old one; give a different answer"
            )


def target_text(prompt: str, answer: str) -> str:
    """The answer as the model would continue `prompt`: " baseball" after "... of"."""
    answer = answer.strip()
    return answer if prompt.endswith((" ", "\n")) else " " + answer


def answer_ids(tokenizer: Tokenizer, prompt: str, answer: str) -> list[int]:
    """Token ids of the answer as a continuation of the prompt (no BOS)."""
    ids = tokenizer.encode(target_text(prompt, answer), add_bos=False)
    if not ids:
        raise FactscopeError(f"answer {answer!r} encodes to no tokens; give some text")
    return ids


# ---- context prefixes -----------------------------------------------------------------------

_TEMPLATE_CACHE: dict[str, list[str]] = {}


@torch.inference_mode()
def context_templates(
    model: Transformer,
    tokenizer: Tokenizer,
    lengths: Sequence[tuple[int, int]] = ((5, 10), (10, 10)),
    top_k: int = 5,
    seed: int = 0,
) -> list[str]:
    """["{}"] + the model's own short texts, each followed by ". {}", as ROME makes them.

    For each (n, count) in `lengths`, `count` texts of n tokens sampled (top-k) from the start
    token alone (BOS, or EOS for checkpoints without one). Cached per model in this process,
    so every edit of a session, and every edit of an evaluation, uses the same prefixes."""
    key = f"{model_identity(model)}|{tuple(lengths)}|{top_k}|{seed}"
    if key in _TEMPLATE_CACHE:
        return list(_TEMPLATE_CACHE[key])
    start = tokenizer.bos_id if tokenizer.bos_id is not None else model.cfg.eos_token_id
    start_ids = [start] if start is not None else tokenizer.encode("The", add_bos=False)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    sampling = Sampling(temperature=1.0, top_k=top_k)
    templates = ["{}"]
    for n, count in lengths:
        tokens = torch.tensor([start_ids] * count, device=model.device)  # (count, 1)
        kv = KVCache.empty(model.cfg.n_layers)
        step, new = tokens, []
        for _ in range(n):
            logits = model(step, kv_cache=kv, logits_at="last")[:, -1]  # (count, V)
            step = pick_token(logits, sampling, generator)[:, None]
            new.append(step)
        for row in torch.cat(new, dim=1).tolist():
            text = tokenizer.decode(row).replace("{", " ").replace("}", " ")
            for special in ("<bos>", "<eos>", "<|endoftext|>", "<|im_end|>", "<|im_start|>"):
                text = text.replace(special, " ")
            templates.append(text.strip() + ". {}")
    _TEMPLATE_CACHE[key] = templates
    return list(templates)


# ---- batched prompts ------------------------------------------------------------------------


@dataclass
class PromptBatch:
    """Prompts as one right-padded batch (attention is causal, so padding after a prompt
    cannot change it). Rows 0..n_rewrite-1 are "context + prompt + answer[:-1]" and are
    scored on the answer's tokens; the rows after them are KL prompts."""

    tokens: Tensor  # (B, T)
    lookup: Tensor  # (B,) index of the subject's last token in each row
    target_rows: Tensor  # (N,) row of each scored position
    target_pos: Tensor  # (N,) position whose next token is scored
    target_ids: Tensor  # (N,) the token it should be
    n_rewrite: int
    lengths: list[int] = field(default_factory=list)


def build_batch(
    tokenizer: Tokenizer,
    contexts: Sequence[str],
    prompt: str,
    subject: str,
    answer: Sequence[int],
    kl_prompts: Sequence[str] = (),
    device: torch.device | str = "cpu",
) -> PromptBatch:
    """The rewriting rows (one per context template) and KL rows (subject formatted in)."""
    rows: list[list[int]] = []
    lookup: list[int] = []
    t_rows: list[int] = []
    t_pos: list[int] = []
    t_ids: list[int] = []
    for c, template in enumerate(contexts):
        text = template.format(prompt)
        ids = tokenizer.encode(text)
        lookup.append(tokenizer.find_subject_span(text, subject)[1] - 1)
        for j, a in enumerate(answer):
            t_rows.append(c)
            t_pos.append(len(ids) - 1 + j)
            t_ids.append(a)
        rows.append(ids + list(answer[:-1]))
    for template in kl_prompts:
        text = template.format(subject)
        rows.append(tokenizer.encode(text))
        lookup.append(tokenizer.find_subject_span(text, subject)[1] - 1)
    T = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
    return PromptBatch(
        tokens.to(device),
        torch.tensor(lookup, device=device),
        torch.tensor(t_rows, device=device),
        torch.tensor(t_pos, device=device),
        torch.tensor(t_ids, device=device),
        len(contexts),
        [len(r) for r in rows],
    )


@torch.no_grad()
def keys_at(model: Transformer, batch: PromptBatch, layer: int) -> Tensor:
    """The key (input of down_proj) at each row's subject's last token, (B, F)."""
    cache: dict[str, Tensor] = {}

    def record(x: Tensor, site: str) -> None:
        cache["k"] = x

    positions = torch.arange(batch.tokens.shape[1], device=model.device)
    with hooks(model, {f"blocks.{layer}.mlp.post": record}):
        model.run_blocks(model.embed_tokens(batch.tokens), positions, stop=layer + 1)
    rows = torch.arange(batch.tokens.shape[0], device=model.device)
    return cache["k"][rows, batch.lookup]
