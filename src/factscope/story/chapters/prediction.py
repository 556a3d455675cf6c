"""Chapter 1: what the model predicts after the prompt."""

from __future__ import annotations

from factscope.report.locate_html import prediction_sections
from factscope.report.story_plots import prediction_bar
from factscope.story.chapter import ChapterResult, StoryContext, quoted


def prediction_chapter(context: StoryContext) -> ChapterResult:
    from factscope.locate.prompts import answer_token
    from factscope.predict import predict_next

    context.progress("predicting the next token")
    prediction = predict_next(context.lm, context.prompt, 10)
    top = prediction.top
    sentences = [
        f"{context.lm.name} continues {context.prompt!r} with {quoted(top[0].token)} "
        f"(p = {top[0].prob:.3f}); the runner-up is {quoted(top[1].token)} "
        f"(p = {top[1].prob:.3f})."
    ]
    if context.answer is None:
        context.answer = top[0].token
    else:
        wanted = answer_token(context.lm.tokenizer, context.answer)
        ranks = [c.id for c in top]
        where = (
            f"ranked {ranks.index(wanted.id) + 1}" if wanted.id in ranks else "not among the top 10"
        )
        sentences.append(f"The answer followed here, {quoted(wanted.token)}, is {where}.")
    data = prediction.to_dict()
    context.results["prediction"] = data
    sections = prediction_sections(data)
    sections[0].figures.append(prediction_bar(top))
    return ChapterResult("prediction", "What the model predicts", sentences, sections, data)
