"""Re-render every results block of the docs pages from its script.

python scripts/render_docs.py [--check]

A page marks a block `<!-- results: python SCRIPT -->` ... `<!-- /results -->`; the block
becomes SCRIPT's output (the script reads its result files). With --check nothing is
written and the exit code says whether any block differs (1) or all are current (0).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- results: python (\S+) -->\n)(.*?)(<!-- /results -->)", re.S)


def render(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        out = subprocess.run(
            [sys.executable, match.group(2)], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        return match.group(1) + out.strip() + "\n" + match.group(4)

    return BLOCK.sub(one, text)


def main(argv: list[str]) -> int:
    stale = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(page.name)
            if "--check" not in argv:
                page.write_text(new, encoding="utf-8")
    verb = "stale" if "--check" in argv else "re-rendered"
    print(f"{verb}: {', '.join(stale)}" if stale else "every results block is current")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
