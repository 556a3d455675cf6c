"""Every number a docs page quotes from a run equals its result file (docs_numbers.py).

The claims of each page are in `tests/docs_numbers_<page>.py`; a number changed on the page
by hand, or a result re-run without updating the page, fails here with what the file says.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from docs_numbers import DOCS, mismatches

PAGES = [
    importlib.import_module(p.stem) for p in sorted(Path(__file__).parent.glob("docs_numbers_*.py"))
]


@pytest.mark.parametrize("page", PAGES, ids=[p.PAGE for p in PAGES])
def test_page_numbers_equal_their_results(page: Any) -> None:
    text = (DOCS / page.PAGE).read_text(encoding="utf-8")
    wrong = mismatches(text, page.CLAIMS)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("page", PAGES, ids=[p.PAGE for p in PAGES])
def test_a_number_changed_by_hand_is_caught(page: Any) -> None:
    """Each claim, with one of its numbers typed differently on the page, is reported."""
    text = (DOCS / page.PAGE).read_text(encoding="utf-8")
    for claim in page.CLAIMS:
        shown = claim.rendered()
        digit = next(i for i, ch in enumerate(shown) if ch.isdigit())
        changed = shown[:digit] + str((int(shown[digit]) + 1) % 10) + shown[digit + 1 :]
        assert mismatches(text.replace(shown, changed), [claim]), shown
