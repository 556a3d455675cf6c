"""How `factscope --help` reads: commands grouped by capability, as the library is.

`PANELS` is the one table of where each command appears and the one line that sums it up;
a new command gets a row here (the tests fail on a command without one). The panels follow
the library's flow: run a model, pick one, locate a fact, read it, study many, edit, build a
model from scratch, see it all in one page or the app.

`arrange(app)` applies the table to the typer app once, after every capability registered
its commands: it sets each command's panel and summary, lists the commands in the table's
order, reflows hard-wrapped docstrings into paragraphs, and builds every command from
command.py's classes (flags shown as flags, numbers checked finite).
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import typer
from typer.main import solve_typer_info_help
from typer.models import CommandInfo, TyperInfo

from factscope.cli.command import Command, Group

# panel -> {command: one-line summary}, in the order `--help` shows them
PANELS: dict[str, dict[str, str]] = {
    "Core": {
        "predict": "The most likely next tokens after a prompt.",
        "generate": "Continue a prompt, greedy or sampled (KV-cached).",
    },
    "Models": {
        "models": "The named models and whether each is installed.",
        "info": "A model's config and parameter counts (no weights loaded).",
        "params": "Parameters by component of a named architecture (GPT-3: 175B).",
    },
    "Locate": {
        "trace": "Causal tracing: which states restore a corrupted fact (ROME).",
        "patch": "Activation patching from a clean prompt into a corrupt one.",
        "lens": "Logit lens and direct logit attribution of the answer.",
    },
    "Read": {
        "neurons": "The MLP neurons behind a fact: scores, AND test, ablation.",
        "directions": "The answer's direction through layers and tokens; class means.",
        "knockout": "Attention knockout: where the last token reads the subject.",
        "superposition": "More directions than dimensions: jl, capacity, toy, model.",
        "sae": "Sparse autoencoders and transcoders: train, evaluate, load.",
        "features": "The sparse-autoencoder latents behind a prompt's answer.",
    },
    "Study": {
        "know": "Which facts of a relation the model knows, and how many survive.",
        "probe": "Linear probes for the answer at every layer, with controls.",
        "trace-many": "Causal traces averaged over many known facts (ROME Fig. 2).",
    },
    "Edit": {
        "edit": "Rewrite one fact (ROME, MEMIT, AlphaEdit); p before and after.",
        "edit-eval": "CounterFact-style scores of many edits (ES, PS, NS, S); resumes.",
    },
    "Build": {
        "corpus": "Made-up people, biographies and QA pairs (Physics of LMs 3.1).",
        "train": "Train a small Llama-style model; checkpoints resume exactly.",
        "knowledge": "Attribute accuracy of a trained model: trained vs held-out people.",
        "explain": "Worked examples: the article's first network, one block's trip.",
    },
    "See": {
        "serve": "A local web app over one model: Predict, Flow, Trace and more.",
        "explain-fact": "The whole story of one fact in one self-contained HTML page.",
    },
}

# the summaries of subcommands, by their path
SUBCOMMANDS: dict[str, str] = {
    "explain basics": "The leaf/flower network of the article, by hand and trained.",
    "explain layer": "One token's trip through one block, read from the hook sites.",
    "superposition jl": "N random unit vectors in d dims pushed apart by Adam.",
    "superposition capacity": "The largest N that fits with every |cos| <= eps, per d.",
    "superposition toy": "Toy Models of Superposition: sparsity sweep and phase diagram.",
    "superposition model": "Angles between the model's MLP and unembedding directions.",
    "sae train": "Train a sparse autoencoder or transcoder at one layer (resumable).",
    "sae eval": "L0, explained variance, CE recovered and dead latents of a saved SAE.",
}

_ORDER = {name: i for i, name in enumerate(n for panel in PANELS.values() for n in panel)}
_PANEL_OF = {name: panel for panel, names in PANELS.items() for name in names}
_SUMMARY = {name: line for names in PANELS.values() for name, line in names.items()}


class RootGroup(Group):
    """The `factscope` group: its commands listed in the order of `PANELS`."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(super().list_commands(ctx), key=lambda n: _ORDER.get(n, len(_ORDER)))


def reflow(text: str) -> str:
    """A docstring's paragraphs, each on one line (the terminal wraps them, not the source)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def first_sentence(text: str) -> str:
    """The first sentence of a help text: the summary of a command with no row in the table."""
    first = reflow(text).split("\n\n")[0]
    return re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]


def _help_of(info: Any) -> str:
    """The help text typer would show for a command (its docstring unless given)."""
    if isinstance(info.help, str):
        return info.help
    return inspect.getdoc(info.callback) or "" if info.callback is not None else ""


def _arrange(info: CommandInfo | TyperInfo, name: str, prefix: str, text: str) -> None:
    """Reflowed help, the one-line summary and (at the top level) the panel of one command
    or group named `name` under `prefix`."""
    path = f"{prefix}{name}"
    info.help = reflow(text)
    info.short_help = _SUMMARY.get(path) or SUBCOMMANDS.get(path) or first_sentence(text)
    info.cls = Command if isinstance(info, CommandInfo) else Group
    if not prefix:
        info.rich_help_panel = _PANEL_OF.get(name, "Other")


def _arrange_commands(app: typer.Typer, prefix: str) -> None:
    for info in app.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        _arrange(info, name, prefix, _help_of(info))
    for group in app.registered_groups:
        assert group.typer_instance is not None and group.name
        _arrange(group, group.name, prefix, solve_typer_info_help(group))
        _arrange_commands(group.typer_instance, f"{prefix}{group.name} ")


def arrange(app: typer.Typer) -> None:
    """Give every command of `app` its panel, summary and reflowed help (see the module doc)."""
    app.info.cls = RootGroup
    _arrange_commands(app, "")
