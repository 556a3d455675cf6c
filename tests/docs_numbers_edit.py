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


def _along() -> dict[str, Any]:
    import statistics

    rows = result("edit-ns/result.json")["runs"]["memit-athlete"]["facts_detail"]
    kept = [r["neighbour_along"] for r in rows if r["NS"] == 1.0]
    others = [r["neighbour_along"] for r in rows if r["NS"] < 1.0]
    return {"kept": f"{statistics.median(kept):.2f}", "n_kept": len(kept),
            "others": f"{statistics.median(others):.2f}", "n_others": len(others)}  # fmt: skip


def _halves() -> dict[str, Any]:
    known = len(result("study-know/athlete_sport.json")["known_ids"])
    edited = result("edit-eval/memit-athlete/summary.json")["n_facts"]
    assert result("edit-eval/alphaedit-athlete/summary.json")["n_facts"] == edited
    return {"edited": edited, "known": known}


def _rome() -> dict[str, Any]:
    d = result("edit-eval/rome-athlete/summary.json")
    post = d["post"]
    return {
        "es": f"{post['efficacy']:.0f}", "ps": f"{post['paraphrase']:.1f}",
        "ns": f"{post['neighbourhood']:.1f}", "s": f"{post['score']:.1f}",
        "ge_pre": f"{d['fluency_pre']:.2f}", "ge_post": f"{d['fluency_post']:.2f}",
        "ppl_pre": f"{d['perplexity_pre']:.2f}", "ppl_post": f"{d['perplexity_post']:.2f}",
    }  # fmt: skip


def _landmarks() -> dict[str, Any]:
    runs = result("edit-landmarks/result.json")["methods"]
    n = len(result("edit-landmarks/result.json")["known"])
    mt, at, authors = runs["memit-tuned"], runs["alphaedit-tuned"], runs["alphaedit"]
    return {
        "n": n, "mt": round(mt["ES"] * n / 100), "at": round(at["ES"] * n / 100),
        "mt_es": f"{mt['ES']:.1f}", "at_es": f"{at['ES']:.1f}",
        "mt_ps": f"{mt['PS']:.1f}", "at_ps": f"{at['PS']:.1f}", "au_ps": f"{authors['PS']:.1f}",
    }  # fmt: skip


def _sweep() -> dict[str, Any]:
    d = result("edit-lambda/result.json")
    tune, held = d["tune"], d["held"]
    c, a = d["chosen"], d["authors"]
    return {
        "m_tune": f"{tune[c['memit']]['S']:.1f}", "m_tune_a": f"{tune[a['memit']]['S']:.1f}",
        "m_held": f"{held[c['memit']]['S']:.1f}", "m_held_a": f"{held[a['memit']]['S']:.1f}",
        "a_tune": f"{tune[c['alphaedit']]['S']:.1f}",
        "a_tune_a": f"{tune[a['alphaedit']]['S']:.1f}",
        "a_held": f"{held[c['alphaedit']]['S']:.1f}",
        "a_held_a": f"{held[a['alphaedit']]['S']:.1f}",
        "ns_tune": f"{tune[a['memit']]['NS']:.1f}", "ns_held": f"{held[a['memit']]['NS']:.1f}",
        "es_tune": f"{tune[a['memit']]['ES']:.1f}", "es_held": f"{held[a['memit']]['ES']:.1f}",
    }  # fmt: skip


def _eval_rows() -> dict[str, Any]:
    def post(name: str, key: str) -> str:
        return f"{result(f'edit-eval/{name}/summary.json')['post'][key]:.1f}"

    def errors(name: str) -> str:
        e = result(f"edit-eval/{name}/summary.json")["edit"]["error"]
        return f"{min(e):.2f}–{max(e):.2f}"

    seq = result("edit-eval/alphaedit-athlete-seq/summary.json")
    return {
        "n_seq": seq["n_facts"], "n_city": result("edit-eval/memit-city/summary.json")["n_facts"],
        **{f"{short}_{k[:2]}": post(name, k) for short, name in (
            ("seq", "alphaedit-athlete-seq"), ("ab", "alphaedit-athlete"),
            ("mc", "memit-city"), ("ac", "alphaedit-city"))
           for k in ("efficacy", "paraphrase", "neighbourhood")},
        "err_city": errors("memit-city"), "err_ath": errors("memit-athlete"),
    }  # fmt: skip


CLAIMS = [
    Claim(
        "the same {n_seq} athletes edited in\n  sequence, each edit on the weights the earlier "
        "ones left) ends where the batch does: ES\n  {seq_ef}, PS {seq_pa}, NS {seq_ne} against "
        "the batch's {ab_ef}, {ab_pa}, {ab_ne}: no drift over {n_seq} edits",
        _eval_rows,
    ),
    Claim("{n_city} of the cities\n  gemma-3-270m knows", _eval_rows),
    Claim(
        "MEMIT reaches ES {mc_ef} and PS {mc_pa}, AlphaEdit {ac_ef} and {ac_pa}, while NS stays "
        "at\n  {mc_ne}:",
        _eval_rows,
    ),
    Claim("MEMIT's batch is {err_city} here (athletes: {err_ath})", _eval_rows),
    Claim(
        "flip {mt} and {at} of the {n} (ES {mt_es} and\n  {at_es}, PS {mt_ps} and {at_ps})",
        _landmarks,
    ),
    Claim("than at the authors' threshold (PS {au_ps})", _landmarks),
    Claim(
        "MEMIT's λ = 5,000 scores S {m_tune} on the tuning half against {m_tune_a} at the "
        "authors' 20,000,\nand {m_held} against {m_held_a} on the held-out half; AlphaEdit's 5% "
        "energy {a_tune} against {a_tune_a} at the\nauthors' threshold, and {a_held} against "
        "{a_held_a} held out.",
        _sweep,
    ),
    Claim(
        "(NS {ns_tune} and {ns_held}) because it writes less of each edit (ES {es_tune} and "
        "{es_held}).",
        _sweep,
    ),
    Claim("ES {es} and PS {ps} against ROME's 100 and\n  96.4 on GPT-2 XL", _rome),
    Claim("GE {ge_pre} → {ge_post}, held-out perplexity {ppl_pre} →\n  {ppl_post}.", _rome),
    Claim("NS {ns} against ROME's 75.4 on GPT-2 XL", _rome),
    Claim("S = {s} follows from NS.", _rome),
    Claim(
        'MEMIT at layer 6: median "along" {kept} for the\n{n_kept} facts whose neighbours all '
        "kept their answer, {others} for the {n_others} others)",
        _along,
    ),
    Claim("`src/factscope/edit/evaluate.py`): {edited} of the {known}\nathletes", _halves),
    Claim(
        "the corpus statistics keep {kept} of the {n}\nneighbours instead of {kept_identity} "
        "({flipped} flipped instead of {flipped_identity}) and shrink how far the neighbours "
        "move\n(NM {nm_identity} → {nm_full} points of probability), with part of the gain "
        "already at 10,000 tokens\n({nm_10k})",
        _corpus_size,
    ),
]
