"""Every number a docs page quotes from a run equals its result file (docs_numbers.py).

The claims of each page are in `tests/docs_numbers_<page>.py`; a number changed on the page
by hand, or a result re-run without updating the page, fails here with what the file says.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from docs_numbers import DOCS, check_page, claim_modules, mismatches

PAGES = claim_modules()
CHECKER = Path(__file__).parent / "docs_numbers.py"


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


def _value_digit(rendered: str, template: str) -> int:
    """The index in `rendered` of the first digit that a result put there (not the
    template's own text)."""
    literal = template.split("{", 1)[0].replace("{{", "{")
    return next(i for i, ch in enumerate(rendered) if ch.isdigit() and i >= len(literal))


@pytest.mark.parametrize("name", ["read.md", "superposition.md", "study.md"])
def test_a_copy_with_one_digit_changed_fails_the_checker(name: str, tmp_path: Path) -> None:
    """The checker run on a copy of a page with one result's digit typed differently reports
    that claim (and exits 1); on the untouched copy it passes."""
    module = next(m for m in PAGES if name == m.PAGE)
    text = (DOCS / name).read_text(encoding="utf-8")
    claim = next(
        c
        for c in module.CLAIMS
        if any(ch.isdigit() for ch in c.rendered()[len(c.template.split("{", 1)[0]) :])
    )
    shown = claim.rendered()
    i = _value_digit(shown, claim.template)
    changed = shown[:i] + str((int(shown[i]) + 1) % 10) + shown[i + 1 :]
    copy = tmp_path / name
    copy.write_text(text, encoding="utf-8")
    assert check_page(module, copy) == []
    copy.write_text(text.replace(shown, changed, 1), encoding="utf-8")
    wrong = check_page(module, copy)
    assert len(wrong) == 1 and repr(shown) in wrong[0], wrong
    run = subprocess.run(
        [sys.executable, str(CHECKER), str(copy)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 wrong" in run.stdout and repr(shown) in run.stdout
