"""How much of a ROME update each other subject's key receives: u·k with u = C⁻¹k*/(k*ᵀC⁻¹k*),
k* Michael Jordan's averaged key (so u·k* = 1), at layers 3, 6 and 9 of gemma-3-270m, with the
self-corpus C (100,000 tokens) and with C = I. Run from the repository root:

    python docs/results/edit-worked/keys.py > docs/results/edit-worked/keys.json
"""

import json

import torch

from factscope.edit.request import answer_ids, build_batch, context_templates, keys_at
from factscope.edit.stats import layer_stats
from factscope.load import load_model

LAYERS = (3, 6, 9)
OTHERS = [
    ("Michael Jordan plays the sport of", "Michael Jordan"),  # the bare prompt's own key
    ("Larry Bird plays the sport of", "Larry Bird"),
    ("Kobe Bryant plays the sport of", "Kobe Bryant"),
    ("Babe Ruth plays the sport of", "Babe Ruth"),
    ("Tom Brady plays the sport of", "Tom Brady"),
    ("Michael Phelps plays the sport of", "Michael Phelps"),
    ("Jordan Peterson plays the sport of", "Jordan Peterson"),
    ("The Eiffel Tower is located in", "The Eiffel Tower"),
    ("Paris is the capital of", "Paris"),
]

lm = load_model("gemma-3-270m")
stats = layer_stats(lm.model, lm.tokenizer, list(LAYERS), "self", 100_000, progress=False)
contexts = context_templates(lm.model, lm.tokenizer)


def key(prompt: str, subject: str, layer: int, averaged: bool) -> torch.Tensor:
    ids = answer_ids(lm.tokenizer, prompt, "baseball")
    batch = build_batch(lm.tokenizer, contexts if averaged else ["{}"], prompt, subject, ids)
    return keys_at(lm.model, batch, layer)[: batch.n_rewrite].mean(0).double()


out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
for layer in LAYERS:
    kstar = key(*OTHERS[0], layer, averaged=True)
    C = stats[layer].moment
    out[f"layer {layer}"] = {}
    for name, Cm in (("corpus C", C), ("C = I", torch.eye(C.shape[0], dtype=torch.float64))):
        ci = torch.linalg.solve(Cm, kstar)
        u = ci / (kstar @ ci)
        rows = {}
        for prompt, subject in OTHERS:
            k = key(prompt, subject, layer, averaged=False)
            cos = float(k @ kstar / (k.norm() * kstar.norm()))
            rows[subject] = {"u_dot_k": round(float(u @ k), 3), "cos_k_kstar": round(cos, 3)}
        out[f"layer {layer}"][name] = rows
print(json.dumps(out, indent=1))
