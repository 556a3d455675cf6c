"""Does a smaller ‖δ‖ keep the edit on Michael Jordan? ROME at layer 6 of gemma-3-270m with the
self-corpus C, the clamp ‖δ‖ ≤ f·‖W k*‖ at the authors' f = 4 and at 1 and 0.5, scored on the
prompt, a paraphrase and five other athletes. Run from the repository root:

    python docs/results/edit-worked/clamp.py > docs/results/edit-worked/clamp.json
"""

import json

from factscope.edit import EditRequest, ROMEHyperParams, edit
from factscope.edit.measure import answer_probabilities
from factscope.load import load_model

PROMPTS = [
    "Michael Jordan plays the sport of",
    "Michael Jordan is a professional athlete who plays",
    "Larry Bird plays the sport of",
    "Kobe Bryant plays the sport of",
    "Shaquille O'Neal plays the sport of",
    "Babe Ruth plays the sport of",
    "Tom Brady plays the sport of",
]
lm = load_model("gemma-3-270m")
request = EditRequest(PROMPTS[0], "Michael Jordan", "baseball", "basketball")
out = {"prompts": PROMPTS, "before": answer_probabilities(lm, PROMPTS, ["baseball", "basketball"])}
for factor in (4.0, 1.0, 0.5):
    handle = edit(lm, request, "rome", 6, hparams=ROMEHyperParams(clamp_norm_factor=factor))
    after = answer_probabilities(lm, PROMPTS, ["baseball", "basketball"])
    last = handle.results[0].optimisation.losses[-1]
    handle.undo()
    out[f"clamp {factor:g}"] = {"after": after, "final": last}
print(json.dumps(out, indent=1))
