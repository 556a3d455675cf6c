"""The numbers of docs/models.md and the result files they come from (see docs_numbers.py).

The 1B-class table itself is rendered from docs/results/load-1b/result.json by its
table.py (checked by tests/test_docs_tables.py); these are the figures in the prose.
"""

from __future__ import annotations

from typing import Any

from docs_numbers import Claim, result

PAGE = "models.md"


def _before() -> dict[str, Any]:
    """The float32 peaks of the record taken before weights/shards.py."""
    summary = result("load-1b/before-shard-reader.json")["summary"]["float32"]
    return {
        "ours": f"{summary['peak_over_weights']:.2f}",
        "hf": f"{summary['hf_peak_over_weights']:.2f}",
    }


CLAIMS: list[Claim] = [
    Claim("as float32 peaked at {ours}x the float32 weights before", _before),
    Claim("transformers' peak {hf}x)", _before),
]
