"""The answer forming inside the model: the logit lens at every layer and every token.

This is the real version of the animation people share of a model "thinking": tokens as
columns, layers as rows, each cell how strongly the residual stream there already says the
answer. Read through the model's own final norm and unembedding (the logit lens), a cell
gives the answer's probability, its rank among all tokens, and its logit, which is the
residual's projection on the answer's unembedding direction after the final norm.

The arrows of the picture are the attention heads that write the answer most directly
into the last token (direct logit attribution, locate/lens.py), each drawn from the
subject token it attends to most.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from factscope.hooks import run_with_cache
from factscope.load import LoadedModel
from factscope.locate.lens import attribute_prompt, lens_residuals, lens_sites
from factscope.locate.prompts import answer_token, encode_prompt, predicted_answer
from factscope.result import Result


@dataclass(frozen=True)
class FlowHead:
    """One attention head that writes the answer into the last token."""

    layer: int
    head: int
    dla: float  # its direct contribution to the answer's logit
    attention_to_subject: float  # attention weight of the last token on the subject tokens
    source: int  # the subject token it attends to most (index into tokens)


@dataclass(frozen=True)
class FlowResult(Result):
    """The logit lens of the answer at every (layer, token), and the heads that move it.

    Rows are the residual streams of `layers` (row 0: the embeddings; row i: the input of
    block i; the last row: the model's output). Grids are (rows, tokens).
    """

    model: str
    prompt: str
    subject: str | None
    tokens: list[str]
    subject_span: list[int] | None  # [start, stop) or None
    answer: dict[str, Any]  # text, id, token
    layers: list[str]
    prob: list[list[float]]  # p(answer) read by the lens
    rank: list[list[int]]  # rank of the answer, 0 = top-1
    logit: list[list[float]]  # the answer's lens logit (projection on its direction)
    top1: list[list[str]]  # the lens's top token
    heads: list[FlowHead]  # strongest heads by direct logit attribution

    def first_top1_layer(self) -> int | None:
        """The first row from which the answer stays top-1 at the last token, else None."""
        first = None
        for row, ranks in enumerate(self.rank):
            if ranks[-1] == 0 and first is None:
                first = row
            elif ranks[-1] != 0:
                first = None
        return first

    def _repr_html_(self) -> str:
        from factscope.report.html import render_fragment
        from factscope.report.story_html import flow_section

        return render_fragment([flow_section(self.to_dict())])


@torch.no_grad()
def flow_of_fact(
    lm: LoadedModel,
    prompt: str,
    subject: str | None = None,
    answer: str | None = None,
    n_heads: int = 5,
) -> FlowResult:
    """The logit lens of `answer` (default: the model's prediction) at every layer and
    token of `prompt`, and the `n_heads` heads with the largest direct logit attribution,
    each with where it looks among the subject's tokens (`subject` optional)."""
    model, tokenizer = lm.model, lm.tokenizer
    tokens = encode_prompt(model, tokenizer, prompt)  # (1, T)
    target = (
        predicted_answer(model, tokenizer, tokens)
        if answer is None
        else answer_token(tokenizer, answer)
    )
    span = tokenizer.find_subject_span(prompt, subject) if subject else None
    resid = lens_residuals(model, tokens)  # (R, T, D)
    probs, ranks, logits_of_answer, top1 = [], [], [], []
    for row in resid:  # one residual stream at a time: (T, V) logits, not (R, T, V)
        logits = model.unembed_residual(row[None])[0].float()  # (T, V)
        answer_logit = logits[:, target.id]  # (T,)
        probs.append(torch.softmax(logits, -1)[:, target.id].tolist())
        ranks.append((logits > answer_logit[:, None]).sum(-1).tolist())
        logits_of_answer.append(answer_logit.tolist())
        top1.append([tokenizer.token_str(int(i)) for i in logits.argmax(-1)])

    L = model.cfg.n_layers
    _, cache = run_with_cache(model, tokens, [f"blocks.{i}.attn.pattern" for i in range(L)])
    last_row = torch.stack([cache[f"blocks.{i}.attn.pattern"][0, :, -1] for i in range(L)])
    # last_row: (L, H, T), the attention of the last token on every token, per head
    dla = attribute_prompt(lm, prompt, target.text)
    per_head = torch.tensor(dla.heads)  # (L, H)
    order = torch.argsort(per_head.flatten(), descending=True)[:n_heads]
    start, stop = span if span is not None else (0, tokens.shape[1])
    heads = []
    for index in order.tolist():
        layer, head = divmod(index, per_head.shape[1])
        on_subject = last_row[layer, head, start:stop]  # (n_subject,)
        heads.append(
            FlowHead(
                layer=layer,
                head=head,
                dla=float(per_head[layer, head]),
                attention_to_subject=float(on_subject.sum()),
                source=start + int(on_subject.argmax()),
            )
        )
    return FlowResult(
        model=lm.name,
        prompt=prompt,
        subject=subject,
        tokens=[tokenizer.token_str(i) for i in tokens[0].tolist()],
        subject_span=list(span) if span is not None else None,
        answer={"text": target.text, "id": target.id, "token": target.token},
        layers=[s.removeprefix("blocks.") for s in lens_sites(model)],
        prob=probs,
        rank=ranks,
        logit=logits_of_answer,
        top1=top1,
        heads=heads,
    )
