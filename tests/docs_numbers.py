"""Numbers on a docs page, checked against the result files they come from.

A `Claim` is a piece of a page's text with `{name}` where a number goes, and a function
that computes those numbers from the page's result files (docs/results/...). The check
renders each claim and looks for it, word for word, on the page: a figure typed by hand, or
left behind when a result was re-run, is reported with what the results say instead.

Each page's claims live in `tests/docs_numbers_<page>.py` (`PAGE` and a list `CLAIMS`),
collected by tests/test_docs_numbers.py (and by `python tests/docs_numbers.py [FILE]`, which
`make docs` runs: FILE checks a copy of a page against that page's claims); the formatting
helpers below say how a number is shown (a range's ends are rounded, a bound is rounded
outwards so that "≤ 0.07" stays true of 0.065).
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = DOCS / "results"


@cache
def result(name: str) -> Any:
    """A result file under docs/results, parsed (each file read once)."""
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Claim:
    """`template` as it reads on the page, `{name}` where `values()[name]` goes."""

    template: str
    values: Callable[[], dict[str, Any]]

    def rendered(self) -> str:
        return self.template.format(**self.values())


def num(value: float, digits: int = 2, sign: bool = False) -> str:
    """`value` at `digits` decimals as the pages print it: thousands separated, a minus
    sign (−) not a hyphen, and a '+' in front of a positive number when `sign`."""
    shown = f"{value:{'+' if sign else ''},.{digits}f}"
    if float(shown.replace(",", "")) == 0:  # -0.003 -> '0.00', not '−0.00'
        shown = f"{0:.{digits}f}"
    return shown.replace("-", "−")


def num_span(values: Iterable[float], digits: int = 2) -> str:
    """'low to high' of `values` as `num` prints them: '−0.13 to 0.30' (a dash between two
    signed numbers would read as a minus)."""
    seen = list(values)
    return f"{num(min(seen), digits)} to {num(max(seen), digits)}"


def at_most(values: Iterable[float], digits: int = 2) -> str:
    """An upper bound of `values` at `digits` decimals, rounded up: 0.065 -> '0.07'."""
    top = max(values)
    return f"{math.ceil(top * 10**digits - 1e-9) / 10**digits:.{digits}f}"


def at_least(values: Iterable[float], digits: int = 2) -> str:
    """A lower bound of `values` at `digits` decimals, rounded down: 0.5046 -> '0.50'."""
    low = min(values)
    return f"{math.floor(low * 10**digits + 1e-9) / 10**digits:.{digits}f}"


def span(values: Iterable[float], digits: int = 2) -> str:
    """'low–high' of `values`, each end rounded to `digits` decimals."""
    seen = list(values)
    return f"{min(seen):.{digits}f}–{max(seen):.{digits}f}"


def percent_span(values: Iterable[float]) -> str:
    """'low–high' of fractions as whole percent, each end rounded to nearest: '93–99'."""
    seen = list(values)
    return f"{round(100 * min(seen))}–{round(100 * max(seen))}"


def mismatches(page_text: str, claims: list[Claim]) -> list[str]:
    """One line per claim whose rendering is not on the page: what the results say, and
    the page's line that starts like it (where there is one)."""
    found = []
    lines = page_text.splitlines()
    for claim in claims:
        want = claim.rendered()
        if want in page_text:
            continue
        head = claim.template.split("{", 1)[0].strip()
        near = next((line.strip() for line in lines if head and head in line), "(no such line)")
        found.append(f"the results say {want!r}; the page has {near!r}")
    return found


def claim_modules() -> list[Any]:
    """Every page's claims module (`tests/docs_numbers_<page>.py`), in name order."""
    here = Path(__file__).parent
    if str(here) not in sys.path:
        sys.path.insert(0, str(here))
    return [importlib.import_module(p.stem) for p in sorted(here.glob("docs_numbers_*.py"))]


def check_page(module: Any, page: Path | None = None) -> list[str]:
    """The mismatches of `module`'s claims on `page` (default: the docs page it names)."""
    path = DOCS / module.PAGE if page is None else page
    return mismatches(path.read_text(encoding="utf-8"), module.CLAIMS)


def main(argv: list[str]) -> int:
    """Check every page (no arguments) or the given files, each against the claims of the
    docs page of the same name; print each mismatch; exit 1 if there is any."""
    modules = {m.PAGE: m for m in claim_modules()}
    pages: list[tuple[Any, Path | None]] = [(m, None) for m in modules.values()]
    if argv:
        unknown = [a for a in argv if Path(a).name not in modules]
        if unknown:
            print(f"error: no claims for {', '.join(unknown)}; pages with claims: "
                  f"{', '.join(sorted(modules))}", file=sys.stderr)  # fmt: skip
            return 2
        pages = [(modules[Path(a).name], Path(a)) for a in argv]
    failed = 0
    for module, path in pages:
        wrong = check_page(module, path)
        where = path or DOCS / module.PAGE
        print(f"{where}: {len(module.CLAIMS)} claims, {len(wrong)} wrong")
        for line in wrong:
            print(f"  {line}")
        failed += bool(wrong)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
