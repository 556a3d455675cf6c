"""The one place where every usage error becomes one line: `error: ...`, exit code 2.

Typer and click report a bad option as an exception whose class and wording change between
versions (typer 0.29 vendors click and validates ranges with pydantic; older versions use
click's IntRange). `usage_error_line` reads what they all carry (the parameter, the
message, the rejected value) and says it in one form: the option's name, what is allowed,
and what was given.
"""

from __future__ import annotations

import re
from typing import Any

# library wording -> ours; the first match wins
_REWRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"greater than or equal to (\S+)"), r"must be at least \1"),
    (re.compile(r"less than or equal to (\S+)"), r"must be at most \1"),
    (re.compile(r"greater than (\S+)"), r"must be more than \1"),
    (re.compile(r"less than (\S+)"), r"must be less than \1"),
    (re.compile(r"is not in the range x>=(\S+?)\.?$"), r"must be at least \1"),
    (re.compile(r"is not in the range x<=(\S+?)\.?$"), r"must be at most \1"),
    (re.compile(r"is not in the range (\S+?)<=x<=(\S+?)\.?$"), r"must be between \1 and \2"),
    (re.compile(r"valid integer"), "must be a whole number"),
    (re.compile(r"valid number"), "must be a number"),
    (re.compile(r"is not a valid integer"), "must be a whole number"),
    (re.compile(r"is not a valid float"), "must be a number"),
]


def _param_name(param: Any) -> str:
    """'--top-k' for an option (its longest flag), 'PROMPT' for an argument."""
    opts = [o for o in getattr(param, "opts", []) or [] if o.startswith("-")]
    if opts:
        return max(opts, key=len)
    name = getattr(param, "name", None) or "argument"
    return str(name).upper()


def _rejected_value(exc: BaseException) -> Any:
    """The value the user gave, where the exception (or its cause) records it."""
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if callable(errors):
        try:
            found = errors()
            if found and "input" in found[0]:
                return found[0]["input"]
        except Exception:
            return None
    match = re.match(r"'?(-?[\w.]+)'? is not", str(getattr(exc, "message", "")))
    return match.group(1) if match else None


def _reason(message: str) -> str:
    message = message.strip().rstrip(".")
    for pattern, replacement in _REWRITES:
        found = pattern.search(message)
        if found:
            return found.expand(replacement)
    return re.sub(r"^Input should be ", "must be ", message)


def usage_error_line(exc: BaseException) -> str:
    """One line for a usage error, e.g. `--top-k must be at least 1 (got 0)`."""
    param = getattr(exc, "param", None)
    kind = type(exc).__name__
    if param is not None and kind == "MissingParameter":
        return f"{_param_name(param)} is required; see --help"
    if param is not None and kind == "BadParameter":
        value = _rejected_value(exc)
        got = f" (got {value})" if value is not None else ""
        return f"{_param_name(param)} {_reason(str(getattr(exc, 'message', exc)))}{got}"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(message.split())  # one line, whatever the library printed
    if kind in ("NoSuchOption", "BadOptionUsage", "BadArgumentUsage", "UsageError"):
        return f"{message.rstrip('.')}; see --help"
    return message


def usage_error_types() -> tuple[type[BaseException], ...]:
    """The exception classes that mean "the command line is wrong", in every installed
    flavour of click (typer's vendored copy and click itself)."""
    found: list[type[BaseException]] = []
    try:
        import click

        found.append(click.UsageError)
        found.append(click.ClickException)
    except ImportError:  # pragma: no cover - typer without click
        pass
    try:
        from typer._click import exceptions as vendored  # typer >= 0.25 vendors click

        found.extend([vendored.UsageError, vendored.ClickException])
    except ImportError:
        pass
    return tuple(found)


def exit_types() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(Exit-like, Abort-like) exception classes of every installed click flavour."""
    import typer

    exits: list[type[BaseException]] = [typer.Exit]
    aborts: list[type[BaseException]] = [typer.Abort]
    try:
        import click

        exits.append(click.exceptions.Exit)
        aborts.append(click.exceptions.Abort)
    except ImportError:  # pragma: no cover
        pass
    return tuple(exits), tuple(aborts)
