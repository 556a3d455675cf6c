"""Write the statistics corpus of a shipped model into the package (factscope/edit/data/).

Usage: python scripts/write_stats_corpus.py [MODEL] [N_TOKENS]   (gemma-3-270m, 102048)

The text is what `factscope edit` would write on first use (edit/corpus.py: `SEEDS`,
temperature 1, top-p 0.95, seed 0, 256 tokens a document), plus the held-out documents for
the perplexity drift: 100,000 + 2,048 tokens. Generation resumes from the cache if killed.
tests/test_stats_corpus.py checks that sampling again with the seed gives the same text.
"""

from __future__ import annotations

import gzip
import json
import sys
import time

from factscope.edit.corpus import packaged_corpus_path, read_documents, self_corpus
from factscope.edit.fingerprint import model_fingerprint
from factscope.load import load_model
from factscope.weights.cache import cache_root


def main(argv: list[str]) -> int:
    name = argv[0] if argv else "gemma-3-270m"
    n_tokens = int(argv[1]) if len(argv) > 1 else 102_048
    lm = load_model(name)
    start = time.perf_counter()
    corpus = self_corpus(lm, n_tokens)
    key = model_fingerprint(lm.model, lm.cfg.n_layers - 1)
    cached = cache_root() / "edit-corpus" / f"self-{key}-s0.jsonl"
    docs = read_documents(cached)
    assert [d["text"] for d in docs] == list(corpus.documents)
    out = packaged_corpus_path(key)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    out.write_bytes(gzip.compress(lines.encode("utf-8"), mtime=0))
    n = sum(len(lm.tokenizer.encode(d["text"], add_bos=False)) for d in docs)
    print(f"{out}: {len(docs)} documents, {n:,} tokens ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
