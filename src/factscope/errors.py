"""The one exception type users see.

Every problem a user can cause (a missing file, a misspelled site, an empty prompt) raises
`FactscopeError` with a one-line message that says what is wrong and what to do. The CLI
prints that line and exits with code 2; anything else is a bug and keeps its traceback.
"""


class FactscopeError(Exception):
    """A user-facing error: `str(err)` is one line naming the problem and the fix."""


class GGUFError(FactscopeError):
    """The file is not a GGUF file we can read (bad magic, truncated, unsupported type)."""


class UnsupportedModelError(FactscopeError):
    """The checkpoint's architecture or tensor layout is not one factscope implements."""
