"""The numbers of docs/study.md and the result files they come from (see docs_numbers.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from docs_numbers import ROOT, Claim, at_most, result, span

PAGE = "study.md"
SPORTS = ("basketball", "baseball", "football")
PROBE_LAYERS = (0, 3, 4, 6, 9, 12, 13, 18)
PROBE_ROWS = {
    "subject": "last subject token (few-shot prompt)",
    "bare": "bare name `<bos> First Last`",
    "ablated_subject": "last subject token, attention >= layer 2 mean-ablated",
    "final": 'final token (" of")',
    "ablated_final": "final token, attention >= 2 ablated at the subject",
    "shuffled": "last subject token, shuffled labels",
}


def _know(name: str = "athlete_sport") -> dict[str, Any]:
    return result(f"study-know/{name}.json")


def _know_row(answer: str) -> Claim:
    def values() -> dict[str, Any]:
        know = _know()
        counts = {step: know["counts"][step][answer] for step in know["counts"]}
        known = f"{counts['known']:,}"
        if answer == "all":
            known += f"** ({100 * counts['known'] / counts['candidates']:.1f}%)"
        else:
            known += "**"
        return {
            "candidates": f"{counts['candidates']:,}",
            "well_formed": f"{counts['well_formed']:,}",
            "single": f"{counts['single_token']:,}",
            "known": known,
            "accuracy": f"{know['accuracy'][answer]:.3f}",
            "p": f"{know['mean_p_correct'][answer]:.3f}",
        }

    return Claim(
        f"| {answer} | {{candidates}} | {{well_formed}} | {{single}} | **{{known}} | "
        "{accuracy} | {p} |",
        values,
    )


def _cleaning() -> dict[str, Any]:
    steps = [int(n) for n in re.findall(r"(\d+)(?:;|$)", _know()["dataset_notes"])]
    raw, well_formed, unique, one_sport, _, kept = steps
    return {
        k: f"{v:,}"
        for k, v in dict(raw=raw, wf=well_formed, unique=unique, one=one_sport, kept=kept).items()
    }


def _guessing() -> dict[str, Any]:
    know = _know()
    counts = know["counts"]["candidates"]
    confusion = know["confusion"]
    chosen = {s: sum(confusion[true][s] for true in SPORTS) for s in SPORTS}
    return {
        "accuracy": f"{know['accuracy']['all']:.2f}",
        "always": f"{counts['basketball'] / counts['all']:.2f}",
        "leans": max(chosen, key=lambda s: chosen[s]),
        "known": know["counts"]["known"]["all"],
        "share": f"{100 * know['counts']['known']['all'] / counts['all']:.1f}",
        "n": f"{counts['all']:,}",
    }


def _smollm() -> dict[str, Any]:
    know = _know("athlete_sport-smollm2-135m")
    ids = set(know["known_ids"])
    lines = (ROOT / "src/factscope/study/data/athlete_sport.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    names = [row["subject"] for row in rows if row.get("id") in ids]
    return {
        "known": know["counts"]["known"]["all"],
        "names": ", ".join(names),
        "accuracy": f"{know['accuracy']['all']:.2f}",
    }


def _other_row(name: str, label: str) -> Claim:
    def values() -> dict[str, Any]:
        know = _know(name)
        steps = ("candidates", "well_formed", "single_token", "known")
        return {
            "cells": " | ".join(f"{know['counts'][s]['all']:,}" for s in steps),
            "accuracy": f"{know['accuracy']['all']:.3f}",
        }

    return Claim(f"| {label} | {{cells}} | {{accuracy}} |", values)


def _language() -> dict[str, Any]:
    know = _know("person_language")
    return {
        "ranked": round(100 * know["accuracy"]["all"]),
        "known": know["counts"]["known"]["all"],
        "french": know["counts"]["known"]["French"],
    }


def _probe() -> dict[str, Any]:
    return result("study-probe/probe.json")


def _curve(name: str) -> dict[str, Any]:
    return _probe()["curves"][name]


def _probe_row(name: str, label: str) -> Claim:
    def values() -> dict[str, Any]:
        curve = _curve(name)
        mean = curve["mean"]
        if curve["first_above"] is not None:
            first = str(curve["first_above"])
        elif name == "shuffled":
            first = "never"
        else:
            first = f"never (max {max(mean):.2f})"
        return {"cells": " | ".join(f"{mean[layer]:.2f}" for layer in PROBE_LAYERS), "first": first}

    return Claim(f"| {label} | {{cells}} | {{first}} |", values)


def _half_width(name: str) -> np.ndarray:
    curve = _curve(name)
    return (np.asarray(curve["max"]) - np.asarray(curve["min"])) / 2


def _probe_text() -> dict[str, Any]:
    subject, bare = np.asarray(_curve("subject")["mean"]), np.asarray(_curve("bare")["mean"])
    ablated = np.asarray(_curve("ablated_subject")["mean"])
    shuffled = np.asarray(_curve("shuffled")["mean"])
    first = _curve("subject")["first_above"]
    above = [layer for layer, m in enumerate(subject) if m > 0.9]
    stays = next(layer for layer in range(len(subject)) if all(subject[layer:] > 0.9))
    return {
        "chance": f"{_probe()['chance']:.3f}",
        "n": _probe()["n_facts"],
        "spread": f"{np.median(np.concatenate([_half_width(c) for c in _probe()['curves']])):.2f}",
        "first": first,
        "first_p": f"{subject[first]:.3f}",
        "first_hw": f"{_half_width('subject')[first]:.2f}",
        "pct": round(100 * first / _probe()["n_layers"]),
        "above": ", ".join(str(layer) for layer in above),
        "stays": stays,
        "after": span(subject[first + 1 : stays]),
        "late": f"{subject[stays]:.2f}",
        "l0": f"{subject[0]:.2f}",
        "bare_gap": at_most(np.abs(subject - bare)),
        "bare4": f"{bare[4]:.2f}",
        "bare13": f"{bare[13]:.2f}",
        "ablated": span(ablated[3:]),
        "ablated_late": span(ablated[13:]),
        "subject_late": span(subject[13:]),
        "final0": f"{_curve('final')['mean'][0]:.2f}",
        "final13": f"{_curve('final')['mean'][13]:.2f}",
        "shuffled": span(shuffled),
    }


def _trace(run: str) -> dict[str, Any]:
    return result(f"{run}/trace_many.json")


def _aie(run: str, kind: str, group: str) -> np.ndarray:
    trace = _trace(run)
    return np.asarray(trace["aie"][kind][trace["groups"].index(group)])


def _peak(run: str, kind: str, group: str, digits: int) -> str:
    aie = _aie(run, kind, group)
    return f"{aie.max():.{digits}f} at {int(aie.argmax())}"


def _trace_row(kind: str, label: str, group: str, detail: str, fill: Any) -> Claim:
    """A row of the averaged-trace table: the exact peak (with `detail` filled by `fill`), the
    approximate one and the correlation of the two profiles."""

    def values() -> dict[str, Any]:
        exact, approx = _aie("study-trace-exact", kind, group), _aie("study-trace", kind, group)
        return {
            "peak": f"{exact.max():.2f}",
            "at": int(exact.argmax()),
            "approx": _peak("study-trace", kind, group, 3),
            "corr": f"{np.corrcoef(exact, approx)[0, 1]:.2f}",
            **fill(exact),
        }

    group_name = "last subject token" if group == "last subject token" else "last token"
    return Claim(f"| {label} | {group_name} | {detail} | {{approx}} | {{corr}} |", values)


def _others() -> dict[str, Any]:
    groups = (
        "first subject token",
        "middle subject tokens",
        "first subsequent token",
        "further tokens",
    )
    tops = [
        max(float(_aie(run, kind, g).max()) for kind in ("hidden", "mlp", "attn") for g in groups)
        for run in ("study-trace-exact", "study-trace")
    ]
    return {"exact": at_most([tops[0]]), "approx": at_most([tops[1]])}


def _trace_text() -> dict[str, Any]:
    exact, approx = _trace("study-trace-exact"), _trace("study-trace")
    decisive = [
        ("hidden", "last subject token"),
        ("hidden", "last token"),
        ("mlp", "last subject token"),
        ("attn", "last token"),
    ]
    ratios = [
        _aie("study-trace-exact", k, g).max() / _aie("study-trace", k, g).max() for k, g in decisive
    ]
    corr = [
        np.corrcoef(_aie("study-trace-exact", k, g), _aie("study-trace", k, g))[0, 1]
        for k, g in (*decisive, ("mlp", "last token"), ("attn", "last subject token"))
    ]
    return {
        "n_exact": exact["n_facts"],
        "n_approx": approx["n_facts"],
        "e_clean": f"{exact['clean_p']:.3f}",
        "e_corrupted": f"{exact['corrupted_p']:.3f}",
        "a_clean": f"{approx['clean_p']:.3f}",
        "a_corrupted": f"{approx['corrupted_p']:.3f}",
        "noise": f"{exact['noise_std']:.2f}",
        "samples": exact["samples"],
        "window": exact["window"],
        "ratios": f"{min(ratios):.0f}-{max(ratios):.0f}x",
        "corr": f"{min(corr):.2f}–{max(corr):.2f}",
    }


CLAIMS: list[Claim] = [
    # 1. know
    Claim(
        "(the dataset keeps {kept} of the {raw} raw candidates after cleaning: {wf}\nwell-formed "
        "names, {unique} after duplicates, {one} after names listed under two sports, "
        "{kept}\nafter teams and identified non-players",
        _cleaning,
    ),
    *[_know_row(a) for a in (*SPORTS, "all")],
    Claim("The known {known} are the famous ones", _guessing),
    Claim(
        'accuracy over\nthe three sports is {accuracy} against {always} for always "basketball" '
        'and it leans to "{leans}"',
        _guessing,
    ),
    Claim("gemma-3-270m knows {known}, so the probe below has {known} facts", _guessing),
    Claim("knows **{known}** athlete ({names}).", _smollm),
    Claim("accuracy over the three sports is {accuracy}, chance.", _smollm),
    _other_row("city_country", "city_country (22 countries)"),
    _other_row("company_country", "company_country (headquarters)"),
    _other_row("person_language", "person_language (native language)"),
    Claim(
        "the model ranks the right language first for {ranked}% of people, but is\nconfident "
        "(p > 0.5) for only {known}; French speakers make up {french} of them.",
        _language,
    ),
    # 2. probe
    Claim("chance (the most common sport) is {chance}.", _probe_text),
    Claim("Residual stream of the {n} known athletes at every layer", _probe_text),
    *[_probe_row(name, label) for name, label in PROBE_ROWS.items()],
    Claim(
        "Spread across folds (the min–max band in the figure) is about ±{spread} (median "
        "half-width).",
        _probe_text,
    ),
    Claim(
        "the sport is linearly\n  readable above 0.90 first at layer {first} of 18 ({first_p}, "
        "with a fold half-width of ±{first_hw};\n  {pct}% of the depth; the study: ~90% by layer "
        '6 of 32, 19%), before the model has read\n  "plays the sport of". That is one layer: '
        "the mean is above 0.90 at layers {above}, and\n  stays there only from layer {stays}; "
        "between, it wobbles within the fold spread\n  ({after}). At layer 0 the probe already "
        "gets {l0}",
        _probe_text,
    ),
    Claim(
        "within {bare_gap} of the few-shot prompt at\n  every layer, inside the fold spread "
        "({bare4} at layer 4, {bare13} at 13)",
        _probe_text,
    ),
    Claim(
        "keeps the probe at {ablated} from layer 3 on",
        _probe_text,
    ),
    Claim("({ablated_late} vs {subject_late} at\n  layers 13–18)", _probe_text),
    Claim(
        "exactly chance, {final0}) and gets the sport from layer ~7, at {final13} by layer 13",
        _probe_text,
    ),
    Claim("**Shuffled labels** stay at {shuffled}", _probe_text),
    # 3. averaged traces
    Claim(
        "noise 3 x the std of the token embeddings of every known subject ({noise}), {samples} "
        "samples,\nwindow {window}.",
        _trace_text,
    ),
    Claim("**all {n_approx} known facts with `--approx`**", _trace_text),
    Claim("**the exact trace of the first {n_exact}**", _trace_text),
    Claim(
        "**Exact, {n_exact} facts** (mean clean p {e_clean}, corrupted p {e_corrupted}):",
        _trace_text,
    ),
    Claim(
        "**Attribution patching, {n_approx} facts** (mean clean p {a_clean}, corrupted p "
        "{a_corrupted}):",
        _trace_text,
    ),
    _trace_row(
        "hidden",
        "hidden",
        "last subject token",
        "**{peak} at layer {at}** (≥ {low} over layers 1–9, ≤ {zero} from 12)",
        lambda a: {"low": f"{np.floor(a[1:10].min() * 100) / 100:.2f}", "zero": at_most(a[12:])},
    ),
    _trace_row(
        "hidden",
        "hidden",
        "last token",
        "**{peak} at layer {at}** ({low} from layer 12 on)",
        lambda a: {"low": span(a[12:])},
    ),
    _trace_row(
        "mlp",
        "MLP",
        "last subject token",
        "**{peak} at layer {at}** ({low} over 0–8, ≤ {zero} from 9)",
        lambda a: {"low": span(a[:9]), "zero": at_most(a[9:])},
    ),
    _trace_row("mlp", "MLP", "last token", "{peak} at {at}", lambda a: {}),
    _trace_row("attn", "attention", "last subject token", "{peak} at {at}", lambda a: {}),
    _trace_row(
        "attn",
        "attention",
        "last token",
        "**{peak} at layer {at}** ({low} over 8–16)",
        lambda a: {"low": span(a[8:17])},
    ),
    Claim(
        "| any | first subject, middle, first subsequent, further tokens | <= {exact} | "
        "<= {approx} |",
        _others,
    ),
    Claim("exact peaks are {ratios} the first-order estimates", _trace_text),
    Claim(
        "(restoring a window centred on layers 0–8 brings back an AIE of {low}, with clean p "
        "{clean}; ROME:",
        lambda: {
            "low": span(_aie("study-trace-exact", "mlp", "last subject token")[:9]),
            "clean": f"{_trace('study-trace-exact')['clean_p']:.2f}",
        },
    ),
    Claim(
        "(correlation {corr} between its per-layer profile and the exact one for the groups that\n"
        "matter) but its peaks are {ratios} smaller",
        _trace_text,
    ),
]
