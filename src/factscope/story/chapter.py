"""What a chapter of the story is: the context the chapters share, and what one writes.

Each chapter (story/chapters/) runs one capability on the fact, keeps its typed result,
writes sentences from the numbers, and hands the sections (figures, tables) to the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factscope.load import LoadedModel
from factscope.progress import Messages
from factscope.report.html import Section
from factscope.story.capabilities import available


@dataclass
class StoryContext:
    """What the chapters share: the model, the fact, the options, and earlier results."""

    lm: LoadedModel
    prompt: str
    subject: str
    answer: str | None  # the answer followed (set by the prediction chapter if None)
    new: str | None
    exact: bool
    samples: int
    progress: Messages
    probe_facts: int = 300  # facts of the matching dataset the probe trains on (0: no probe)
    probe_known: Path | None = None  # a `factscope know` run: train on the known facts only
    sae: Any = None  # a SparseDictionary that fits the model: the features chapter reads it
    results: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChapterResult:
    """One chapter as written: sentences first, then the sections with figures and tables."""

    name: str
    title: str
    sentences: list[str]
    sections: list[Section]
    data: dict[str, Any]


@dataclass(frozen=True)
class Chapter:
    """A chapter of the story and the capabilities it needs."""

    name: str
    title: str
    needs: tuple[str, ...]
    write: Callable[[StoryContext], ChapterResult]
    wanted: Callable[[StoryContext], bool] = lambda context: True

    def available(self) -> bool:
        return all(available(n) for n in self.needs)


def quoted(token: str) -> str:
    """A token as the sentences show it: ' Paris' with its spaces visible."""
    return repr(token)


def layer_ranges(layers: Sequence[int]) -> str:
    """[3, 4, 5, 8] -> "3–5 and 8"."""
    runs: list[list[int]] = []
    for layer in sorted(layers):
        if runs and layer == runs[-1][-1] + 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    parts = [f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
