"""The click classes every factscope command is built from (panels.py assigns them).

Two things typer leaves out, done once here for every command, old or new: a boolean flag
is shown as a flag (`--approx`, where typer writes `--approx <bool>`), and a number must be
finite (`--temperature inf` or `--lr nan` is a usage error, not a run that produces nan).
"""

from __future__ import annotations

import math
from typing import Any

from typer._click.exceptions import BadParameter
from typer.core import TyperCommand, TyperGroup


def _show_flags_as_flags(params: list[Any]) -> list[Any]:
    """A boolean flag takes no value, so its help shows none."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


def check_finite(command: Any, ctx: Any) -> None:
    """Every float option's value is a finite number (ranges let inf and sometimes nan pass)."""
    for param in command.params:
        value = ctx.params.get(param.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise BadParameter(f"must be a finite number (got {value})", ctx=ctx, param=param)


class Command(TyperCommand):
    """A typer command whose flags are shown without a value and whose numbers are finite."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _show_flags_as_flags(super().get_params(ctx))

    def invoke(self, ctx: Any) -> Any:
        check_finite(self, ctx)
        return super().invoke(ctx)


class Group(TyperGroup):
    """A typer group whose flags are shown without a value."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _show_flags_as_flags(super().get_params(ctx))
