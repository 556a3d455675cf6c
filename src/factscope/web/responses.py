"""What the web app's answers hold: JSON a browser can parse."""

from __future__ import annotations

import math
from typing import Any


def plain_json(value: Any) -> Any:
    """`value` with NaN and infinities as null: JSON that a browser can parse."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value
