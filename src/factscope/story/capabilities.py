"""Which capabilities this installation has: a small registry, checked once per name.

The story page and the web app show a section (or a view) only when the module it needs
imports and exposes the functions it calls. Capabilities land at different times; a
missing one (its module not there, or an optional library it needs not installed) leaves
its section out instead of breaking the page, while an import error inside factscope itself
is raised. The check is the one place that imports a capability speculatively:
`Capability.available()`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from types import ModuleType


@dataclass(frozen=True)
class Capability:
    """A capability: the module that implements it and the names its users call."""

    name: str
    module: str
    names: tuple[str, ...]
    description: str

    def available(self) -> bool:
        """True when `module` imports and has every name in `names`."""
        return _module_with(self.module, self.names) is not None

    def load(self) -> ModuleType:
        """The module; call only after `available()` said yes."""
        module = _module_with(self.module, self.names)
        if module is None:
            raise RuntimeError(f"capability {self.name!r} is not available")
        return module


@cache
def _module_with(module: str, names: tuple[str, ...]) -> ModuleType | None:
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if not _not_installed(error.name, module):
            raise  # an import bug inside factscope: say so, never drop the chapter
        return None
    return found if all(hasattr(found, n) for n in names) else None


def _not_installed(missing: str | None, module: str) -> bool:
    """Whether the module Python could not find is the capability's own (it has not landed)
    or a library outside factscope (an optional dependency that is not installed). Any other
    failed import (another factscope module, a name missing from one) is a bug."""
    if missing is None:
        return False
    if module == missing or module.startswith(missing + "."):
        return True
    return missing.partition(".")[0] != "factscope"


CAPABILITIES: dict[str, Capability] = {
    c.name: c
    for c in (
        Capability(
            "predict", "factscope.predict", ("predict_next",), "the next-token distribution"
        ),
        Capability(
            "trace",
            "factscope.locate.trace",
            ("trace_prompt", "trace_fact"),
            "causal tracing (exact and attribution patching)",
        ),
        Capability(
            "lens",
            "factscope.locate.lens",
            ("lens_residuals", "attribute_prompt", "lens_sites"),
            "logit lens and direct logit attribution",
        ),
        Capability(
            "neurons",
            "factscope.read.neurons",
            ("find_neurons", "NeuronsResult"),
            "the neurons that write the answer",
        ),
        Capability(
            "superposition",
            "factscope.read.superposition",
            ("run_jl", "JLResult"),
            "many nearly-perpendicular directions in few dimensions",
        ),
        Capability(
            "datasets",
            "factscope.study.datasets",
            ("list_datasets", "load_dataset"),
            "packaged fact datasets (paraphrases, neighbours)",
        ),
        Capability("probe", "factscope.study.probe", ("probe_layers",), "linear probes"),
        Capability(
            "edit",
            "factscope.edit",
            ("edit", "EditRequest", "EditHandle"),
            "rank-one edits of a fact, with undo",
        ),
        Capability(
            "features",
            "factscope.features.inspect",
            ("inspect_prompt", "FeaturesResult"),
            "a sparse dictionary's latents on one prompt (SAEs, transcoders)",
        ),
        Capability(
            "train",
            "factscope.scratch.train",
            ("train", "load_run_record"),
            "training from scratch",
        ),
    )
}


def available(name: str) -> bool:
    """Whether capability `name` has landed (False for a name the registry does not know)."""
    capability = CAPABILITIES.get(name)
    return capability is not None and capability.available()


def available_names() -> list[str]:
    return [name for name, c in CAPABILITIES.items() if c.available()]
