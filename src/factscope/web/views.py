"""The views of the web app and the capabilities each needs; a view whose capability has
not landed is not offered (the page hides its tab, the server refuses its jobs)."""

from __future__ import annotations

from dataclasses import dataclass

from factscope.story.capabilities import available


@dataclass(frozen=True)
class View:
    name: str
    title: str
    needs: tuple[str, ...]  # capability names (story/capabilities.py)
    description: str

    def available(self) -> bool:
        return all(available(n) for n in self.needs)


VIEWS: tuple[View, ...] = (
    View("predict", "Predict", ("predict",), "the next tokens, as you type"),
    View("flow", "Flow", ("lens",), "the answer forming, layer by layer"),
    View("trace", "Trace", ("trace",), "where the fact is recalled (causal tracing)"),
    View("neurons", "Neurons", ("neurons",), "the neurons that write the answer"),
    View("features", "Features", ("features",), "a sparse dictionary's latents (--sae)"),
    View("edit", "Edit", ("edit",), "rewrite the fact, see what changes, undo"),
    View("superposition", "Superposition", ("superposition",), "nearly perpendicular vectors"),
    View("study", "Study", ("probe",), "probe curves of runs on disk"),
    View("train", "Train", ("train",), "training curves of runs on disk"),
)


def available_views() -> list[View]:
    return [v for v in VIEWS if v.available()]
