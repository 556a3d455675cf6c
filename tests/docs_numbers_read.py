"""The numbers of docs/read.md and the result files they come from (see docs_numbers.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from docs_numbers import Claim, at_least, at_most, num, num_span, percent_span, result, span

PAGE = "read.md"


def _neurons(run: str = "read-neurons") -> dict[str, Any]:
    return result(f"{run}/neurons.json")


def _top(position: str, run: str = "read-neurons") -> list[dict[str, Any]]:
    return list(_neurons(run)["top"][position])


def _neuron(layer: int, index: int) -> dict[str, Any]:
    return next(
        n
        for pos in ("subject", "final")
        for n in _top(pos)
        if (n["layer"], n["index"]) == (layer, index)
    )


def _one_names(neuron: dict[str, Any]) -> list[float]:
    """The neuron's activation on each of the 15 one-name and no-name variants."""
    return [a for acts in neuron["and_test"]["by_kind"].values() for a in acts]


def _verdict(neuron: dict[str, Any]) -> str:
    verdict = neuron["and_test"]["verdict"]
    if verdict.startswith("last name alone"):
        return "last name alone"
    if verdict.startswith("first name alone"):
        return "first name alone"
    if verdict.startswith("not specific"):
        return "not specific"
    return "AND (raises)" if verdict.endswith("raises it)") else "AND (lowers)"


def _subject_row(n: dict[str, Any]) -> Claim:
    mean = n["and_test"]["mean"]
    return Claim(
        f"| L{n['layer']}.N{n['index']} | {{score}} | {{gate}} | {{up}} | {{act}} | {{mean}} | "
        "{first} / {last} / {neither} | {one} | {p} | {verdict} |",
        lambda: {
            "score": num(n["score"], 3),
            "gate": num(n["gate"]),
            "up": num(n["up"]),
            "act": num(n["act"]),
            "mean": num(n["mean_act"]),
            "first": num(mean["first"]),
            "last": num(mean["last"]),
            "neither": num(mean["neither"]),
            "one": num_span(_one_names(n)),
            "p": num(n["ablated_p"], 3),
            "verdict": _verdict(n),
        },
    )


def _final_row(n: dict[str, Any]) -> Claim:
    return Claim(
        f"| L{n['layer']}.N{n['index']} | {{dla}} | {{act}} | {{mean}} |",
        lambda: {
            "dla": num(n["score"], sign=True),
            "act": num(n["act"]),
            "mean": num(n["mean_act"]),
        },
    )


def _and_neuron() -> dict[str, Any]:
    n = _neuron(3, 1627)
    gate, up, acts = n["and_test"]["gate_mean"], n["and_test"]["up_mean"], n["and_test"]
    return {
        "act": num(n["act"]),
        "means": num_span(acts["mean"].values()),
        "one": num_span(_one_names(n)),
        "g_both": num(gate["both"]),
        "g_first": num(gate["first"]),
        "g_last": num(gate["last"]),
        "g_neither": num(gate["neither"]),
        "u_both": num(up["both"]),
        "u_first": num(up["first"]),
        "u_last": num(up["last"]),
        "u_neither": num(up["neither"]),
        "a_first": num(acts["mean"]["first"]),
        "a_last": num(acts["mean"]["last"]),
        "a_neither": num(acts["mean"]["neither"]),
        "clean": f"{_neurons()['clean_p']:.3f}",
        "ablated": f"{n['ablated_p']:.3f}",
    }


def _ablation(position: str, mode: str, run: str = "read-neurons") -> dict[str, Any]:
    return next(
        a for a in _neurons(run)["ablation"] if (a["position"], a["mode"]) == (position, mode)
    )


def _ablation_row(k: int) -> Claim:
    curves = [_ablation(pos, mode) for pos in ("subject", "final") for mode in ("zero", "mean")]

    def values() -> dict[str, Any]:
        i = curves[0]["ks"].index(k)
        return {
            **{f"c{j}": f"{c['top_p'][i]:.3f}" for j, c in enumerate(curves)},
            "random": span((c["random_mean"][i] for c in curves), 3),
            "std": at_most((c["random_std"][i] for c in curves), 3),
        }

    return Claim(f"| {k} | {{c0}} | {{c1}} | {{c2}} | {{c3}} | {{random}} (≤ {{std}}) |", values)


def _ig() -> dict[str, Any]:
    ours, ig = _neurons(), _neurons("read-neurons-ig")
    tops = [
        {(n["layer"], n["index"]) for n in _top("subject", run)}
        for run in ("read-neurons", "read-neurons-ig")
    ]
    a, b = (np.asarray(r["scores"]["subject"]).ravel() for r in (ours, ig))
    top200 = [set(np.argsort(-s)[:200].tolist()) for s in (a, b)]
    first = _top("subject", "read-neurons-ig")[0]
    return {
        "first": f"L{first['layer']}.N{first['index']}",
        "shared10": len(tops[0] & tops[1]),
        "shared200": len(top200[0] & top200[1]),
        "corr": f"{np.corrcoef(a, b)[0, 1]:.2f}",
        "ig20": f"{_at_k('subject', 'mean', 20, run='read-neurons-ig'):.3f}",
        "ours20": f"{_at_k('subject', 'mean', 20):.3f}",
    }


def _at_k(position: str, mode: str, k: int, key: str = "top_p", run: str = "read-neurons") -> float:
    curve = _ablation(position, mode, run)
    return float(curve[key][curve["ks"].index(k)])


def _projection() -> dict[str, Any]:
    proj = result("read-directions/directions.json")["projection"]
    p = np.asarray(proj["projection"])  # (layers + 1, tokens): entering block l, then the output
    cos = np.asarray(proj["cosine"])
    tokens = proj["tokens"]
    of, jordan, plays, the, sport = (
        tokens.index(t) for t in (" of", " Jordan", " plays", " the", " sport")
    )
    first = proj["first_top_layer"]
    embed = [cos[0, tokens.index(t)] for t in ("Michael", " Jordan", " plays", " sport")]
    return {
        "first": first,
        "rank": proj["answer_rank"][first - 1],
        "before": num(p[first - 1, of], 0),
        "after": num(p[first, of], 0),
        "peak": num(p[16, of], 0),
        "plays": "–".join(num(x, 0) for x in (p[first:17, plays].min(), p[first:17, plays].max())),
        "the": "–".join(num(x, 0) for x in (p[first:17, the].min(), p[first:17, the].max())),
        "sport": ", ".join(num(x, 0) for x in p[first:16, sport]),
        "sport16": num(p[16, sport], 0),
        "j13": num(p[13, jordan], 0),
        "j16": num(p[16, jordan], 0),
        "embed": span(embed),
        "later": at_most(np.abs(cos[1:]).ravel()),
        "of": at_most(cos[:, of]),
    }


def _means() -> dict[str, Any]:
    means = result("read-directions/directions.json")["means"]
    classes = means["classes"]
    held = [p["share_held_out"] for p in means["prompts"] if p["known"]]
    cos = np.asarray(means["cosines"])
    off = cos[~np.eye(len(cos), dtype=bool)]
    return {
        "n": means["n_prompts"],
        "known": means["n_known"],
        "held": percent_span(c["share_held_out"] for c in classes),
        "one": span(held),
        "cos": span((c["cos_with_unembedding"] for c in classes), 3),
        "normed": span(c["cos_normed_with_unembedding"] for c in classes),
        "pairs": f"{num(off.min())} to {num(off.max(), sign=True)}",
    }


def _class_row(c: dict[str, Any]) -> Claim:
    return Claim(
        f"| '{c['answer']}' | {{known}} | {{cos}} | {{normed}} | {{share}} | {{held}} |",
        lambda: {
            "known": f"{c['n_known']}/{c['n_prompts']}",
            "cos": f"{c['cos_with_unembedding']:.3f}",
            "normed": f"{c['cos_normed_with_unembedding']:.3f}",
            "share": f"{c['share_explained']:.3f}",
            "held": f"{c['share_held_out']:.3f}",
        },
    )


def _knockout(run: str = "read-knockout") -> dict[str, Any]:
    return result(f"{run}/knockout.json")


def _knockout_row(first: int, last: int) -> Claim:
    def values() -> dict[str, Any]:
        k = _knockout()
        i = k["windows"].index([first, last])
        return {s: f"{k['probs'][s][i]:.3f}" for s in ("subject", "non-subject", "last")}

    return Claim(f"| {first}–{last} | {{subject}} | {{non-subject}} | {{last}} |", values)


def _knockout_text() -> dict[str, Any]:
    k, one = _knockout(), _knockout("read-knockout-w1")
    with12 = [i for i, (a, b) in enumerate(k["windows"]) if a <= 12 <= b]
    early = [i for i, (a, b) in enumerate(k["windows"]) if b <= 7 and b - a + 1 == k["window"]]
    late = [i for i, (a, _) in enumerate(k["windows"]) if a >= 8]
    subject, relation = one["probs"]["subject"], one["probs"]["non-subject"]
    return {
        "l12": f"{subject[12]:.3f}",
        "others": span(p for i, p in enumerate(subject) if i != 12),
        "l3": f"{relation[3]:.3f}",
        "l2": f"{relation[2]:.3f}",
        "l7": f"{relation[7]:.3f}",
        "rest": at_least(p for i, p in enumerate(relation) if i not in (2, 3, 7)),
        "clean": f"{k['clean_p']:.2f}",
        "with12": span(k["probs"]["subject"][i] for i in with12),
        "early": span(k["probs"]["non-subject"][i] for i in early),
        "late": span(k["probs"]["non-subject"][i] for i in late),
    }


def _head_row(h: dict[str, Any]) -> Claim:
    return Claim(
        f"| L{h['layer']}.H{h['head']} | {{dla}} | {{attn}} |",
        lambda: {"dla": num(h["dla"], sign=True), "attn": f"{h['attn_to_subject']:.2f}"},
    )


def _one_neuron() -> str:
    clean = _neurons()["clean_p"]
    return span(clean - n["ablated_p"] for n in _top("subject"))


CLAIMS: list[Claim] = [
    # 1. neurons
    Claim('p(" basketball") = **{p}**.', lambda: {"p": f"{_neurons()['clean_p']:.3f}"}),
    Claim(
        "(max relative error over layers **{e}**;",
        lambda: {"e": f"{_neurons()['sum_rel_error']:.1e}".replace("e-0", "e-")},
    ),
    *[_subject_row(n) for n in _top("subject")],
    Claim(
        'The clearest is **L3.N1627**: {act} on\n"Michael Jordan"; its mean over each group of '
        "five one-name or no-name variants is {means},\nand the 15 single names give {one}.",
        _and_neuron,
    ),
    Claim(
        "| gate·x (pre-activation) | **{g_both}** | {g_first} | {g_last} | {g_neither} |",
        _and_neuron,
    ),
    Claim("| up·x | {u_both} | {u_first} | **{u_last}** | {u_neither} |", _and_neuron),
    Claim("| gelu(gate) × up | **{act}** | {a_first} | {a_last} | {a_neither} |", _and_neuron),
    Claim(
        '({u_last} on average over the five "<name> Jordan" prompts, {u_neither} with neither '
        "name)",
        _and_neuron,
    ),
    Claim(
        'p(" basketball") from {clean} to {ablated}. L0.N94 is',
        _and_neuron,
    ),
    Claim(
        'a "Jordan" detector ({last} on average for "<name> Jordan", {one} for single\nsuch names; '
        "{other} for the ten others)",
        lambda: {
            "last": num(_neuron(0, 94)["and_test"]["mean"]["last"]),
            "one": span(_neuron(0, 94)["and_test"]["by_kind"]["last"]),
            "other": num_span(
                _neuron(0, 94)["and_test"]["by_kind"]["first"]
                + _neuron(0, 94)["and_test"]["by_kind"]["neither"]
            ),
        },
    ),
    Claim(
        'weaker response to "Jordan" alone ({last} on average, of {act})',
        lambda: {
            "last": num(_neuron(1, 1361)["and_test"]["mean"]["last"]),
            "act": num(_neuron(1, 1361)["act"]),
        },
    ),
    Claim("One neuron is worth {d} of p", lambda: {"d": _one_neuron()}),
    Claim(
        "(L2.N1914: {act} vs {mean} on average)",
        lambda: {"act": num(_neuron(2, 1914)["act"]), "mean": num(_neuron(2, 1914)["mean_act"], 1)},
    ),
    Claim(
        "its top neuron is {first}, {shared10} of its top 10 are in the list above",
        _ig,
    ),
    Claim(
        "{shared200} of the\n  top 200 are shared, and the two score maps correlate at {corr}. "
        "Mean-ablating IG's top 20\n  gives p {ig20} (gradient × activation's: {ours20}).",
        _ig,
    ),
    *[_final_row(n) for n in _top("final")[:5]],
    Claim(
        "its activation is {act} for Michael Jordan and {means} on average over each group of "
        "five\nother names ({one} for single names)",
        lambda: {
            "act": num(_neuron(13, 1012)["act"]),
            "means": span(_neuron(13, 1012)["and_test"]["mean"].values()),
            "one": span(_one_names(_neuron(13, 1012))),
        },
    ),
    *[_ablation_row(k) for k in (1, 2, 5, 10, 20, 50, 200)],
    Claim(
        "mean-ablating them takes p\n  from {clean} to {top}; 20 random neurons of the same layers "
        "leave it at {random}.",
        lambda: {
            "clean": f"{_neurons()['clean_p']:.3f}",
            "top": f"{_at_k('subject', 'mean', 20):.3f}",
            "random": f"{_at_k('subject', 'mean', 20, 'random_mean'):.2f}",
        },
    ),
    Claim(
        "zeroing the top 20 direct writers kills the answer ({zero}), but *mean*-ablating\n  them "
        "barely matters ({mean}; {mean200} at k = 200)",
        lambda: {
            "zero": f"{_at_k('final', 'zero', 20):.3f}",
            "mean": f"{_at_k('final', 'mean', 20):.3f}",
            "mean200": f"{_at_k('final', 'mean', 200):.3f}",
        },
    ),
    # 2. directions
    Claim(
        'At the final token " basketball" is the logit lens\'s top-1 token from the stream '
        "entering\nblock {first} on (rank {rank} entering block 12, ranks in the thousands "
        "before); the projection\njumps from {before} to {after} between the input of block 12 "
        "and of block 13 and reaches {peak} at\nblock 16.",
        _projection,
    ),
    Claim(
        'From block 13 on the relation tokens " plays" and " the" carry it too ({plays} and\n'
        '{the} entering blocks 13–16), but not " sport" ({sport} entering blocks 13–15, {sport16} '
        'entering\nblock 16). At " Jordan" the projection also grows late ({j13} entering block '
        "13, {j16} entering\nblock 16)",
        _projection,
    ),
    Claim(
        'The cosine is small from block 1 on (|cos| ≤ {later}; ≤ {of} at " of"); only the '
        'embeddings\nentering block 0 reach {embed} (at "Michael", " Jordan", " plays", " sport").',
        _projection,
    ),
    Claim("over {n}\nathletes shipped with factscope", _means),
    Claim("{known} of {n} are *known*", _means),
    *[_class_row(c) for c in result("read-directions/directions.json")["means"]["classes"]],
    Claim(
        "carries {held} % when the prompt is held out of its own direction (single athletes: "
        "{one};",
        _means,
    ),
    Claim("is {cos}, the size of a random pair", _means),
    Claim("In the final-normed\n  stream the cosine is {normed}:", _means),
    Claim("Sport directions are mutually negative or near zero ({pairs})", _means),
    # 3. knockout
    *[
        _knockout_row(a, b)
        for a, b in (
            (0, 2),
            (0, 4),
            (3, 7),
            (6, 10),
            (8, 12),
            (9, 13),
            (11, 15),
            (12, 16),
            (13, 17),
        )
    ],
    Claim(
        "blocking the subject in **layer 12 alone** gives p {l12}, every other single layer\n"
        "{others}; blocking the relation tokens in **layer 3 alone** gives {l3} (layer 2: {l2},\n"
        "layer 7: {l7}, others ≥ {rest}).",
        _knockout_text,
    ),
    Claim(
        "matters only in windows that include **layer 12** (p {clean} → {with12})",
        _knockout_text,
    ),
    Claim(
        "(blocking them in any 5-layer window within layers 0–7\ndrops p to {early}; from layer 8 "
        "on they are harmless, {late})",
        _knockout_text,
    ),
    *[_head_row(h) for h in _knockout()["heads"]],
    # summary
    Claim(
        '| an MLP neuron at "Jordan" fires only for "Michael" AND "Jordan" | yes: L3.N1627 '
        "({act} vs {one} for the 15 one- and no-name variants)",
        _and_neuron,
    ),
    Claim(
        'about 20 neurons at " Jordan" hold it (p {clean} → {top}); one is worth {one}',
        lambda: {
            "clean": f"{_neurons()['clean_p']:.3f}",
            "top": f"{_at_k('subject', 'mean', 20):.3f}",
            "one": _one_neuron(),
        },
    ),
    Claim("explains {held} % of the answer's logit across athletes", _means),
    # output / cost
    Claim(
        "in **{calls} batched forward calls** ({rows}\nsequences, {tokens} token positions "
        "computed, {backward} backward pass)",
        lambda: {k: f"{v:,}" for k, v in _neurons()["forward_passes"].items()},
    ),
]
