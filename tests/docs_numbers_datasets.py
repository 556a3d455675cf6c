"""The numbers of docs/datasets.md and the result files they come from (see docs_numbers.py):
the sanity table from results/datasets-sanity/ (scripts/dataset_sanity.py), the athletes'
counts from results/study-know/athlete_sport.json."""

from __future__ import annotations

from typing import Any

from docs_numbers import Claim, result

PAGE = "datasets.md"
MODELS = ("gemma-3-270m", "smollm2-135m")
DATASETS = ("city_country", "company_country", "person_language")


def _sanity(model: str, dataset: str) -> dict[str, Any]:
    return dict(result(f"datasets-sanity/{model}.json")["results"][dataset])


def _cell(n: int, total: int) -> str:
    return f"{n} ({round(100 * n / total)}%)"


def _row(dataset: str, model: str) -> Claim:
    def values() -> dict[str, Any]:
        s = _sanity(model, dataset)
        keys = ("top1_in_answer_set", "p_above_half", "top1_overall")
        return {"cells": " | ".join(_cell(s[k], s["records"]) for k in keys)}

    first = model == MODELS[0]
    head = (
        f"| {dataset} ({_sanity(model, dataset)['records']}) | {model} |"
        if first
        else "| | " + model + " |"
    )
    return Claim(head + " {cells} |", values)


def _per_answer(model: str, dataset: str, answers: tuple[str, ...]) -> str:
    per = _sanity(model, dataset)["per_answer_top1_in_set"]
    return ", ".join(f"{a} {per[a][0]}/{per[a][1]}" for a in answers)


def _athletes() -> dict[str, Any]:
    counts = result("study-know/athlete_sport.json")["counts"]["candidates"]
    return {s: f"{counts[s]:,}" for s in ("all", "basketball", "baseball", "football")}


CLAIMS: list[Claim] = [
    Claim(
        '| athlete_sport | {all} | "{{}} plays the sport of" | basketball {basketball} · baseball '
        "{baseball} · football {football} |",
        _athletes,
    ),
    *[_row(d, m) for d in DATASETS for m in MODELS],
    Claim(
        "gemma gets the big economies right ({big})",
        lambda: {
            "big": _per_answer(
                "gemma-3-270m", "company_country", ("Japan", "Germany", "France", "Italy", "China")
            ).replace(", Germany", ",\n  Germany")
        },
    ),
    Claim(
        "mostly fails the smaller\n  ones ({small}); smollm2-135m knows little beyond\n  Germany, "
        "France and China ({smol})",
        lambda: {
            "small": _per_answer(
                "gemma-3-270m", "company_country", ("Netherlands", "Taiwan", "Denmark")
            ),
            "smol": _per_answer(
                "smollm2-135m", "company_country", ("South Korea", "Netherlands", "Switzerland")
            ),
        },
    ),
    Claim(
        "(31 facts on gemma); gemma is weak on Dutch ({dutch}) and Swedish ({swedish}),\n  smollm2 "
        "on Swedish ({s_swedish}) and Polish ({s_polish}).",
        lambda: {
            "dutch": "/".join(
                map(
                    str,
                    _sanity("gemma-3-270m", "person_language")["per_answer_top1_in_set"]["Dutch"],
                )
            ),
            "swedish": "/".join(
                map(
                    str,
                    _sanity("gemma-3-270m", "person_language")["per_answer_top1_in_set"]["Swedish"],
                )
            ),
            "s_swedish": "/".join(
                map(
                    str,
                    _sanity("smollm2-135m", "person_language")["per_answer_top1_in_set"]["Swedish"],
                )
            ),
            "s_polish": "/".join(
                map(
                    str,
                    _sanity("smollm2-135m", "person_language")["per_answer_top1_in_set"]["Polish"],
                )
            ),
        },
    ),
    Claim(
        "small ({n} facts on gemma)",
        lambda: {"n": _sanity("gemma-3-270m", "person_language")["p_above_half"]},
    ),
]
