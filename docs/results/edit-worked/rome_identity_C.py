import sys
import time

import torch

from factscope.edit import EditRequest, ROMEHyperParams, default_layer, edit
from factscope.edit.request import answer_ids
from factscope.load import load_model

name = sys.argv[1] if len(sys.argv) > 1 else "gemma-3-270m"
lm = load_model(name)
req = EditRequest("Michael Jordan plays the sport of", "Michael Jordan", "baseball", "basketball")
t = time.time()
L = default_layer(lm, req, "approx")
print("default layer (approx)", L, time.time() - t, flush=True)


def probs(prompt):
    ids = lm.encode(prompt)
    with torch.no_grad():
        p = torch.softmax(lm.model(ids, logits_at="last")[0, -1].float(), -1)
    top = p.topk(3)
    return {
        a: float(p[answer_ids(lm.tokenizer, prompt, a)[0]]) for a in ("baseball", "basketball")
    }, [lm.tokenizer.token_str(i) for i in top.indices.tolist()]


for pr in [req.prompt, "Michael Jordan is a professional", "Larry Bird plays the sport of"]:
    print("before", pr, probs(pr))
t = time.time()
h = edit(lm, req, "rome", layer=L, hparams=ROMEHyperParams(mom2_adjustment=False))
print("edit time", time.time() - t)
r = h.results[0]
for l in r.optimisation.losses:
    print({k: round(v, 4) for k, v in l.items()})
for pr in [req.prompt, "Michael Jordan is a professional", "Larry Bird plays the sport of"]:
    print("after", pr, probs(pr))
