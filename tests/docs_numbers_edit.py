"""The numbers of docs/edit.md and the result files they come from (see docs_numbers.py).

The tables of the page are rendered from their results (tests/test_docs_tables.py); these
are the numbers its sentences quote."""

from __future__ import annotations

from typing import Any

from docs_numbers import Claim, result

PAGE = "edit.md"


def _corpus_size() -> dict[str, Any]:
    summary = result("edit-corpus-size/summary.json")
    identity, full = summary["identity"]["post"], summary["self-100000"]["post"]
    n = 3 * summary["identity"]["n_facts"]  # three neighbours per fact

    def kept(post: dict[str, float]) -> int:
        return round(post["neighbourhood"] * n / 100)

    return {
        "kept": kept(full), "n": n, "kept_identity": kept(identity),
        "flipped": n - kept(full), "flipped_identity": n - kept(identity),
        "nm_identity": f"{identity['neighbourhood_magnitude']:.1f}".replace("-", "−"),
        "nm_full": f"{full['neighbourhood_magnitude']:.1f}".replace("-", "−"),
        "nm_10k": f"{summary['self-10000']['post']['neighbourhood_magnitude']:.1f}".replace(
            "-", "−"
        ),
    }  # fmt: skip


CLAIMS = [
    Claim(
        "the corpus statistics keep {kept} of the {n}\nneighbours instead of {kept_identity} "
        "({flipped} flipped instead of {flipped_identity}) and shrink how far the neighbours "
        "move\n(NM {nm_identity} → {nm_full} points of probability), with part of the gain "
        "already at 10,000 tokens\n({nm_10k})",
        _corpus_size,
    ),
]
