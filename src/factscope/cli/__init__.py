"""The `factscope` command: a thin layer that parses, calls library functions, prints.

One module per capability registers its commands on the shared app (core, locate, ...);
panels.py says where each appears in `factscope --help` and sums it up in one line.
`main` is the one place where errors become one line on stderr and exit code 2: a
FactscopeError from the library, or a usage error from the command line (out-of-range
number, bad choice, missing argument, unknown option), for every command, old or new.
"""

from __future__ import annotations

import sys

from factscope.cli import core, edit, features, locate, read, scratch, study, superposition, web  # noqa: F401  (register commands)
from factscope.cli.common import app, err
from factscope.cli.errors import exit_types, usage_error_line, usage_error_types
from factscope.cli.panels import arrange
from factscope.errors import FactscopeError

arrange(app)  # every command registered: group them by capability for --help (panels.py)


def _error(line: str) -> int:
    err.print("error: " + line, style="bold red", markup=False, highlight=False, soft_wrap=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    exits, aborts = exit_types()
    try:
        app(args=argv, standalone_mode=False, prog_name="factscope")
    except FactscopeError as e:
        return _error(str(e))
    except aborts:
        err.print("aborted")
        return 130
    except exits as e:
        return int(getattr(e, "exit_code", 0) or 0)
    except usage_error_types() as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `factscope` alone: the help was shown
            return 0
        return _error(usage_error_line(e))
    return 0


__all__ = ["app", "main"]

if __name__ == "__main__":
    sys.exit(main())
