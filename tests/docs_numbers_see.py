"""The numbers of docs/see.md and the result files they come from (see docs_numbers.py): the
story page's sentences are quoted from the JSON inside results/explain-fact/report.html."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from docs_numbers import RESULTS, Claim, result

PAGE = "see.md"
CHAPTERS = ("prediction", "trace", "flow", "neurons", "probe", "edit")


@cache
def _story() -> dict[str, Any]:
    """The result `explain-fact` embedded in its page."""
    page = (RESULTS / "explain-fact" / "report.html").read_text(encoding="utf-8")
    found = re.search(
        r'<script type="application/json" id="factscope-data">(.*?)</script>', page, re.S
    )
    assert found, "report.html has no embedded result"
    return dict(json.loads(found.group(1)))


def _paragraph(chapter: str) -> Claim:
    """A chapter as the page quotes it: its title in bold, then its sentences."""
    data = _story()["chapters"][chapter]
    return Claim(
        f"**{data['title']}.** {{text}}",
        lambda: {"text": " ".join(_story()["chapters"][chapter]["sentences"])},
    )


def _edit_rows(kind: str) -> list[dict[str, Any]]:
    return [r for r in _story()["chapters"]["edit"]["data"]["after"] if r["kind"] == kind]


def _spread() -> dict[str, Any]:
    first, second = _edit_rows("paraphrase")
    return {
        "p1": f"{first['p_new']:.3f}",
        "prompt1": first["prompt"],
        "p2": f"{second['p_new']:.3f}",
        "prompt2": second["prompt"],
        "top2": second["top"],
    }


def _trace() -> dict[str, Any]:
    hidden = next(
        t for t in result("michael-jordan-trace/trace.json")["traces"] if t["kind"] == "hidden"
    )
    traces = {t["kind"]: t for t in result("michael-jordan-trace/trace.json")["traces"]}
    jordan = hidden["subject_span"][1] - 1
    attn = traces["attn"]
    return {
        "clean": f"{hidden['clean_p']:.3f}",
        "corrupted": f"{hidden['corrupted_p']:.3f}",
        "h3": f"{hidden['scores'][jordan][3]:.3f}",
        "m6": f"{traces['mlp']['scores'][jordan][6]:.3f}",
        "a13": f"{attn['scores'][len(attn['scores']) - 1][13]:.3f}",
        "samples": hidden["samples"],
    }


def _heads() -> dict[str, Any]:
    head = result("read-knockout/knockout.json")["heads"][0]
    return {"layer": head["layer"], "head": head["head"], "attn": f"{head['attn_to_subject']:.2f}"}


CLAIMS: list[Claim] = [
    *[_paragraph(c) for c in CHAPTERS],
    Claim(
        "The mean hides the spread: p('baseball') is {p1} on '{prompt1}' but {p2} on '{prompt2}', "
        "whose top token stays '{top2}'.",
        _spread,
    ),
    Claim(
        'The Trace screenshot is the exact trace ({samples} noise samples): p(" basketball") '
        '{clean} clean,\n{corrupted} corrupted; the hidden state of " Jordan" at layer 3 restores '
        '{h3}, the MLP window\ncentred on layer 6 at " Jordan" {m6}, attention at " of" centred '
        "on layer 13 {a13}",
        _trace,
    ),
    Claim(
        "the strongest is layer {layer} head {head} ({attn} of the last token's\n  attention on "
        '"Michael Jordan"',
        _heads,
    ),
]
