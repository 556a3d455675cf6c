"""The numbers of docs/features.md and the result files they come from (see docs_numbers.py):
results/features/sae.json (the SAE and its held-out metrics) and jordan.json (the fact)."""

from __future__ import annotations

from typing import Any

from docs_numbers import Claim, result

PAGE = "features.md"


def _sae() -> dict[str, Any]:
    return dict(result("features/sae.json"))


def _metrics() -> dict[str, Any]:
    m = _sae()["metrics"]
    return {
        "n": f"{m['n_tokens']:,}",
        "l0": f"{m['l0']:.1f}",
        "ev": f"{m['explained_variance']:.3f}",
        "mse": f"{m['mse']:.1f}",
        "ce_tokens": f"{m['ce_tokens']:,}",
        "ce": f"{m['ce_clean']:.3f} / {m['ce_spliced']:.3f} / {m['ce_zero_ablated']:.3f}",
        "ce_zero": f"{m['ce_zero_ablated']:.1f}",
        "recovered": f"{m['ce_loss_recovered']:.3f}",
        "dead": f"{100 * m['dead_fraction']:.1f}",
        "dense": f"{100 * m['dense_fraction']:.1f}",
    }


def _setup() -> dict[str, Any]:
    s = _sae()
    return {
        "train": f"{s['train_tokens']:,}",
        "held": f"{s['held_out_tokens']:,}",
        "steps": s["train"]["n_steps"],
        "batch": f"{s['batch_size']:,}",
        "epochs": f"{s['epochs']:.1f}",
        "d_sae": f"{s['sae']['d_sae']:,}",
        "ratio": f"{s['sae']['d_sae'] / s['sae']['d_in']:.1f}",
        "d_in": s["sae"]["d_in"],
        "k": s["sae"]["k"],
        "hook": s["hook"],
        "warmup": s["train"]["warmup_steps"],
        "decay": round(100 * s["train"]["decay_fraction"]),
        "t_train": f"{s['seconds']['train']:,.0f}",
        "t_eval": f"{s['seconds']['eval']:,.0f}",
        "pub_ev": f"{s['published']['saelens_gpt2_small_resid_L0_32']['explained_variance']:.2f}",
        "pub_ce": f"{s['published']['saelens_gpt2_small_resid_L0_32']['ce_score']:.2f}",
    }


def _jordan() -> dict[str, Any]:
    j = result("features/jordan.json")
    subject = [d for d in j["dashboards"] if d["position"] == "subject"]
    return {
        "clean": f"{j['p_clean']:.3f}",
        "spliced": f"{j['p_spliced']:.4f}",
        "top": ", ".join(str(d["latent"]) for d in subject[:3]),
        "freq": f"{round(100 * min(d['frequency'] for d in subject[:3]))}-"
        f"{round(100 * max(d['frequency'] for d in subject[:3]))}",
    }


CLAIMS: list[Claim] = [
    Claim("The training set is `train_tokens` = {train} tokens", _setup),
    Claim("and the held-out set {held} tokens", _setup),
    Claim(
        "The SAE was trained for {steps} steps of {batch} tokens, {epochs} passes over the", _setup
    ),
    Claim(
        "A TopK SAE with {d_sae} latents ({ratio} x d_model {d_in}), k = {k}, at `{hook}`",
        _setup,
    ),
    Claim("1e-3 with {warmup} warm-up steps and a linear decay over the last {decay}%", _setup),
    Claim("| metric (held-out, {n} tokens) | this SAE | target |", _metrics),
    Claim("| L0 | {l0} | ≤ 64 |", _metrics),
    Claim("| explained variance (1 − FVU) | {ev} | ≥ 0.85 |", _metrics),
    Claim("| MSE per element | {mse} (the residual stream's entries are large", _metrics),
    Claim("| CE loss clean / spliced / zero-ablated ({ce_tokens} tokens) | {ce} | |", _metrics),
    Claim("| CE loss recovered | {recovered} | ≥ 0.9 |", _metrics),
    Claim("| dead latents (never active on held-out) | {dead}% | < 10% |", _metrics),
    Claim("| dense latents (active on > 10% of tokens) | {dense}% | |", _metrics),
    Claim(
        "Training took {t_train} s and the evaluation {t_eval} s (`seconds` in sae.json).", _setup
    ),
    Claim(
        "reports explained variance {pub_ev} and CE\nscore {pub_ce}; this one reaches",
        _setup,
    ),
    Claim(
        "this one reaches {ev} and {recovered} at L0 64",
        lambda: _metrics() | {"l0": ""},
    ),
    Claim("zero-ablation makes catastrophic (CE {ce_zero})", _metrics),
    Claim(
        'p(" basketball") is {clean} clean and {spliced}\n  with the reconstruction',
        _jordan,
    ),
    Claim("The three largest ({top})\n  each fire on {freq}% of corpus tokens", _jordan),
]
