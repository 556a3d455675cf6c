"""The numbers of docs/locate.md and the result files they come from (see docs_numbers.py)."""

from __future__ import annotations

from typing import Any

from docs_numbers import Claim, at_most, percent_span, result, span

PAGE = "locate.md"
N_LAYERS = 18


def _trace(kind: str) -> dict[str, Any]:
    traces = result("michael-jordan-trace/trace.json")["traces"]
    return next(t for t in traces if t["kind"] == kind)


def _window(centre: int, width: int) -> range:
    """The layers of a window centred on `centre` (ROME's formula, locate.trace)."""
    return range(max(0, centre - width // 2), min(N_LAYERS, centre - (-width // 2)))


def _peak_row(kind: str) -> dict[str, Any]:
    trace = _trace(kind)
    peak = trace["peak"]
    window = _window(peak["layer"], trace["window"])
    return {
        "layer": peak["layer"],
        "first": window.start,
        "last": window.stop - 1,
        "p": f"{trace['scores'][peak['token_index']][peak['layer']]:.3f}",
        "ie": f"{peak['effect']:+.3f}",
    }


def _subject_scores(kind: str) -> list[float]:
    """p with `kind` restored at the last subject token, by layer (window centre)."""
    trace = _trace(kind)
    return list(trace["scores"][trace["subject_span"][1] - 1])


def _ie(kind: str, token: int) -> list[float]:
    trace = _trace(kind)
    return [s - trace["corrupted_p"] for s in trace["scores"][token]]


def _collapse() -> dict[str, Any]:
    """Where restoring the MLPs at the last subject token stops working."""
    scores = _subject_scores("mlp")
    width = _trace("mlp")["window"]
    first_low = next(c for c, s in enumerate(scores) if s < 0.2)
    return {
        "high": span(scores[:first_low]),
        "last_high": first_low - 1,
        "centre": first_low,
        "from": _window(first_low, width).start,
        "low": span(scores[first_low:]),
    }


def _facts(kind: str, where: str) -> list[float]:
    return list(result("trace-facts.json")["summary"][kind][f"aie_{where}_by_layer"])


def _patch(kind: str) -> Any:
    return result("jordan-vs-brady-patch/patch.json")["scores"][kind]


def _heads_peak() -> dict[str, Any]:
    heads = _patch("heads")
    layer, head = max(
        ((l, h) for l in range(len(heads)) for h in range(len(heads[l]))),
        key=lambda lh: heads[lh[0]][lh[1]],
    )
    return {"layer": layer, "head": head, "pct": round(100 * heads[layer][head])}


def _lens_first_top() -> dict[str, Any]:
    lens = result("michael-jordan-lens/lens.json")["lens"]
    i = lens["answer_rank"].index(0)
    return {"block": lens["layers"][i].split(".")[1], "p": f"{lens['answer_prob'][i]:.2f}"}


def _dla() -> dict[str, Any]:
    """The logit's direct attribution: the sum, and its largest attention layers, heads and
    MLPs."""
    dla = result("michael-jordan-lens/lens.json")["dla"]

    def top(values: list[float], n: int) -> list[tuple[int, float]]:
        return sorted(enumerate(values), key=lambda iv: -iv[1])[:n]

    heads = sorted(
        ((l, h, v) for l, row in enumerate(dla["heads"]) for h, v in enumerate(row)),
        key=lambda lhv: -lhv[2],
    )[:3]
    (a1, va1), (a2, va2) = top(dla["attn"], 2)
    mlps = top(dla["mlp"], 3)
    return {
        "logit": f"{dla['logit']:.2f}",
        "total": f"{dla['total']:.3f}",
        "error": f"{dla['error'] / abs(dla['logit']):.0e}".replace("e-0", "e-"),
        "attn": f"layers {a1} ({va1:+.2f}) and {a2} ({va2:+.2f})",
        "heads": f"L{heads[0][0]}H{heads[0][1]} ({heads[0][2]:+.2f}), L{heads[1][0]}H"
        f"{heads[1][1]}\n  ({heads[1][2]:+.2f}), L{heads[2][0]}H{heads[2][1]} ({heads[2][2]:+.2f})",
        "mlps": ", ".join(f"{l} ({v:+.2f})" for l, v in mlps),
    }


def _approx(kind: str) -> dict[str, Any]:
    summary = result("trace-facts.json")["summary"][kind]
    return {
        "pooled": f"{summary['pooled_correlation']:.2f}",
        "median": f"{summary['median_fact_correlation']:.2f}",
    }


def _speed() -> dict[str, Any]:
    facts = result("trace-facts.json")
    seconds, n = facts["seconds"], facts["n_known"]
    return {
        "approx": f"{seconds['approx'] / n:.1f}",
        "exact": f"{seconds['exact'] / n:.0f}",
        "ratio": f"{seconds['exact'] / seconds['approx']:.0f}",
    }


def _known() -> dict[str, Any]:
    facts = result("trace-facts.json")
    clean = [f["kinds"]["hidden"]["clean_p"] for f in facts["facts"]]
    corrupted = [f["kinds"]["hidden"]["corrupted_p"] for f in facts["facts"]]
    return {
        "candidates": facts["n_candidates"],
        "known": facts["n_known"],
        "clean": f"{sum(clean) / len(clean):.2f}",
        "corrupted": f"{sum(corrupted) / len(corrupted):.3f}",
    }


CLAIMS: list[Claim] = [
    # the single trace
    Claim(
        "(std {std} = 3 × the std of the",
        lambda: {"std": f"{_trace('hidden')['noise_std']:.2f}"},
    ),
    Claim(
        'p(" basketball") falls from **{clean}** (clean) to **{corrupted}** (corrupted, mean '
        "of {samples} noise",
        lambda: {
            "clean": f"{_trace('hidden')['clean_p']:.3f}",
            "corrupted": f"{_trace('hidden')['corrupted_p']:.3f}",
            "samples": _trace("hidden")["samples"],
        },
    ),
    Claim(
        '| hidden (block output) | " of" (last token), layer {layer} | {p} (IE {ie}) |',
        lambda: _peak_row("hidden"),
    ),
    Claim(
        '| MLP output, 10-layer window | " Jordan" (last subject token), window centred on '
        "layer {layer} (layers {first}–{last}) | {p} (IE {ie}) |",
        lambda: _peak_row("mlp"),
    ),
    Claim(
        '| attention output, 10-layer window | " of", window centred on layer {layer} '
        "(layers {first}–{last}) | {p} (IE {ie}) |",
        lambda: _peak_row("attn"),
    ),
    Claim(
        "over any window centred on layers 0–{last_high} brings p back to {high};\n  from "
        "centre {centre} on (windows from layer {from} up, which leave out the early MLPs) p "
        "falls to {low}.",
        _collapse,
    ),
    Claim(
        "carries the fact from layer 1 to 11 (IE {ie})",
        lambda: {"ie": span(_ie("hidden", 2)[1:12])},
    ),
    Claim(
        "covering layers ~8–17 gives back almost everything (IE up to {ie})",
        lambda: {"ie": f"{max(_ie('attn', 6)[8:]):.2f}"},
    ),
    Claim(
        "the residual stream at the input of block {block} (p {p}) and stays there.",
        _lens_first_top,
    ),
    Claim(
        'logit of " basketball" ({logit}; the components sum to {total}, relative error '
        "{error}) comes\n  mostly from attention in {attn} — heads {heads} — and MLPs {mlps}.",
        _dla,
    ),
    # activation patching
    Claim(
        'patching the residual stream at " Jordan" restores {pct}% of the logit difference at\n'
        "  layers 2–12",
        lambda: {"pct": percent_span(row[2] for row in _patch("resid")[2:13])},
    ),
    Claim(
        'the MLP at (layer 3, " Jordan") alone restores {pct}%',
        lambda: {"pct": round(100 * _patch("mlp")[3][2])},
    ),
    Claim(
        "head L{layer}H{head}, patched at every position (a head is patched over the whole\n"
        "  prompt), restores {pct}%.",
        _heads_peak,
    ),
    # 30 facts
    Claim(
        "{candidates} well-known athletes were asked",
        _known,
    ),
    Claim(
        "at p > 0.5 for **{known}** of them (mean clean p {clean}, corrupted {corrupted})",
        _known,
    ),
    Claim(
        "| hidden | {a} at layers 1–9, ≤ {b} from 10 (peak layer {pa}, {va}) | ≤ {c} up to "
        "layer 11, {d} from 12 (peak {pd}, {vd}) |",
        lambda: {
            "a": span(_facts("hidden", "last_subject_token")[1:10]),
            "b": at_most(_facts("hidden", "last_subject_token")[10:]),
            "pa": result("trace-facts.json")["summary"]["hidden"]["peak_layer_last_subject_token"],
            "va": f"{max(_facts('hidden', 'last_subject_token')):.2f}",
            "c": at_most(_facts("hidden", "last_token")[:12]),
            "d": span(_facts("hidden", "last_token")[12:]),
            "pd": result("trace-facts.json")["summary"]["hidden"]["peak_layer_last_token"],
            "vd": f"{max(_facts('hidden', 'last_token')):.2f}",
        },
    ),
    Claim(
        "| MLP (window 10) | {a} for centres 0–7, ≤ {b} from 9 (peak {pa}, {va}) | ≤ {c} "
        "everywhere |",
        lambda: {
            "a": span(_facts("mlp", "last_subject_token")[:8]),
            "b": at_most(_facts("mlp", "last_subject_token")[9:]),
            "pa": result("trace-facts.json")["summary"]["mlp"]["peak_layer_last_subject_token"],
            "va": f"{max(_facts('mlp', 'last_subject_token')):.2f}",
            "c": at_most(_facts("mlp", "last_token")),
        },
    ),
    Claim(
        "| attention (window 10) | ≤ {a} everywhere | {b} for centres 8–16 (peak {pb}, {vb}) |",
        lambda: {
            "a": at_most(_facts("attn", "last_subject_token")),
            "b": span(_facts("attn", "last_token")[8:17]),
            "pb": result("trace-facts.json")["summary"]["attn"]["peak_layer_last_token"],
            "vb": f"{max(_facts('attn', 'last_token')):.2f}",
        },
    ),
    # --approx
    *[
        Claim(f"| {name} | {{pooled}} | {{median}} |", lambda kind=kind: _approx(kind))
        for name, kind in (("hidden", "hidden"), ("MLP", "mlp"), ("attention", "attn"))
    ],
    Claim(
        "It takes {approx} s per fact against {exact} s for the exact trace ({ratio}x).",
        _speed,
    ),
]
