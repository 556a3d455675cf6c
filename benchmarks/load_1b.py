"""A 1B-class checkpoint (Llama 3.2 1B's config, random weights): load time, peak memory and
next-token latency, factscope vs transformers on the same folder, with this machine's floors.

    python benchmarks/load_1b.py [--repeats 3] [--dtypes float32,bfloat16] [--out DIR]
                                 [--force] [--keep FOLDER] [--layers N]

(`--layers 1` tries the script in a minute; its result is no 1B number.)

1. A child process builds `LlamaForCausalLM` from Llama 3.2 1B's published config (hidden
   2048, 16 layers, 32 heads, 8 KV heads, MLP 8192, vocabulary 128,256, RoPE base 500,000
   with `llama3` scaling, factor 32, tied embeddings) with transformers' random init in
   bfloat16, and saves it with `save_pretrained` as ~1 GB safetensors shards (2.5 GB, the
   size of the real checkpoint), beside a word-level tokenizer.json of the same vocabulary
   (the real tokenizer cannot be made without a download; the weights' shapes are the
   real ones).
2. One child process per (library, dtype), one at a time, so that no two copies of the
   weights are ever in memory together: factscope's `load_model(folder, dtype=...)` and
   transformers' `from_pretrained(folder, dtype=...)` plus its tokenizer. Each reports its
   load time, its peak resident memory (`ru_maxrss`: every page it touched, the shards'
   memory-mapped pages included), the resident memory after loading split into anonymous
   memory and file pages, and the median next-token latency of a 10-token prompt (ours
   with `logits_at="last"`, transformers with `logits_to_keep=1`).
3. The parent compares the next-token logits of the two libraries at each dtype (top-1
   and the largest difference relative to the largest logit) and prints the ratios:
   transformers / ours for load time and latency, latency against the bytes-read floor
   (the weights' bytes at the memory rate `machine.py` measures: a 10-token forward reads
   every weight once and is memory-bound), and peak memory against the weights' bytes.

The result is written to DIR/result.json (default docs/results/load-1b) unless that file
exists (--force replaces it; `make bench` measures and keeps the committed record). Targets
are ratios (TARGETS). The temporary folder is deleted at the end unless --keep names where
to leave it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_report

ROOT = Path(__file__).resolve().parents[1]
# Every target a ratio: transformers' time / ours (at least as fast as transformers on the
# same folder), and peak resident memory / the weights' bytes in the dtype loaded (about
# one copy: the interpreter and torch add ~0.25 GB, the largest tensor's conversion a little)
TARGETS = {"load_ratio": 1.0, "latency_ratio": 1.0, "peak_over_weights": 1.15}
PROMPT = " ".join(f"w{i}" for i in (791, 6864, 315, 9822, 374, 1855, 11, 902, 374))

# Llama 3.2 1B's config.json as published (meta-llama/Llama-3.2-1B), written out here
LLAMA_3_2_1B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "use_cache": True,
    "vocab_size": 128256,
}


# ---- children -----------------------------------------------------------------------------


def build_folder(folder: Path, layers: int) -> None:
    """Random bfloat16 weights in Llama 3.2 1B's config, saved as safetensors shards, with a
    word-level tokenizer (w0 .. w128255) whose BOS is the config's."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    torch.manual_seed(0)
    config = transformers.LlamaConfig(**{**LLAMA_3_2_1B, "num_hidden_layers": layers})
    torch.set_default_dtype(torch.bfloat16)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norm weights off 1, so a wrong norm convention would show
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.uniform_(0.5, 1.5)
    model.save_pretrained(folder, max_shard_size="1GB")
    vocab = {f"w{i}": i for i in range(config.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    bos = f"w{config.bos_token_id}"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, config.bos_token_id)]
    )
    tok.save(str(folder / "tokenizer.json"))
    tokenizer_config = {
        "bos_token": bos,
        "eos_token": f"w{config.eos_token_id}",
        "add_bos_token": True,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))


def _resident() -> dict[str, float]:
    """This process's resident memory now (GB): anonymous and file-backed pages."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024 / 1e9
    return fields


def measure(library: str, dtype_name: str, folder: Path, logits_out: Path, repeats: int) -> None:
    """Load `folder` with `library`, time next-token forwards; print one JSON line."""
    import torch

    dtype = getattr(torch, dtype_name)
    if library == "transformers":
        import transformers
    else:
        from factscope.load import load_model
    before = _resident()["VmRSS"]
    start = time.perf_counter()
    if library == "factscope":
        lm = load_model(folder, dtype=dtype)
        tokens = lm.encode(PROMPT)

        def forward() -> Any:
            return lm.model(tokens, logits_at="last")[0, -1]

        params = list(lm.model.parameters())
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        tokens = tokenizer(PROMPT, return_tensors="pt").input_ids

        def forward() -> Any:
            return model(tokens, logits_to_keep=1).logits[0, -1]

        params = list(model.parameters())
    load_s = time.perf_counter() - start
    after_load = _resident()
    weight_bytes = sum(p.numel() * p.element_size() for p in {id(p): p for p in params}.values())
    times = []
    with torch.inference_mode():
        logits = forward()  # untimed: first-call setup
        for _ in range(repeats):
            t0 = time.perf_counter()
            forward()
            times.append(time.perf_counter() - t0)
    torch.save({"logits": logits.float(), "tokens": tokens}, logits_out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # kB on Linux
    record = {
        "library": library,
        "dtype": dtype_name,
        "load_s": load_s,
        "latency_s": statistics.median(times),
        "latency_all_s": times,
        "prompt_tokens": int(tokens.shape[1]),
        "weight_bytes": weight_bytes,
        "param_dtypes": sorted({str(p.dtype) for p in params}),
        "rss_before_load_gb": before,
        "rss_after_load_gb": after_load["VmRSS"],
        "anon_after_load_gb": after_load["RssAnon"],
        "file_after_load_gb": after_load["RssFile"],
        "peak_during_load_gb": after_load["VmHWM"],
        "peak_rss_gb": peak,
    }
    print(json.dumps(record))


# ---- the parent ---------------------------------------------------------------------------


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    done = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"child {' '.join(args[:3])} failed:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def compare(ours: Path, theirs: Path) -> dict[str, Any]:
    """Next-token logits of the two libraries: same prompt ids, top-1, largest difference
    relative to the largest |logit| of transformers'."""
    import torch

    a, b = torch.load(ours), torch.load(theirs)
    got, want = a["logits"].double(), b["logits"].double()
    return {
        "same_tokens": bool(torch.equal(a["tokens"], b["tokens"])),
        "top1_equal": int(got.argmax()) == int(want.argmax()),
        "max_rel_error": float((got - want).abs().max() / want.abs().max()),
        "top10_overlap": len(
            set(got.topk(10).indices.tolist()) & set(want.topk(10).indices.tolist())
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "load-1b")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--keep", type=Path, help="leave the 2.5 GB folder here")
    parser.add_argument("--layers", type=int, default=LLAMA_3_2_1B["num_hidden_layers"])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "build":
            build_folder(Path(args.child[1]), args.layers)
        else:
            library, dtype, folder, logits = args.child
            measure(library, dtype, Path(folder), Path(logits), args.repeats)
        return
    result_file = args.out / "result.json"
    write = args.force or not result_file.exists()  # `make bench` measures, keeps the record
    floors = machine_report("load_1b")
    work = Path(tempfile.mkdtemp(prefix="factscope-1b-"))
    folder = args.keep or work / "llama-3.2-1b-random"
    try:
        start = time.perf_counter()
        _child(["--child", "build", str(folder), "--layers", str(args.layers)], timeout=1800)
        size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
        shards = len(list(folder.glob("*.safetensors")))
        print(
            f"built {folder.name}: {shards} shards, {size / 1e9:.2f} GB of bfloat16 "
            f"safetensors in {time.perf_counter() - start:.0f} s"
        )
        runs: list[dict[str, Any]] = []
        agreement: dict[str, Any] = {}
        for dtype in args.dtypes.split(","):
            for library in ("factscope", "transformers"):
                logits = work / f"{library}-{dtype}.pt"
                child = ["--child", library, dtype, str(folder), str(logits)]
                run = _child([*child, "--repeats", str(args.repeats)], timeout=1800)
                run["load_average"] = os.getloadavg()[0]
                runs.append(run)
                print(
                    f"{library:<12} {dtype:<8} load {run['load_s']:6.1f} s   next token "
                    f"{run['latency_s'] * 1000:7.0f} ms   peak RSS {run['peak_rss_gb']:5.2f} GB "
                    f"({run['peak_rss_gb'] / (run['weight_bytes'] / 1e9):.2f}x the "
                    f"{run['weight_bytes'] / 1e9:.2f} GB of weights; after loading "
                    f"{run['anon_after_load_gb']:.2f} GB anonymous + "
                    f"{run['file_after_load_gb']:.2f} GB file pages)   "
                    f"load average {run['load_average']:.2f}"
                )
            agreement[dtype] = compare(
                work / f"factscope-{dtype}.pt", work / f"transformers-{dtype}.pt"
            )
            a = agreement[dtype]
            print(
                f"  next-token logits at {dtype}: top-1 "
                f"{'equal' if a['top1_equal'] else 'DIFFERENT'}, "
                f"top-10 overlap {a['top10_overlap']}/10, max |diff| / max |logit| "
                f"{a['max_rel_error']:.1e}"
            )
        summary = summarise(runs, floors.gbps)
        for dtype, s in summary.items():
            print(
                f"{dtype}: transformers / ours: load {s['load_ratio']:.2f}x (target >= "
                f"{TARGETS['load_ratio']}x), next token {s['latency_ratio']:.2f}x (target >= "
                f"{TARGETS['latency_ratio']}x); ours = {s['latency_vs_floor']:.2f}x the floor "
                f"({s['weight_gb']:.2f} GB at {floors.gbps:.1f} GB/s = "
                f"{s['floor_s'] * 1000:.0f} ms); peak RSS / weights: ours "
                f"{s['peak_over_weights']:.2f}x (target <= {TARGETS['peak_over_weights']}x, "
                f"one copy), transformers' {s['hf_peak_over_weights']:.2f}x"
            )
        if floors.busy:
            print("(the machine was busy: rerun on an idle one before reading the ratios)")
        if not write:
            print(f"{result_file} exists and is kept (--force replaces it)")
            return
        args.out.mkdir(parents=True, exist_ok=True)
        record = {
            "command": "python benchmarks/load_1b.py " + " ".join(sys.argv[1:]),
            "config": {**LLAMA_3_2_1B, "num_hidden_layers": args.layers},
            "shards": shards,
            "checkpoint_gb": size / 1e9,
            "machine": {
                "cores": floors.cores,
                "threads": floors.threads,
                "gflops": floors.gflops,
                "gbps": floors.gbps,
                "load_average": floors.load,
            },
            "runs": runs,
            "agreement": agreement,
            "summary": summary,
            "targets": TARGETS,
        }
        result_file.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {result_file}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summarise(runs: list[dict[str, Any]], gbps: float) -> dict[str, dict[str, float]]:
    """Per dtype: the ratios the script prints."""
    out = {}
    for dtype in dict.fromkeys(r["dtype"] for r in runs):
        ours = next(r for r in runs if r["dtype"] == dtype and r["library"] == "factscope")
        hf = next(r for r in runs if r["dtype"] == dtype and r["library"] == "transformers")
        weight_gb = ours["weight_bytes"] / 1e9
        floor = weight_gb / gbps
        out[dtype] = {
            "weight_gb": weight_gb,
            "floor_s": floor,
            "load_ratio": hf["load_s"] / ours["load_s"],
            "latency_ratio": hf["latency_s"] / ours["latency_s"],
            "latency_vs_floor": ours["latency_s"] / floor,
            "hf_latency_vs_floor": hf["latency_s"] / floor,
            "peak_over_weights": ours["peak_rss_gb"] / weight_gb,
            "hf_peak_over_weights": hf["peak_rss_gb"] / (hf["weight_bytes"] / 1e9),
        }
    return out


if __name__ == "__main__":
    main()
