"""Every table a docs page renders from a result file is the script's output, as it stands.

A page marks such a block `<!-- results: python SCRIPT -->` ... `<!-- /results -->`; the
script reads the result files and prints the block. A block edited by hand, or a result
re-run without re-rendering the page, fails here (`make docs` re-renders them).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- results: python (\S+) -->\n(.*?)<!-- /results -->", re.S)


def blocks() -> list[tuple[str, str, str]]:
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for script, body in BLOCK.findall(page.read_text(encoding="utf-8")):
            found.append((page.name, script, body))
    return found


def test_pages_have_rendered_blocks() -> None:
    assert blocks(), "no <!-- results: ... --> block found in docs/"


@pytest.mark.parametrize(("page", "script", "body"), blocks(), ids=lambda x: str(x)[:40])
def test_block_equals_its_script_output(page: str, script: str, body: str) -> None:
    assert (ROOT / script).is_file(), f"{page}: {script} does not exist"
    out = subprocess.run(
        [sys.executable, script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert body.strip() == out.strip(), f"{page}: re-render the block with `python {script}`"
