"""A 3-fact ROME evaluation on athlete_sport with the docs-text C (16,000 tokens) at layer 8:
what fit in the session (see docs/edit.md). Run from the repository root."""
import json
from pathlib import Path

from factscope.edit import ROMEHyperParams
from factscope.edit.corpus import Corpus
from factscope.edit.evaluate import run_edit_eval
from factscope.edit.stats import layer_stats
from factscope.load import load_model
from factscope.study.datasets import load_dataset

lm = load_model("gemma-3-270m")
files = sorted(p for p in Path("docs").glob("*.md") if p.name != "edit.md") + [Path("README.md")]
docs = tuple(d.strip() for f in files for d in f.read_text().split("\n\n") if d.strip())
stats = layer_stats(lm.model, lm.tokenizer, [8], Corpus("factscope-docs", docs), 16000,
                    min_tokens=0, progress=False)
records = load_dataset("athlete_sport").records[:3]
done, summary = run_edit_eval(lm, records, Path("/tmp/edit/mini_eval"), "rome", 8,
                              hparams=ROMEHyperParams(), stats=stats, fluency_tokens=32,
                              drift_documents=0, progress=False,
                              meta={"model": lm.name, "dataset": "athlete_sport"})
Path("docs/results/edit-worked/mini_eval_summary.json").write_text(json.dumps(summary.to_dict(), indent=1))
print(json.dumps(summary.to_dict(), indent=1))
