"""Chapter 7 (with `--sae`): which latents of a sparse dictionary fire on the fact, what
their decoder directions write, and what ablating or steering them does to p(answer)."""

from __future__ import annotations

from factscope.report.features_html import features_sections
from factscope.story.chapter import ChapterResult, StoryContext, quoted


def features_chapter(context: StoryContext) -> ChapterResult:
    from factscope.features.inspect import inspect_prompt

    sae = context.sae
    assert sae is not None
    cfg = sae.cfg
    context.progress(f"the {cfg.kind} SAE at layer {cfg.layer}: latents, attribution, ablation")
    result = inspect_prompt(
        context.lm, sae, context.prompt, subject=context.subject, answer=context.answer, top=3
    )
    data = {**result.to_dict(), "config": cfg.to_dict()}
    context.results["features"] = data
    p_clean, p_spliced = result.p_clean or 0.0, result.p_spliced or 0.0
    sentences = [
        f"Splicing the {cfg.kind} dictionary ({cfg.d_sae} latents, layer {cfg.layer} "
        f"{cfg.site}) in place of the activations takes p({quoted(result.answer or '')}) "
        f"from {p_clean:.3f} to {p_spliced:.3f}: what its reconstruction loses of the fact."
    ]
    for position, label in (("subject", "last subject token"), ("last", "last token")):
        boards = [b for b in result.dashboards if b.position == position]
        if not boards:
            sentences.append(f"No latent fires at the {label}.")
            continue
        best = boards[0]
        listed = ", ".join(f"#{b.latent} ({b.activation:.3g})" for b in boards)
        promoted = ", ".join(quoted(t) for t, _ in best.promotes[:3])
        sentences.append(
            f"At the {label}, the top latents are {listed}; #{best.latent}'s decoder "
            f"direction writes toward {promoted}."
        )
    if result.attribution:
        top = max(result.attribution, key=lambda r: r["ablation_delta"])
        sentences.append(
            f"The latent adding most to log p(answer) is #{top['latent']} at "
            f"{quoted(result.tokens[top['position']])}: zeroing it there lowers log p by "
            f"{top['ablation_delta']:.3g} (gradient x activation estimated "
            f"{top['grad_x_act']:.3g})."
        )
    for run in result.interventions[:2]:
        verb = "Ablating" if run["mode"] == "ablate" else f"Steering (+{run['scale']:g}) with"
        sentences.append(
            f"{verb} latent #{run['latent']} at the {run['from']} token takes p(answer) "
            f"from {run['p_before']:.3f} to {run['p_after']:.3f}."
        )
    return ChapterResult(
        "features",
        "Which features of a sparse dictionary carry it",
        sentences,
        features_sections(data),
        data,
    )
