"""factscope next to the libraries a user would pick instead, job by job, on gemma-3-270m.

    python benchmarks/peers.py [--jobs load,forward,cache,patch,trace,lens] [--full]

The peers, each called the way a knowledgeable user calls it, offline, from a local Hugging
Face folder written from the same weights (benchmarks/hf_export.py):

- transformers: `AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)`, called
  with `logits_to_keep=1` wherever only the next token is needed;
- TransformerLens (4.x): `TransformerBridge.boot_transformers(folder)`, its
  `run_with_cache` and `patching.get_act_patch_*` functions;
- nnsight: `TransformersModel(folder, task="text-generation", dispatch=True)` (`LanguageModel`
  on versions before 0.8), interventions written inside `model.trace(...)` as its docs show.

Each job runs in its own process (a fresh interpreter, nothing warmed by another job) and
prints one line per peer: the peer's time, ours, the ratio (peer / ours, > 1 means we are
faster), the agreement of the numbers both compute (max abs difference) and the floor of
the job on this machine (its FLOPs at the measured matmul rate or its weight bytes at the
measured read rate, whichever is larger). Jobs whose peer takes minutes are timed on a
seeded subset of cells and extrapolated per cell; the line says so (`--full`: every cell).
A missing peer is reported ("nnsight not installed: skipped") and the script exits 0.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from machine import Floors, busy_report, interleaved_medians, machine_report

MODEL = "gemma-3-270m"
PROMPT = "Michael Jordan plays the sport of"
SUBJECT = "Michael Jordan"
ANSWER = " basketball"
CORRUPT_PROMPT = "Tom Brady plays the sport of"
CORRUPT_ANSWER = " football"
JOBS = ("load", "forward", "cache", "patch", "trace", "lens")
PEERS = {
    "transformers": "transformers",
    "transformer-lens": "transformer_lens",
    "nnsight": "nnsight",
}


@dataclass
class Row:
    """One line of the comparison."""

    job: str
    peer: str  # "transformers 5.23.0"
    how: str  # how the peer was called
    peer_s: float | None  # None: skipped
    ours_s: float | None
    ours_how: str = ""
    agreement: float | None = None  # max abs difference of what both compute
    agreement_of: str = ""
    floor_s: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.peer_s is None or not self.ours_s:
            return None
        return self.peer_s / self.ours_s

    def line(self) -> str:
        if self.peer_s is None:
            return f"{self.job:<8} {self.peer:<24} {self.note}"
        agree = f"{self.agreement:.1e}" if self.agreement is not None else "-"
        floor = f"{self.floor_s:8.3f}s" if self.floor_s is not None else "       -"
        return (
            f"{self.job:<8} {self.peer:<24} peer {self.peer_s:8.3f}s  ours {self.ours_s:8.3f}s  "
            f"{self.ratio:6.2f}x  agree {agree:>7} ({self.agreement_of})  floor {floor}"
            + (f"  [{self.note}]" if self.note else "")
        )


def peer_version(dist: str) -> str | None:
    """The installed version of a peer, or None when it is not installed."""
    if importlib.util.find_spec(PEERS[dist]) is None:
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def skipped(job: str, dist: str) -> Row:
    return Row(job, dist, "", None, None, note=f"{dist} not installed: skipped")


# ---- the floors -------------------------------------------------------------------------


def layer_params(cfg: Any) -> int:
    """Weights of one block's matrix products."""
    attn = cfg.d_model * cfg.d_head * (2 * cfg.n_heads + 2 * cfg.n_kv_heads)
    mlp = cfg.d_model * cfg.d_mlp * (3 if cfg.gated_mlp else 2)
    return attn + mlp


def forward_work(cfg: Any, tokens: int, unembedded: int) -> tuple[float, float]:
    """(GFLOP, GB of float32 weights read) of one forward: the body's matrix products for
    every token and the unembedding of `unembedded` positions."""
    body = cfg.n_layers * layer_params(cfg)
    unembed = cfg.vocab_size * cfg.d_model
    return (2 * tokens * body + 2 * unembedded * unembed) / 1e9, 4 * (body + unembed) / 1e9


# ---- the peers, loaded ------------------------------------------------------------------


def load_transformers(folder: Path) -> Any:
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=torch.float32
    ).eval()


def load_transformer_lens(folder: Path) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(str(folder), device="cpu", dtype=torch.float32)


def load_nnsight(folder: Path) -> Any:
    import nnsight

    if hasattr(nnsight, "TransformersModel"):
        return nnsight.TransformersModel(
            str(folder), task="text-generation", dispatch=True, dtype=torch.float32
        )
    return nnsight.LanguageModel(str(folder), dispatch=True, torch_dtype=torch.float32)


def paired_medians(
    ours: Callable[[], object], peer: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median times of `ours` and `peer`, called in alternation (after one untimed call of
    each), so that a change in the machine's load weighs on both alike."""
    a, b = interleaved_medians([ours, peer], repeats)
    return a, b


def timed_once(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


# ---- the jobs -----------------------------------------------------------------------------


@dataclass
class Context:
    folder: Path
    floors: Floors
    full: bool
    repeats: int


def job_load(ctx: Context) -> list[Row]:
    """Load from local files on a warm disk (ours: the cache our first load wrote)."""
    from factscope.load import load_model

    lm, ours = timed_once(lambda: load_model(MODEL))
    _, floor_gb = forward_work(lm.cfg, 1, 1)
    floor = ctx.floors.seconds(gbytes=floor_gb)
    rows = []
    calls = {
        "transformers": (load_transformers, "AutoModelForCausalLM.from_pretrained(folder)"),
        "transformer-lens": (load_transformer_lens, "TransformerBridge.boot_transformers(folder)"),
        "nnsight": (load_nnsight, "TransformersModel(folder, dispatch=True)"),
    }
    for dist, (load, how) in calls.items():
        version = peer_version(dist)
        if version is None:
            rows.append(skipped("load", dist))
            continue
        __import__(PEERS[dist])  # import time is not load time
        _, seconds = timed_once(lambda load=load: load(ctx.folder))
        rows.append(
            Row("load", f"{dist} {version}", how, seconds, ours, "load_model(name), warm cache",
                floor_s=floor, note="one load each")
        )  # fmt: skip
    return rows


def job_forward(ctx: Context) -> list[Row]:
    """Next-token forward of the 7-token prompt: the distribution of the next token."""
    from factscope.load import load_model

    lm = load_model(MODEL)
    tokens = lm.encode(PROMPT)
    T = tokens.shape[1]
    floor = ctx.floors.seconds(*forward_work(lm.cfg, T, 1))
    with torch.inference_mode():
        ours_logprobs = lm.model(tokens, logits_at="last")[0, -1].log_softmax(-1)
    rows = []

    def row(dist: str, version: str, how: str, run: Callable[[], torch.Tensor]) -> Row:
        with torch.inference_mode():
            logprobs = run()[0, -1].log_softmax(-1)
            ours, seconds = paired_medians(
                lambda: lm.model(tokens, logits_at="last"), run, ctx.repeats
            )
        diff = float((logprobs - ours_logprobs).abs().max())
        return Row("forward", f"{dist} {version}", how, seconds, ours,
                   'model(ids, logits_at="last")', diff, "next-token log-probs", floor)  # fmt: skip

    if (version := peer_version("transformers")) is None:
        rows.append(skipped("forward", "transformers"))
    else:
        hf = load_transformers(ctx.folder)
        how = "model(ids, logits_to_keep=1)"
        rows.append(row("transformers", version, how, lambda: hf(tokens, logits_to_keep=1).logits))
        del hf
    if (version := peer_version("transformer-lens")) is None:
        rows.append(skipped("forward", "transformer-lens"))
    else:
        bridge = load_transformer_lens(ctx.folder)
        rows.append(row("transformer-lens", version, "bridge(ids)", lambda: bridge(tokens)))
        del bridge
    if (version := peer_version("nnsight")) is None:
        rows.append(skipped("forward", "nnsight"))
    else:
        nn_model = load_nnsight(ctx.folder)

        def nnsight_forward() -> torch.Tensor:
            with nn_model.trace(tokens, logits_to_keep=1):
                logits = nn_model.output.logits.save()
            return logits

        how = "trace(ids, logits_to_keep=1), output.logits.save()"
        rows.append(row("nnsight", version, how, nnsight_forward))
    return rows


def job_cache(ctx: Context) -> list[Row]:
    """Run once and keep every activation."""
    from factscope.hooks import run_with_cache
    from factscope.load import load_model

    lm = load_model(MODEL)
    tokens = lm.encode(PROMPT)
    T, L = tokens.shape[1], lm.cfg.n_layers
    floor = ctx.floors.seconds(*forward_work(lm.cfg, T, T))
    if (version := peer_version("transformer-lens")) is None:
        return [skipped("cache", "transformer-lens")]
    bridge = load_transformer_lens(ctx.folder)
    with torch.no_grad():
        ours, ours_last, peer = interleaved_medians(
            [
                lambda: run_with_cache(lm.model, tokens),
                lambda: run_with_cache(lm.model, tokens, logits_at="last"),
                lambda: bridge.run_with_cache(tokens),
            ],
            ctx.repeats,
        )
        peer_logits, peer_cache = bridge.run_with_cache(tokens)
    ours_logits, cache = run_with_cache(lm.model, tokens)
    pairs = [(peer_logits, ours_logits)] + [
        (peer_cache[f"blocks.{i}.hook_{site}"], cache[f"blocks.{i}.{site}"])
        for i in range(L)
        for site in ("resid_pre", "resid_post")
    ]
    diff = max(float((p - o).abs().max()) for p, o in pairs)
    scale = max(float(o.abs().max()) for _, o in pairs)  # the residual stream grows large
    return [
        Row("cache", f"transformer-lens {version}",
            f"run_with_cache(ids) ({len(peer_cache)} hooks)",
            peer, ours, f"run_with_cache(model, ids) ({len(cache)} sites, all-position logits)",
            diff, f"logits, resid_pre/post of every block; largest value {scale:.0f}", floor,
            note=f"ours with logits_at='last': {ours_last:.3f}s ({peer / ours_last:.2f}x)"),
    ]  # fmt: skip


def job_patch(ctx: Context) -> list[Row]:
    """Activation patching, clean 'Michael Jordan' into corrupt 'Tom Brady': residual,
    attention output, MLP output (layer x position) and heads (layer x head, all positions);
    metric logit(' basketball') - logit(' football') at the last position."""
    from factscope.load import load_model
    from factscope.locate.patch import patch_activations
    from factscope.locate.prompts import answer_token

    if (version := peer_version("transformer-lens")) is None:
        return [skipped("patch", "transformer-lens")]
    lm = load_model(MODEL)
    cfg = lm.cfg
    clean, corrupt = lm.encode(PROMPT), lm.encode(CORRUPT_PROMPT)
    a = answer_token(lm.tokenizer, ANSWER).id
    b = answer_token(lm.tokenizer, CORRUPT_ANSWER).id
    T, L, H = clean.shape[1], cfg.n_layers, cfg.n_heads
    kinds = {  # ours -> (TransformerLens function, its index columns, cells per layer)
        "resid": ("get_act_patch_resid_pre", ("layer", "pos"), T),
        "attn": ("get_act_patch_attn_out", ("layer", "pos"), T),
        "mlp": ("get_act_patch_mlp_out", ("layer", "pos"), T),
        "heads": ("get_act_patch_attn_head_out_all_pos", ("layer", "head"), H),
    }
    ours_grid: dict[str, Tensor] = {}
    ours_s: dict[str, float] = {}
    for kind in kinds:
        result, ours_s[kind] = timed_once(
            lambda kind=kind: patch_activations(lm.model, clean, corrupt, (a, b), (kind,))
        )
        ours_grid[kind] = torch.tensor(result.logit_diffs[kind])
    import pandas as pd
    from transformer_lens import patching

    bridge = load_transformer_lens(ctx.folder)
    layers = list(range(L)) if ctx.full else [0, L // 2, L - 1]

    def metric(logits: Tensor) -> Tensor:
        return logits[0, -1, a] - logits[0, -1, b]

    with torch.no_grad():
        _, clean_cache = bridge.run_with_cache(clean)
    rows = []
    for kind, (fn_name, columns, per_layer) in kinds.items():
        cells = [(layer, j) for layer in layers for j in range(per_layer)]
        index = pd.DataFrame(cells, columns=list(columns))
        fn = getattr(patching, fn_name)
        with torch.no_grad():
            values, seconds = timed_once(
                lambda fn=fn, index=index: fn(
                    bridge, corrupt, clean_cache, metric, index_axis_names=None, index_df=index
                )
            )
        ours_cells = torch.stack([ours_grid[kind][layer, j] for layer, j in cells])
        diff = float((values.double() - ours_cells.double()).abs().max())
        n_all = L * per_layer
        note = (
            ""
            if ctx.full
            else f"peer timed on {len(cells)} of {n_all} cells (layers {layers}), extrapolated"
        )
        floor = ctx.floors.seconds(*patch_work(cfg, T, per_layer))
        rows.append(
            Row(f"patch {kind}", f"transformer-lens {version}", f"patching.{fn_name}",
                seconds * n_all / len(cells), ours_s[kind], f"patch_activations(kinds=('{kind}',))",
                diff, "patched logit diffs", floor, note)
        )  # fmt: skip
    return rows


def patch_work(cfg: Any, tokens: int, cells_per_layer: int, batch: int = 64) -> tuple[float, float]:
    """Our patching's matrix products: for each layer l, every cell reruns blocks l.. on
    all tokens; weights are read once per batch of cells."""
    flops, bytes_ = 0.0, 0.0
    per_layer = layer_params(cfg)
    for layer in range(cfg.n_layers):
        rest = cfg.n_layers - layer
        flops += 2 * cells_per_layer * tokens * rest * per_layer
        bytes_ += math.ceil(cells_per_layer / batch) * rest * per_layer * 4
    return flops / 1e9, bytes_ / 1e9


def job_trace(ctx: Context) -> list[Row]:
    """Causal tracing (ROME), kind "hidden": 10 noisy copies of the prompt (subject embeddings
    + Gaussian noise), the clean residual after block l restored at token t, p(' basketball')
    averaged over the copies, for every (layer, token) cell."""
    from factscope.load import load_model
    from factscope.locate.corruption import clean_run, estimate_noise_std, subject_noise
    from factscope.locate.prompts import answer_token
    from factscope.locate.trace import trace_fact

    if (version := peer_version("nnsight")) is None:
        return [skipped("trace", "nnsight")]
    lm = load_model(MODEL)
    cfg = lm.cfg
    tokens = lm.encode(PROMPT)
    span = lm.tokenizer.find_subject_span(PROMPT, SUBJECT)
    answer = answer_token(lm.tokenizer, ANSWER).id
    samples, T, L = 10, tokens.shape[1], cfg.n_layers
    noise_std = estimate_noise_std(lm.model, lm.tokenizer)
    results, ours = timed_once(
        lambda: trace_fact(
            lm.model, tokens, span, answer, kinds=("hidden",), samples=samples, noise_std=noise_std
        )
    )
    scores = torch.tensor(results["hidden"].scores)  # (T, L)
    floor = ctx.floors.seconds(*trace_work(cfg, T, span[0], samples))
    import nnsight

    nn_model = load_nnsight(ctx.folder)
    noise = subject_noise(samples, span[1] - span[0], cfg.d_model, noise_std, seed=0)
    noisy = tokens.expand(samples, -1)
    clean_states = [h for h in clean_run(lm.model, tokens, answer).resid_post]  # (1, T, D) each
    start, stop = span
    layers = list(range(L)) if ctx.full else [0, L // 2, L - 1]

    def nnsight_layer(layer: int) -> Tensor:
        """One trace per layer, one invoke (a batch of the noisy copies) per token."""
        with nn_model.trace(logits_to_keep=1) as tracer:
            probs = nnsight.save([])
            for t in range(T):
                with tracer.invoke(noisy):
                    nn_model.model.embed_tokens.output[:, start:stop] += noise
                    nn_model.model.layers[layer].output[:, t] = clean_states[layer][0, t]
                    probs.append(nn_model.output.logits[:, -1].softmax(-1)[:, answer].mean())
        return torch.stack(list(probs))  # (T,)

    peer_scores, seconds = {}, 0.0
    with torch.no_grad():
        for layer in layers:
            peer_scores[layer], s = timed_once(lambda layer=layer: nnsight_layer(layer))
            seconds += s
    diff = max(
        float((peer_scores[layer].double() - scores[:, layer]).abs().max()) for layer in layers
    )
    note = "" if ctx.full else f"peer timed on layers {layers} of {L}, extrapolated"
    how = "one trace per layer, an invoke of 10 noisy rows per token, logits_to_keep=1"
    return [
        Row("trace", f"nnsight {version}", how, seconds * L / len(layers), ours,
            "trace_fact(kinds=('hidden',), samples=10)", diff, "p(answer) per cell", floor, note)
    ]  # fmt: skip


def trace_work(cfg: Any, tokens: int, first: int, samples: int) -> tuple[float, float]:
    """Our tracer's FLOPs: per cell (t, l), `samples` rows rerun tokens t.. through blocks
    l.. and unembed the last position; weights read once per batch (~25 cells)."""
    per_layer, unembed = layer_params(cfg), cfg.vocab_size * cfg.d_model
    flops, batches = 0.0, 0
    for t in range(first, tokens):
        for layer in range(cfg.n_layers):
            flops += 2 * samples * ((tokens - t) * (cfg.n_layers - layer) * per_layer + unembed)
        batches += math.ceil(cfg.n_layers * samples / 256)
    weights = 4 * (cfg.n_layers * per_layer + unembed)
    return flops / 1e9, batches * weights / 1e9


def job_lens(ctx: Context) -> list[Row]:
    """The logit lens: every block's output through the final norm and unembedding, at every
    position; the top-1 token and its probability per (layer, position)."""
    from factscope.load import load_model
    from factscope.locate.lens import logit_lens

    if (version := peer_version("nnsight")) is None:
        return [skipped("lens", "nnsight")]
    lm = load_model(MODEL)
    tokens = lm.encode(PROMPT)
    T, L = tokens.shape[1], lm.cfg.n_layers
    run = lambda: logit_lens(lm.model, tokens, all_positions=True)  # noqa: E731
    result = run()
    ours_top = torch.tensor(result.top1_probs)[1:]  # rows 1..L: the output of block 0..L-1
    gflop, gbytes = forward_work(lm.cfg, T, T * (L + 2))  # the forward + L + 1 unembeddings
    floor = ctx.floors.seconds(gflop, gbytes)
    import nnsight

    nn_model = load_nnsight(ctx.folder)

    def nnsight_lens() -> Tensor:
        with nn_model.trace(tokens):
            tops = nnsight.save([])
            for layer in nn_model.model.layers:
                logits = nn_model.lm_head(nn_model.model.norm(layer.output))
                tops.append(logits.softmax(-1).max(-1).values)
        return torch.cat(list(tops))  # (L, T)

    with torch.no_grad():
        peer_top = nnsight_lens()
        ours, seconds = paired_medians(run, nnsight_lens, ctx.repeats)
    diff = float((peer_top - ours_top).abs().max())
    how = "trace: lm_head(model.norm(layer.output)).softmax(-1) per layer"
    return [
        Row("lens", f"nnsight {version}", how, seconds, ours,
            "logit_lens(all_positions=True)", diff, "top-1 prob per layer x position", floor)
    ]  # fmt: skip


JOB_FUNCTIONS: dict[str, Callable[[Context], list[Row]]] = {
    "load": job_load,
    "forward": job_forward,
    "cache": job_cache,
    "patch": job_patch,
    "trace": job_trace,
    "lens": job_lens,
}


# ---- the driver -------------------------------------------------------------------------


def run_child(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    floors = Floors(**json.loads(args.floors))
    busy_report(f"job {args.child}")
    ctx = Context(Path(args.folder), floors, args.full, args.repeats)
    rows = JOB_FUNCTIONS[args.child](ctx)
    with open(args.rows, "a", encoding="utf-8") as f:
        for row in rows:
            print(row.line(), flush=True)
            f.write(json.dumps(asdict(row)) + "\n")


def hf_folder(lm: Any, cache_dir: Path) -> Path:
    """The Hugging Face folder of `lm`, written once per model file (kept between runs)."""
    from hf_export import export_hf_folder

    stat = Path(lm.source).stat()
    folder = cache_dir / f"{lm.name}-{stat.st_size}-{int(stat.st_mtime)}"
    if not (folder / "model.safetensors").is_file():
        start = time.perf_counter()
        export_hf_folder(lm, folder.with_suffix(".partial"))
        folder.with_suffix(".partial").rename(folder)
        print(f"wrote the Hugging Face folder {folder} in {time.perf_counter() - start:.1f} s")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default=",".join(JOBS), help="comma-separated: " + ",".join(JOBS))
    parser.add_argument("--full", action="store_true", help="time the peers on every cell")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per median")
    parser.add_argument("--folder-cache", default=None, help="where to keep the HF folder")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (default: torch's choice); "
        "1 keeps a busy machine from slowing every library by ~10x"
    )  # fmt: skip
    parser.add_argument("--child", choices=JOBS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--floors", help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    jobs = [j for j in args.jobs.split(",") if j]
    unknown = sorted(set(jobs) - set(JOBS))
    if unknown:
        parser.error(f"unknown jobs {unknown}; choose from {', '.join(JOBS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    floors = machine_report("peers")
    for dist in PEERS:
        version = peer_version(dist)
        print(f"peer {dist}: {version or 'not installed: its lines are skipped'}")
    if peer_version("transformers") is None:
        print("transformers not installed: no peer can load the folder; nothing to compare")
        return
    from factscope.load import load_model, wait_for_cache_writes

    lm = load_model(MODEL)
    wait_for_cache_writes()
    default_cache = Path(tempfile.gettempdir()) / "factscope-bench-peers"
    folder = hf_folder(lm, Path(args.folder_cache) if args.folder_cache else default_cache)
    del lm
    rows_path = Path(tempfile.mkstemp(prefix="peers-", suffix=".jsonl")[1])
    failed = []
    for job in jobs:
        print(f"\n== {job}: {JOB_FUNCTIONS[job].__doc__.splitlines()[0]}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--child", job, "--folder", str(folder),
             "--floors", json.dumps(asdict(floors)), "--rows", str(rows_path),
             "--repeats", str(args.repeats), "--threads", str(args.threads),
             *(["--full"] if args.full else [])],
            check=False,
        )  # fmt: skip
        print(f"   ({job}: {time.perf_counter() - start:.0f} s in all)")
        if done.returncode != 0:
            failed.append(job)
    rows = [Row(**json.loads(line)) for line in rows_path.read_text().splitlines()]
    rows_path.unlink()
    print_table(rows, floors)
    if failed:  # a missing peer is not a failure; an error in a job is
        sys.exit(f"\nthese jobs failed (see above): {', '.join(failed)}")


def print_table(rows: list[Row], floors: Floors) -> None:
    """The summary, as a Markdown table (docs/benchmarks.md takes it)."""
    print(
        f"\n{time.strftime('%Y-%m-%d')}, {floors.cores} cores, torch {torch.__version__} "
        f"({floors.threads} threads), float32 matmul {floors.gflops:.0f} GFLOP/s, "
        f"memory read {floors.gbps:.1f} GB/s, load average {floors.load:.2f}\n"
    )
    print("| job | peer, how it was called | peer | factscope | ratio | max abs diff | floor |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if r.peer_s is None:
            print(f"| {r.job} | {r.peer} | {r.note} | | | | |")
            continue
        note = f" ({r.note})" if r.note else ""
        agree = f"{r.agreement:.1e} ({r.agreement_of})" if r.agreement is not None else "-"
        floor = f"{r.floor_s:.3f} s" if r.floor_s is not None else "-"
        print(
            f"| {r.job} | {r.peer}: `{r.how}`{note} | {r.peer_s:.3f} s | {r.ours_s:.3f} s | "
            f"{r.ratio:.2f}x | {agree} | {floor} |"
        )


if __name__ == "__main__":
    main()
