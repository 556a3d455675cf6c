"""Prompts and answers as token ids, for the tools that locate a fact.

A prompt becomes a (1, T) tensor of ids, BOS first when the checkpoint wants one. An answer
is a string such as " basketball" (mind the leading space: it is part of the word's token)
and is scored by its FIRST token only: every tool here asks "how likely is the next token",
and a multi-token answer is judged by how it begins. `AnswerToken.note` says so when the
answer has more than one token, so results can carry that caveat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from factscope.errors import FactscopeError
from factscope.model import Transformer
from factscope.tokenizer import Tokenizer


@dataclass(frozen=True)
class AnswerToken:
    """The token an answer string is scored by: its first token."""

    text: str  # the answer as given, e.g. " basketball"
    id: int  # id of its first token
    token: str  # that token, spelled for humans, e.g. " basketball" or " basket"
    n_tokens: int  # how many tokens the whole answer has

    @property
    def note(self) -> str | None:
        """A one-line caveat when only part of the answer is scored, else None."""
        if self.n_tokens == 1:
            return None
        return (
            f"answer {self.text!r} is {self.n_tokens} tokens; only its first, "
            f"{self.token!r}, is scored"
        )

    def to_dict(self) -> dict[str, Any]:
        """The answer as a result records it: text, id, token and the note (or None)."""
        return {"text": self.text, "id": self.id, "token": self.token, "note": self.note}


def encode_prompt(model: Transformer, tokenizer: Tokenizer, prompt: str) -> Tensor:
    """Token ids of `prompt` as a (1, T) tensor on the model's device."""
    if not prompt:
        raise FactscopeError("the prompt is empty; give some text for the model to continue")
    ids = tokenizer.encode(prompt)
    if not ids:
        raise FactscopeError(f"prompt {prompt!r} encodes to no tokens; give some text")
    if len(ids) > model.cfg.context_length:
        raise FactscopeError(
            f"the prompt is {len(ids)} tokens, longer than the model's context of "
            f"{model.cfg.context_length}; shorten it"
        )
    return torch.tensor([ids], device=model.device)


def answer_token(tokenizer: Tokenizer, answer: str) -> AnswerToken:
    """The first token of `answer`, encoded as a continuation (no BOS)."""
    ids = tokenizer.encode(answer, add_bos=False) if answer else []
    if not ids:
        raise FactscopeError(
            f"answer {answer!r} has no tokens; give the expected continuation, e.g. ' Paris'"
        )
    return AnswerToken(answer, ids[0], tokenizer.token_str(ids[0]), len(ids))


def predicted_answer(model: Transformer, tokenizer: Tokenizer, tokens: Tensor) -> AnswerToken:
    """The model's own top-1 next token after `tokens` (1, T), as an answer."""
    with torch.no_grad():
        top = int(model(tokens, logits_at="last")[0, -1].argmax())
    token = tokenizer.token_str(top)
    return AnswerToken(token, top, token, 1)
