"""`factscope explain-fact`: the whole story of one fact, in plain words and measured numbers.

The story is told in chapters, each computed by one capability and written from its
results: what the model predicts; where the fact is recalled (causal tracing); how it is
moved to the last token (logit lens, direct logit attribution, the heads); which neurons
write it and whether they act as an AND of the subject's names; whether a linear probe
reads it (trained on the packaged dataset that asks the same question); what a rank-one
edit to a new answer does, undone afterwards; with a sparse dictionary, which of its latents
fire on the fact and what they do. `CHAPTERS` is the registry: a chapter whose
capability has not landed (story/capabilities.py) is left out and named in
`Story.skipped`, never half-drawn.

Every sentence is generated from the numbers of this run; nothing is hard-coded about a
particular model or fact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from factscope.errors import FactscopeError
from factscope.load import LoadedModel
from factscope.progress import Messages
from factscope.report.html import Section, render_report
from factscope.story.chapter import Chapter, ChapterResult, StoryContext
from factscope.story.chapters.edit import edit_chapter
from factscope.story.chapters.features import features_chapter
from factscope.story.chapters.flow import flow_chapter
from factscope.story.chapters.neurons import neurons_chapter
from factscope.story.chapters.prediction import prediction_chapter
from factscope.story.chapters.probe import probe_chapter
from factscope.story.chapters.trace import trace_chapter


@dataclass
class Story:
    """The chapters written for one fact, and the chapters left out (capability absent)."""

    model: str
    prompt: str
    subject: str
    answer: dict[str, Any]
    chapters: list[ChapterResult]
    skipped: list[str]
    options: dict[str, Any]

    def summary(self) -> list[str]:
        """The first sentence of every chapter: the story in a few lines."""
        return [f"{c.title}: {c.sentences[0]}" for c in self.chapters if c.sentences]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": self.prompt,
            "subject": self.subject,
            "answer": self.answer,
            "options": self.options,
            "skipped": self.skipped,
            "chapters": {
                c.name: {"title": c.title, "sentences": c.sentences, "data": c.data}
                for c in self.chapters
            },
        }


# ---- the registry and the page -------------------------------------------------------------------

CHAPTERS: tuple[Chapter, ...] = (
    Chapter("prediction", "What the model predicts", ("predict",), prediction_chapter),
    Chapter("trace", "Where the fact is recalled", ("trace",), trace_chapter),
    Chapter("flow", "How it is moved to the last token", ("lens",), flow_chapter),
    Chapter("neurons", "Which neurons write it", ("neurons",), neurons_chapter),
    Chapter(
        "probe",
        "Whether a linear probe reads it",
        ("datasets", "probe"),
        probe_chapter,
        wanted=lambda context: context.probe_facts > 0,
    ),
    Chapter(
        "edit",
        "What a rank-one edit does",
        ("edit",),
        edit_chapter,
        wanted=lambda context: context.new is not None,
    ),
    Chapter(
        "features",
        "Which features of a sparse dictionary carry it",
        ("features",),
        features_chapter,
        wanted=lambda context: context.sae is not None,
    ),
)


def explain_fact(
    lm: LoadedModel,
    prompt: str,
    subject: str,
    *,
    answer: str | None = None,
    new: str | None = None,
    exact: bool = False,
    samples: int = 3,
    probe_facts: int = 300,
    probe_known: Path | None = None,
    progress: Messages | None = None,
    chapters: Sequence[Chapter] | None = None,
    sae: Any = None,
) -> Story:
    """Compute every available chapter of the story of the fact in `prompt` about
    `subject` (answer: the model's prediction unless given; `new`: the edit's target;
    `probe_facts`: how many facts of the matching dataset the probe trains on, 0: none;
    `probe_known`: a `factscope know` run whose known facts it trains on instead of all;
    `sae`: a sparse dictionary that fits the model, for the features chapter)."""
    from factscope.locate.prompts import encode_prompt

    encode_prompt(lm.model, lm.tokenizer, prompt)  # a clear error before any work
    lm.tokenizer.find_subject_span(prompt, subject)
    context = StoryContext(
        lm, prompt, subject, answer, new, exact, samples, progress or (lambda message: None),
        probe_facts, probe_known, sae,
    )  # fmt: skip
    written, skipped = [], []
    for chapter in CHAPTERS if chapters is None else chapters:
        if not chapter.wanted(context):
            continue
        if not chapter.available():
            skipped.append(chapter.name)
            continue
        try:
            written.append(chapter.write(context))
        except FactscopeError as error:  # present but unable here (e.g. missing data): said
            skipped.append(f"{chapter.name} ({error})")
    prediction = context.results.get("prediction", {})
    answer_info = next(
        (t["answer"] for t in context.results.get("trace", [])[:1]),
        {"token": context.answer, "from": "prediction" if answer is None else "given"},
    )
    return Story(
        model=lm.name,
        prompt=prompt,
        subject=subject,
        answer={**answer_info, "top": (prediction.get("top") or [{}])[0]},
        chapters=written,
        skipped=skipped,
        options={
            "exact": exact,
            "samples": samples,
            "new": new,
            "answer": answer,
            "probe_facts": probe_facts,
            "probe_known": None if probe_known is None else str(probe_known),
            "sae": None if sae is None else sae.cfg.to_dict(),
        },
    )


def story_sections(story: Story) -> list[Section]:
    """The chapters as report sections: each chapter's sentences, then its figures."""
    sections = []
    for chapter in story.chapters:
        lead, *rest = chapter.sections or [Section(chapter.title)]
        sections.append(
            Section(
                chapter.title,
                text=[*chapter.sentences, *lead.text],
                figures=lead.figures,
                tables=lead.tables,
            )
        )
        sections.extend(rest)
    return sections


def story_page(story: Story, *, command: str | None = None, created: datetime | None = None) -> str:
    """The whole story as one self-contained HTML page (inline SVG, no network)."""
    summary = Section(
        "The story in short",
        text=story.summary()
        + (
            [f"Not in this page (capability absent or unable here): {'; '.join(story.skipped)}."]
            if story.skipped
            else []
        ),
    )
    return render_report(
        f"The story of a fact: {story.prompt} → {story.answer.get('token')!r}",
        [summary, *story_sections(story)],
        story.to_dict(),
        command=command,
        data_name="story.json",
        created=created,
    )


__all__ = ["CHAPTERS", "Chapter", "ChapterResult", "Story", "StoryContext", "explain_fact"]
