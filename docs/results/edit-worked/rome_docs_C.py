import json, time, torch
from pathlib import Path
from factscope.load import load_model
from factscope.edit import edit, EditRequest, ROMEHyperParams
from factscope.edit.corpus import Corpus
from factscope.edit.evaluate import answer_probabilities
from factscope.edit.stats import layer_stats, effective_rank
lm = load_model("gemma-3-270m")
files = sorted(p for p in Path("docs").glob("*.md") if p.name != "edit.md") + [Path("README.md")]
docs = tuple(d.strip() for f in files for d in f.read_text().split("\n\n") if d.strip())
corpus = Corpus("factscope-docs", docs)
L = 8
t = time.time()
stats = layer_stats(lm.model, lm.tokenizer, [L], corpus, 16000, min_tokens=0, progress=False)
print("stats", time.time() - t, stats[L].to_dict(), "effective rank", effective_rank(stats[L]), flush=True)
req = EditRequest("Michael Jordan plays the sport of", "Michael Jordan", "baseball", "basketball")
probes = [req.prompt, "Michael Jordan is a professional", "The train was ten minutes late. Michael Jordan plays the sport of", "Larry Bird plays the sport of", "Kobe Bryant plays the sport of", "Babe Ruth plays the sport of"]
before = answer_probabilities(lm, probes, ["baseball", "basketball"])
t = time.time()
h = edit(lm, req, "rome", layer=L, hparams=ROMEHyperParams(), stats=stats)
print("edit", time.time() - t, flush=True)
after = answer_probabilities(lm, probes, ["baseball", "basketball"])
out = {"layer": L, "corpus": "factscope docs/*.md + README.md, 16,000 tokens", "stats": stats[L].to_dict(),
       "probes": [{"prompt": p, "before": b, "after": a} for p, b, a in zip(probes, before, after)],
       "edit": h.to_dict()}
Path("docs/results/edit-worked/rome_docs_c.json").write_text(json.dumps(out, indent=1))
for p, b, a in zip(probes, before, after): print(p, [round(x, 4) for x in b], "->", [round(x, 4) for x in a])
