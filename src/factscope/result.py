"""What every result is: a dataclass of plain data that turns into JSON.

A capability's function returns a result; the CLI writes `to_dict()` as JSON, the reports
and the web app draw from that dict, and a notebook shows the result through its own
`_repr_html_` (the report's fragment for that result type).
"""

from __future__ import annotations

import dataclasses
from typing import Any


class Result:
    """Mixed into a result dataclass: `to_dict()` is its fields as nested dicts and lists
    (`dataclasses.asdict`), JSON-able because every field is plain data."""

    def to_dict(self) -> dict[str, Any]:
        assert dataclasses.is_dataclass(self), f"{type(self).__name__} is not a dataclass"
        return dataclasses.asdict(self)


__all__ = ["Result"]
