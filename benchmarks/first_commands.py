"""The first commands on a fresh install: `predict`, `know` and `explain-fact` with an
empty cache, each as the installed `factscope` command in its own process.

    python benchmarks/first_commands.py [--model gemma-3-270m] [--out DIR]

FACTSCOPE_CACHE points at a new, empty folder for the whole run (the model itself comes
from its PyPI package, which is not a cache), so the first command pays for parsing and
dequantizing the GGUF file and writing the float32 cache, and the later ones memory-map it,
as they would for a new user typing them in this order. `edit` is timed by first_edit.py.
Writes DIR/result.json (default docs/results/first-commands/), which the README quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(__file__))
import factscope
from machine import machine_report

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Michael Jordan plays the sport of"
SUBJECT = "Michael Jordan"


def commands(out: Path) -> list[tuple[str, list[str]]]:
    """(name, arguments) of each first command, in the order a newcomer meets them."""
    return [
        ("predict", ["predict", PROMPT]),
        ("know", ["know", "--dataset", "athlete_sport", "--out", str(out / "know")]),
        ("explain-fact", ["explain-fact", PROMPT, "--subject", SUBJECT,
                          "--out", str(out / "story.html")]),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "first-commands")
    args = parser.parse_args()
    floors = machine_report("first commands")
    exe = Path(sys.executable).parent / "factscope"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FACTSCOPE_CACHE": str(Path(tmp) / "cache")}
        for name, arguments in commands(Path(tmp)):
            command = [str(exe), *arguments, "--model", args.model]
            load = os.getloadavg()[0]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                print(done.stderr[-2000:])
                raise SystemExit(f"factscope {name} failed with exit code {done.returncode}")
            shown = " ".join(["factscope", *arguments[:2]]) + (" ..." if len(arguments) > 2 else "")
            print(f"{shown}: {wall:.1f} s wall (load average {load:.2f} at its start)")
            rows.append({"command": name, "argv": ["factscope", *arguments[:1]],
                         "seconds": round(wall, 1), "load_at_start": round(load, 2)})  # fmt: skip
    result = {
        "model": args.model,
        "cache": "empty at the first command (FACTSCOPE_CACHE in a new temporary folder)",
        "machine": {
            "cores": floors.cores,
            "torch": torch.__version__,
            "threads": floors.threads,
            "gflops": round(floors.gflops, 1),
            "gbps": round(floors.gbps, 1),
            "load_average": round(floors.load, 2),
        },
        "date": time.strftime("%Y-%m-%d"),
        "factscope_version": factscope.__version__,
        "commands": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'result.json'}")


if __name__ == "__main__":
    main()
