"""The bodies of the web app's jobs: each holds the model, calls a library function, and
returns plain JSON data. The page draws the data; nothing here knows about HTML.

Every body takes the ModelHost, the validated request (its model in schemas.py) and a
JobContext, and reports progress through the context (which is also where a cancel request
stops it). `JOB_KINDS` names them for the routes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from factscope.errors import FactscopeError
from factscope.hooks import hooks
from factscope.web.host import ModelHost
from factscope.web.jobs import JobContext
from factscope.web.schemas import (
    AttentionRequest,
    EditJobRequest,
    FeaturesRequest,
    FlowRequest,
    ModelRequest,
    NeuronsRequest,
    SuperpositionRequest,
    TraceRequest,
)


def flow_job(host: ModelHost, request: FlowRequest, context: JobContext) -> dict[str, Any]:
    """The logit lens of the answer at every (layer, token) and the heads that move it."""
    from factscope.story.flow import flow_of_fact

    context.report(0.0, "waiting for the model")
    with host.use("job:flow", yield_to_predictions=True) as lm:
        context.report(0.1, "reading every layer through the unembedding")
        flow = flow_of_fact(lm, request.prompt, request.subject, request.answer)
    return flow.to_dict()


def _progress_hook(
    context: JobContext, base: float, share: float, total: int, message: str
) -> Callable[[Any, str], None]:
    """A hook that reports progress base + share * (calls / total), and so also stops the
    computation (JobCancelled from `report`) at its next call after a cancel request."""
    calls = 0

    def count(x: Any, site: str) -> None:
        nonlocal calls
        calls += 1
        context.report(base + share * min(calls / total, 1.0), message)

    return count


def trace_job(host: ModelHost, request: TraceRequest, context: JobContext) -> dict[str, Any]:
    """Causal trace of the three kinds. Approximate: one pass. Exact: one kind at a time,
    releasing the model between kinds (predictions typed meanwhile go through), with
    progress counted by a hook on the last block, which every re-run batch passes once."""
    from factscope.locate.corruption import KINDS, TraceSpec
    from factscope.locate.trace import trace_spec

    spec = TraceSpec(
        request.prompt,
        request.subject,
        request.answer,
        samples=request.samples,
        window=request.window,
        seed=request.seed,
    )
    method = request.method
    exact = method == "exact"
    kinds_per_step = [[kind] for kind in KINDS] if exact else [list(KINDS)]
    traces: list[dict[str, Any]] = []
    for step, kinds in enumerate(kinds_per_step):
        base = step / len(kinds_per_step)
        context.report(base, f"waiting for the model ({', '.join(kinds)})")
        with host.use(f"job:trace:{kinds[0]}", yield_to_predictions=True) as lm:
            L = lm.cfg.n_layers
            n_tokens = len(lm.tokenizer.encode(request.prompt))
            per_batch = max(1, 256 // request.samples)
            total = n_tokens * math.ceil(L / per_batch) + 2  # an upper bound of re-runs
            share = 1.0 / len(kinds_per_step)
            count = _progress_hook(context, base, share, total, f"tracing {', '.join(kinds)}")
            with hooks(lm.model, {f"blocks.{L - 1}.resid_post": count}):
                results = trace_spec(lm, dataclasses.replace(spec, kinds=kinds), method=method)
        traces += [r.to_dict() for r in results.values()]
    return {"traces": traces}


def edit_job(host: ModelHost, request: EditJobRequest, context: JobContext) -> dict[str, Any]:
    """Apply a rank-one edit to the served model (kept until undone) and measure the prompt,
    paraphrases and neighbours before and after; with `retrace`, also where each answer is
    read out (`edit.measure.recall`: the lens and the approximate trace) before and after."""
    from factscope.edit.measure import recall
    from factscope.locate.prompts import encode_prompt, predicted_answer
    from factscope.story.editing import edit_and_measure, test_prompts

    context.report(0.0, "waiting for the model")
    with host.use("job:edit", yield_to_predictions=True) as lm:
        tokens = encode_prompt(lm.model, lm.tokenizer, request.prompt)
        old = request.old or predicted_answer(lm.model, lm.tokenizer, tokens).text
        probes = test_prompts(
            request.prompt, request.subject, request.paraphrases,
            request.neighbours,
        )  # fmt: skip
        answers = [request.new, old]
        if request.retrace:
            context.report(0.1, "tracing the answers before the edit")
            recall_before = recall(lm, request.prompt, request.subject, answers)
        record, handle = edit_and_measure(
            lm, request.prompt, request.subject, request.new, old,
            layer=request.layer, probes=probes, keep=True,
            progress=lambda message: context.report(0.3, message),
        )  # fmt: skip
        if request.retrace:
            context.report(0.8, "tracing the answers after the edit")
            after = recall(lm, request.prompt, request.subject, answers)
            record["recall"] = {"before": recall_before, "after": after}
        summary = f"{request.subject}: {old.strip()!r} → {request.new.strip()!r}"
        host.applied({"summary": summary, "layers": record["layers"]}, handle)
    return record


def neurons_job(host: ModelHost, request: NeuronsRequest, context: JobContext) -> dict[str, Any]:
    """The top neurons of the fact, their AND test, what they write, the ablation curves.
    Progress is counted (and a cancel honoured) at every unembedding of the final norm."""
    from factscope.read.neurons import find_neurons

    context.report(0.0, "waiting for the model")
    with host.use("job:neurons", yield_to_predictions=True) as lm:
        count = _progress_hook(context, 0.05, 0.9, 400, "scoring neurons, AND test, ablation")
        with hooks(lm.model, {"final_norm": count}):
            result = find_neurons(
                lm, request.prompt, request.subject, request.answer,
                top=request.top, max_k=request.max_k, draws=3,
            )  # fmt: skip
    return result.to_dict()


SAE_HINT = "no SAE here: start the server with `factscope serve --sae PATH` to see the features"


def features_job(host: ModelHost, request: FeaturesRequest, context: JobContext) -> dict[str, Any]:
    """The served dictionary on the prompt (`features.inspect.inspect_prompt`): the latents at
    every token, the top ones at the last subject token and the last token with the tokens
    their decoder promotes, attribution of log p(answer), and ablate/steer interventions."""
    from factscope.features.inspect import inspect_prompt

    if host.sae is None:
        raise FactscopeError(SAE_HINT)
    context.report(0.0, "waiting for the model")
    with host.use("job:features", yield_to_predictions=True) as lm:
        context.report(0.1, "splicing the SAE in; attribution; ablating and steering")
        result = inspect_prompt(
            lm, host.sae, request.prompt, subject=request.subject, answer=request.answer,
            top=request.top, steer_scale=request.steer,
        )  # fmt: skip
    return {**result.to_dict(), "sae": host.sae_path, "config": host.sae.cfg.to_dict()}


def attention_job(
    host: ModelHost, request: AttentionRequest, context: JobContext
) -> dict[str, Any]:
    """Every head's attention pattern at one layer, and the heads through which the last
    token attends most to the subject (one forward pass)."""
    from factscope.story.attention import attention_of_fact

    context.report(0.0, "waiting for the model")
    with host.use("job:attention", yield_to_predictions=True) as lm:
        context.report(0.2, "reading every head's attention pattern")
        result = attention_of_fact(lm, request.prompt, request.subject, layer=request.layer)
    return result.to_dict()


def superposition_job(
    host: ModelHost, request: SuperpositionRequest, context: JobContext
) -> dict[str, Any]:
    """The nearly-perpendicular-vectors experiment; needs no model, so it takes no lock."""
    from factscope.read.superposition import run_jl

    steps = max(request.steps, 1)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        context.report(done / steps, f"step {done} of {request.steps}")

    result = run_jl(request.n, request.dim, request.steps, seed=request.seed, progress=step)
    return result.to_dict()


R = TypeVar("R", bound=ModelRequest)


@dataclass(frozen=True)
class JobKind(Generic[R]):
    """A kind of job: its request, its body, and the view (capability) it belongs to."""

    request: type[R]
    body: Callable[[ModelHost, R, JobContext], dict[str, Any]]
    view: str
    cached: bool = True  # False for jobs with side effects (an edit changes the model)
    needs_sae: bool = False  # refused (with SAE_HINT) unless the server was given --sae


JOB_KINDS: dict[str, JobKind[Any]] = {
    "flow": JobKind(FlowRequest, flow_job, "flow"),
    "trace": JobKind(TraceRequest, trace_job, "trace"),
    "neurons": JobKind(NeuronsRequest, neurons_job, "neurons"),
    "attention": JobKind(AttentionRequest, attention_job, "neurons"),
    "features": JobKind(FeaturesRequest, features_job, "features", needs_sae=True),
    "edit": JobKind(EditJobRequest, edit_job, "edit", cached=False),
    "superposition": JobKind(SuperpositionRequest, superposition_job, "superposition"),
}
