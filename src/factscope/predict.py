"""The model's next-token distribution for a prompt, as plain data."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from factscope.load import LoadedModel
from factscope.result import Result


@dataclass(frozen=True)
class Candidate:
    """One candidate next token: its text, id, probability and raw logit."""

    token: str
    id: int
    prob: float
    logit: float


@dataclass(frozen=True)
class Prediction(Result):
    """The top next tokens after `prompt`; `tokens` is the prompt as the model saw it."""

    model: str
    prompt: str
    tokens: list[str]
    top: list[Candidate]

    def _repr_html_(self) -> str:
        """The top tokens as the reports show them, inline in a notebook."""
        from factscope.report.html import render_fragment
        from factscope.report.locate_html import prediction_sections

        return render_fragment(prediction_sections(self.to_dict()))


@torch.inference_mode()
def predict_next(lm: LoadedModel, prompt: str, top_k: int = 10) -> Prediction:
    """Run the prompt once and return the `top_k` most likely next tokens."""
    tokens = lm.encode(prompt)
    logits = lm.model(tokens, logits_at="last")[0, -1].float()  # (V,)
    probs = logits.softmax(-1)
    top = torch.topk(probs, min(top_k, probs.shape[0]))
    candidates = [
        Candidate(lm.tokenizer.decode([i]), i, float(probs[i]), float(logits[i]))
        for i in top.indices.tolist()
    ]
    pieces = [lm.tokenizer.token_str(i) for i in tokens[0].tolist()]
    return Prediction(lm.name, prompt, pieces, candidates)
