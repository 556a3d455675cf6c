"""The numbers of docs/scratch.md and the result files they come from (see docs_numbers.py)."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from docs_numbers import RESULTS, Claim, percent_span, result, span

PAGE = "scratch.md"
ARMS = {"single": "one biography each (`single`)", "multi": "five shuffled each (`multi`)"}
ATTRIBUTES = ("birth_city", "birth_year", "employer", "major", "sport", "university")
BLOCK_KINDS = {"hidden": "hidden state", "mlp": "MLP output", "attn": "attention output"}


def _explain_line(name: str, prefix: str) -> Claim:
    """A line the page copies from `factscope explain`'s output (`results/scratch-explain/`),
    from `prefix` on."""

    def values() -> dict[str, Any]:
        lines = (RESULTS / "scratch-explain" / name).read_text(encoding="utf-8").splitlines()
        return {"rest": next(line[len(prefix) :] for line in lines if line.startswith(prefix))}

    return Claim(prefix.replace("{", "{{").replace("}", "}}") + "{rest}", values)


BASICS_LINES = [
    "  hidden 1: ",
    "      ReLU(-26.348)",
    "  hidden 2: ",
    "      ReLU(6.89)",
    "  hidden 3: ",
    "      ReLU(-20.998)",
    "  leaf: ",
    "  flower: ",
    "  p(leaf) = ",
    "  p(flower) = ",
    "  sum of probabilities",
    "  step 1 for the weight R -> hidden 1: ",
    "  step    0: ",
    "  step   25: ",
    "  step  100: ",
    "  step  200: ",
]


def _layer5() -> dict[str, Any]:
    text = (RESULTS / "scratch-explain" / "layer5.txt").read_text(encoding="utf-8")
    checks = [float(x) for x in re.findall(r"^check: .* = (\S+)$", text, flags=re.M)]
    rms = re.search(r"rms = ([0-9.]+)", text)
    bos = re.search(r"1x4x7x7 +\[\+([0-9.]+)", text)  # head 0's weight on <bos>
    assert rms and bos, "layer5.txt no longer has its rms or attention line"
    return {
        "rms": f"{float(rms.group(1)):.0f}",
        "bos": f"{float(bos.group(1)):.3f}",
        "diff": f"{max(checks):.2e}",
    }


def _summary() -> dict[str, Any]:
    return result("scratch-arms/summary.json")


def _knowledge(arm: str, split: str = "heldout") -> dict[str, float]:
    return dict(_summary()[f"knowledge_{arm}"]["accuracy"][split])


def _arm_row(arm: str, label: str, paper: str | None) -> Claim:
    def values() -> dict[str, Any]:
        train = _summary()[f"train_{arm}"]
        return {
            "loss": f"{train['last_loss']:.2f} / {train['eval_loss']:.2f}",
            "trained": f"{100 * _knowledge(arm, 'train')['all']:.1f}%",
            "heldout": f"{100 * _knowledge(arm)['all']:.1f}%",
            "paper": "—" if paper is None else f"{100 * _summary()['paper_heldout'][paper]:.1f}%",
        }

    return Claim(f"| {label} | {{loss}} | {{trained}} | **{{heldout}}** | {{paper}} |", values)


def _arms_text() -> dict[str, Any]:
    s = _summary()
    train = {a: s[f"train_{a}"] for a in ("single", "multi", "multi-relu")}
    qa80 = [s[f"knowledge_{a}_qa80"]["accuracy"]["train"]["all"] for a in ("single", "multi")]
    heldout = {a: _knowledge(a)["all"] for a in ("single", "multi", "multi-relu")}
    n = s["knowledge_multi"]["counts"]["heldout"]
    pooled = (heldout["multi"] + heldout["multi-relu"]) / 2
    z = (heldout["multi-relu"] - heldout["multi"]) / math.sqrt(pooled * (1 - pooled) * 2 / n)
    relu_params, params = train["multi-relu"]["parameters"], train["multi"]["parameters"]
    return {
        "speed": f"{min(t['tokens_per_s'] for t in train.values()):.0f}–"
        f"{max(t['tokens_per_s'] for t in train.values()):.0f}",
        "params": f"{params / 1e6:.2f}",
        "multi": f"{100 * heldout['multi']:.1f}",
        "single": f"{100 * heldout['single']:.1f}",
        "e_multi": f"{train['multi']['eval_loss']:.2f}",
        "e_single": f"{train['single']['eval_loss']:.2f}",
        "l_multi": f"{train['multi']['last_loss']:.2f}",
        "qa80": percent_span(qa80),
        "paper_single": f"{100 * s['paper_heldout']['single']:.1f}",
        "paper_multi": f"{100 * s['paper_heldout']['multi']:.1f}",
        "relu": f"{100 * heldout['multi-relu']:.1f}",
        "relu_n": round(heldout["multi-relu"] * n),
        "multi_n": round(heldout["multi"] * n),
        "relu_attr": percent_span(_knowledge("multi-relu")[a] for a in ATTRIBUTES),
        "z": f"{z:.1f}",
        "relu_loss": f"{train['multi-relu']['last_loss']:.2f} train, "
        f"{train['multi-relu']['eval_loss']:.2f} on fresh wording, vs "
        f"{train['multi']['last_loss']:.2f} / {train['multi']['eval_loss']:.2f}",
        "fewer": f"{100 * (1 - relu_params / params):.1f}",
        "relu_params": f"{relu_params:,}",
        "n": n,
    }


def _trace(kind: str) -> dict[str, Any]:
    return next(t for t in result("scratch-arms/trace/trace.json")["traces"] if t["kind"] == kind)


def _trace_values() -> dict[str, Any]:
    hidden, mlp, attn = (np.asarray(_trace(k)["scores"]) for k in ("hidden", "mlp", "attn"))
    tokens = _trace("hidden")["tokens"]
    first, stop = _trace("hidden")["subject_span"]
    name = {k: np.asarray(_trace(k)["scores"])[first:stop] for k in BLOCK_KINDS}
    kind, (tok, block) = max(
        ((k, np.unravel_index(int(s.argmax()), s.shape)) for k, s in name.items()),
        key=lambda kt: name[kt[0]][kt[1]],
    )
    a_tok, a_block = np.unravel_index(int(attn.argmax()), attn.shape)
    return {
        "clean": f"{_trace('hidden')['clean_p']:.3f}",
        "corrupted": f"{_trace('hidden')['corrupted_p']:.4f}",
        "h_last": f"{hidden[-1, -1]:.3f}",
        "h_early": ", ".join(f"{x:.3f}" for x in hidden[-1, 1:3]),
        "m_last": f"{mlp[-1, -1]:.3f}",
        "name_cell": f'{BLOCK_KINDS[kind].split()[0]} at "{tokens[first + tok]}", block {block}',
        "name_p": f"{name[kind][tok, block]:.3f}",
        "attn_cell": f'"{tokens[a_tok]}" block {a_block}',
        "attn_p": f"{attn[a_tok, a_block]:.3f}",
    }


def _probes() -> dict[str, Any]:
    probes = _summary()["probes"]
    both = ("single", "multi")
    return {
        "sport": span(x for a in both for x in probes[a]["sport"]["accuracy"]),
        "sport_chance": f"{probes['multi']['sport']['chance']:.3f}",
        "city": span(x for a in both for x in probes[a]["birth_city"]["accuracy"]),
        "city_chance": f"{probes['multi']['birth_city']['chance']:.3f}",
        "relu01": " and ".join(f"{x:.2f}" for x in probes["multi-relu"]["sport"]["accuracy"][1:3]),
        "swiglu": span(probes["multi"]["sport"]["accuracy"]),
    }


def _and(arm: str) -> dict[str, Any]:
    return dict(_summary()["and_neurons"][arm])


def _and_row(arm: str, label: str) -> Claim:
    def values() -> dict[str, Any]:
        a = _and(arm)
        per = ", ".join("0" if x == 0 else f"{x:.2f}" for x in a["and_per_person"])
        people = ", ".join(f"{round(100 * x)}%" for x in a["people_with_and"])
        return {"per": per, "people": people}

    return Claim(f"| {label} | {{per}} | {{people}} |", values)


def _and_text() -> dict[str, Any]:
    gated, relu = _and("multi"), _and("multi-relu")
    return {
        "n": gated["n_people"],
        "relu0": "none" if relu["and_per_person"][0] == 0 else f"{relu['and_per_person'][0]:.2f}",
        "gated0": f"{gated['and_per_person'][0]:.2f}",
        "ratio": f"{gated['and_per_person'][3] / relu['and_per_person'][3]:.1f}",
    }


CLAIMS: list[Claim] = [
    *[_explain_line("basics.txt", prefix) for prefix in BASICS_LINES],
    Claim(
        "residual\nin (1×7×640, rms {rms})",
        _layer5,
    ),
    Claim("over the 7 tokens ({bos} on `<bos>`, sum 1.0000)", _layer5),
    Claim("match exactly (max difference {diff})", _layer5),
    # 5. the arms
    Claim("sharing a 2-core machine; {speed} tokens/s each", _arms_text),
    Claim("i.e. 300 people, a {params} M-parameter `small` SwiGLU model", _arms_text),
    Claim(
        "With one biography per person (bioS single) a 124M\nmodel answered {paper_single}% of "
        "the held-out questions; with five shuffled biographies per person\n(multi5 + permute) "
        "{paper_multi}%.",
        _arms_text,
    ),
    *[_arm_row(a, label, a) for a, label in ARMS.items()],
    _arm_row("multi-relu", "five shuffled each, plain ReLU MLP (`multi-relu`, section 7)", None),
    Claim("Whole-answer greedy accuracy over {n} questions per cell", _arms_text),
    Claim(
        "the augmented arm is ahead ({multi}% vs {single}%, and its wording\ngeneralises: eval "
        "loss on fresh biographies {e_multi} vs {e_single}",
        _arms_text,
    ),
    Claim("with the biography loss still {l_multi}", _arms_text),
    Claim("left even the\ntrained people at {qa80}%", _arms_text),
    # 6. trace and probe
    Claim(
        'p(" rugby") = {clean} clean, {corrupted} with\nthe name\'s three tokens noised',
        _trace_values,
    ),
    Claim('| hidden state | last token ":" after block 3 (the output) | {h_last} |', _trace_values),
    Claim('| hidden state | ":" after blocks 1–2 | {h_early} |', _trace_values),
    Claim('| MLP output | ":" block 3 | {m_last} |', _trace_values),
    Claim("| any state at one name token | {name_cell} | {name_p} |", _trace_values),
    Claim("| attention output | {attn_cell} | {attn_p} |", _trace_values),
    Claim(
        "stays at chance after every block in both arms (sport\n{sport} vs majority "
        "{sport_chance}; city {city} vs {city_chance})",
        _probes,
    ),
    # 7. AND-like neurons
    Claim("For {n} people (first name A, last name B, middle kept)", _and_text),
    _and_row("multi", "SwiGLU (gated, silu)"),
    _and_row("multi-relu", "plain ReLU"),
    Claim(
        "Yes, AND-like neurons appear in both: the ReLU model has {relu0} in block 0, the SwiGLU "
        "model\n{gated0} per person there",
        _and_text,
    ),
    Claim("The gated MLP has {ratio} times as many by block 3", _and_text),
    Claim(
        "and {relu}% of the held-out people's ({relu_n} of\n{n}; per attribute {relu_attr}%), "
        "against SwiGLU's {multi}% ({multi_n} of {n}).",
        _arms_text,
    ),
    Claim("a two-proportion z of about {z}.", _arms_text),
    Claim("pretraining ended at a similar loss ({relu_loss})", _arms_text),
    Claim("with {fewer}% fewer parameters ({relu_params}).", _arms_text),
    Claim(
        "a little above chance after blocks 0–1 ({relu01} vs a\nmajority share of "
        "0.063; cities stay at chance), where SwiGLU's stayed at {swiglu}.",
        _probes,
    ),
]
