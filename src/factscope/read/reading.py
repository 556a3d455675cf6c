"""What every reading of one fact starts with: the model, the prompt, the subject and the
answer, and how the prompt was cut into tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from factscope.locate.prompts import AnswerToken
from factscope.result import Result
from factscope.tokenizer import Tokenizer, spell_tokens


@dataclass
class FactReading(Result):
    """The fact a result reads: `answer` is `AnswerToken.to_dict()`, `tokens` the prompt's
    tokens spelled out and `subject_span` the subject's [start, stop) among them."""

    model: str
    prompt: str
    subject: str
    answer: dict[str, Any]  # text, id, token, note
    tokens: list[str]
    subject_span: list[int]  # [start, stop)


def fact_fields(
    model: str,
    prompt: str,
    subject: str,
    target: AnswerToken,
    tokenizer: Tokenizer,
    tokens: Tensor,
    span: tuple[int, int],
) -> dict[str, Any]:
    """The `FactReading` fields of a result about `prompt`, its (1, T) `tokens`, `subject`
    at `span` and the answer `target`, to pass as keyword arguments."""
    return {
        "model": model,
        "prompt": prompt,
        "subject": subject,
        "answer": target.to_dict(),
        "tokens": spell_tokens(tokenizer, tokens[0].tolist()),
        "subject_span": [span[0], span[1]],
    }
