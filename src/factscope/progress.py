"""How long-running functions say how far they are: one convention for the library.

- A function that owns its loop takes `progress: bool` and, when True, draws a tqdm bar on
  stderr (`progress_bar`); when False it gets a bar that draws nothing, so the loop calls
  `bar.update(n)` either way.
- A function run by a caller that draws its own display (the web app's jobs, a CLI bar
  over many calls) takes a callback instead: `Steps`, called with the number of steps just
  done, or `Messages`, called with what is being done now.
- A helper inside someone else's loop takes the caller's `Bar` (or None) and updates it.

Every bar is made by `progress_bar`; nothing else imports tqdm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Steps = Callable[[int], object]  # called with the number of steps just done (bar.update)
Messages = Callable[[str], None]  # called with what is being done now


class Bar(Protocol):
    """What a loop needs of a progress bar (tqdm's `update`, `close` and postfix)."""

    def update(self, n: float | None = 1) -> bool | None: ...

    def set_postfix(self, **values: Any) -> None: ...

    def set_postfix_str(self, s: str = "") -> None: ...

    def close(self) -> None: ...


class NoBar:
    """A bar that draws nothing."""

    def update(self, n: float | None = 1) -> bool | None:
        return None

    def set_postfix(self, **values: Any) -> None:
        pass

    def set_postfix_str(self, s: str = "") -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(
    total: int | None,
    show: bool,
    desc: str,
    unit: str = "it",
    *,
    initial: int = 0,
    leave: bool = False,
    delay: float = 0.0,
) -> Bar:
    """A tqdm bar on stderr counting to `total` (None: no end) when `show`, else `NoBar()`."""
    if not show:
        return NoBar()
    from tqdm import tqdm

    bar: Bar = tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        leave=leave,
        delay=delay,
        dynamic_ncols=True,
    )
    return bar


__all__ = ["Bar", "Messages", "NoBar", "Steps", "progress_bar"]
