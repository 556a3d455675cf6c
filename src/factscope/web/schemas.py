"""The web app's request bodies: every field validated (lengths, ranges; a model is named,
never given as a path). The field types are written once and shared, so a prompt is checked
the same way in every request that takes one."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_BODY_BYTES = 16 * 1024
MAX_PROMPT_CHARS = 1000
MAX_PROMPT_TOKENS = 256
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # a name: no slash, no path


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty; type some text")
    return value


def _short_prompts(prompts: list[str] | None) -> list[str] | None:
    if prompts is not None and any(not p.strip() or len(p) > 300 for p in prompts):
        raise ValueError("must be non-empty prompts of at most 300 characters")
    return prompts


Prompt = Annotated[
    str, Field(min_length=1, max_length=MAX_PROMPT_CHARS), AfterValidator(_not_blank)
]
Subject = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
MaybeSubject = Annotated[str, Field(max_length=200), AfterValidator(_not_blank)] | None
Answer = Annotated[str, Field(min_length=1, max_length=100)]
NewAnswer = Annotated[Answer, AfterValidator(_not_blank)]
Layer = Annotated[int, Field(ge=0, le=1000)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
Prompts = Annotated[list[str] | None, Field(max_length=8), AfterValidator(_short_prompts)]


class ModelRequest(BaseModel):
    """A request to the served model: no field beyond those declared, and a model, if
    named, by its name (`check_model` says whether it is the one served)."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(
        None, pattern=MODEL_NAME, description="a model name; must be the one served"
    )


class PredictRequest(ModelRequest):
    prompt: Prompt
    top_k: int = Field(10, ge=1, le=50)


class FlowRequest(ModelRequest):
    prompt: Prompt
    subject: MaybeSubject = None
    answer: Answer | None = None


class FactRequest(ModelRequest):
    """A question about one fact: the prompt, its subject and (if not the model's own
    prediction) the answer."""

    prompt: Prompt
    subject: Subject
    answer: Answer | None = None


class TraceRequest(FactRequest):
    method: Literal["approx", "exact"] = "approx"
    samples: int = Field(3, ge=1, le=50)
    window: int = Field(10, ge=1, le=64)
    seed: Seed = 0


class NeuronsRequest(FactRequest):
    top: int = Field(10, ge=1, le=50)
    max_k: int = Field(50, ge=1, le=500)


class FeaturesRequest(FactRequest):
    top: int = Field(3, ge=1, le=10)  # latents per position with promoted tokens and tests
    steer: float = Field(10.0, ge=-1000, le=1000)  # added to a latent when steering


class AttentionRequest(ModelRequest):
    prompt: Prompt
    subject: Subject
    layer: Layer | None = None


class SuperpositionRequest(ModelRequest):
    n: int = Field(500, ge=2, le=2000)
    dim: int = Field(50, ge=2, le=300)
    steps: int = Field(200, ge=0, le=1000)
    seed: Seed = 0


class EditJobRequest(ModelRequest):
    prompt: Prompt
    subject: Subject
    new: NewAnswer
    old: Answer | None = None
    layer: Layer | None = None
    paraphrases: Prompts = None
    neighbours: Prompts = None
    retrace: bool = False  # also the lens and approximate trace of both answers, before/after


JobRequest = (
    FlowRequest
    | TraceRequest
    | NeuronsRequest
    | FeaturesRequest
    | AttentionRequest
    | SuperpositionRequest
    | EditJobRequest
)
