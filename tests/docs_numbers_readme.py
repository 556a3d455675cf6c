"""The numbers of README.md and the result files they come from (see docs_numbers.py)."""

from __future__ import annotations

from typing import Any

from docs_numbers import Claim, result

PAGE = "../README.md"


def _first_commands() -> dict[str, Any]:
    data = result("first-commands/result.json")
    seconds = {row["command"]: row["seconds"] for row in data["commands"]}
    loads = [row["load_at_start"] for row in data["commands"]]
    return {
        "date": data["date"],
        "cores": data["machine"]["cores"],
        "load_first": f"{min(loads):.1f}",
        "load_last": f"{max(loads):.1f}",
        "predict": f"{seconds['predict']:.0f}",
        "know": f"{seconds['know']:.0f}",
        "explain": f"{seconds['explain-fact']:.0f}",
    }


CLAIMS: list[Claim] = [
    Claim("({date}, {cores} cores, load average {load_first}–{load_last} while", _first_commands),
    Claim("`factscope predict` {predict} s (most", _first_commands),
    Claim("`factscope know --dataset athlete_sport` {know} s,", _first_commands),
    Claim("`factscope explain-fact` {explain} s;", _first_commands),
]
