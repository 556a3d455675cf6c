"""The web app under load: 200 concurrent predictions, batched vs one forward each.

    python benchmarks/serve.py [--model gemma-3-270m] [--requests 200] [--threads N]

Two servers over the same loaded model, run in this process on loopback (uvicorn in a
thread): `create_app(lm)` (micro-batching: predictions that arrive together share one
forward, up to 32 per batch) and `create_app(lm, batching=False)` (one forward per request,
the baseline). Each gets the same 200 distinct prompts (5 templates x 5 subjects x 8 amounts
of trailing space, so the prediction cache never answers) at once from an async client; we
print the total wall time of the 200, requests per second, the forwards each server ran,
the ratio, and that both servers gave the same top tokens. The floor: the FLOPs of the 200
prompts' forward passes (2 x non-embedding parameters x tokens, plus the 262k-row
unembedding of each prompt's last token) at this machine's matrix-product rate.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine_report

SUBJECTS = ["Michael Jordan", "Serena Williams", "Lionel Messi", "Tom Brady", "Marie Curie"]
TEMPLATES = ["{} plays the sport of", "{} was born in", "{} is a", "The job of {} is", "{}"]


def prompts(n: int) -> list[str]:
    base = [t.format(s) for t in TEMPLATES for s in SUBJECTS]
    return [base[i % len(base)] + " " * (i // len(base)) for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(app: Any) -> tuple[Any, str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


async def fire(url: str, texts: list[str]) -> tuple[float, list[dict[str, Any]]]:
    import httpx

    limits = httpx.Limits(max_connections=len(texts) + 10, max_keepalive_connections=len(texts))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await client.post("/api/predict", json={"prompt": "warm up", "top_k": 5})
        start = time.perf_counter()
        answers = await asyncio.gather(
            *(client.post("/api/predict", json={"prompt": p, "top_k": 5}) for p in texts)
        )
        elapsed = time.perf_counter() - start
    bad = [a for a in answers if a.status_code != 200]
    if bad:
        raise SystemExit(f"{len(bad)} requests failed, e.g. {bad[0].status_code} {bad[0].text}")
    return elapsed, [a.json()["prediction"] for a in answers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    floors = machine_report("serve: 200 concurrent predictions, batched vs one by one")

    import httpx

    from factscope.load import load_model
    from factscope.web.app import create_app

    lm = load_model(args.model)
    texts = prompts(args.requests)
    cfg = lm.cfg
    n_tokens = sum(len(lm.tokenizer.encode(t)) for t in texts)
    body = sum(p.numel() for n, p in lm.model.named_parameters() if "embedding" not in n)
    gflop = (2 * body * n_tokens + 2 * cfg.d_model * cfg.vocab_size * len(texts)) / 1e9
    print(f"model {lm.name}; {len(texts)} prompts, {n_tokens} tokens in all; {gflop:.1f} GFLOP")

    results = {}
    for name, batching in (("batched", True), ("one by one", False)):
        server, url = start(create_app(lm, batching=batching, max_waiting=args.requests + 10))
        elapsed, predictions = asyncio.run(fire(url, texts))
        stats = httpx.get(url + "/api/stats").json()
        server.should_exit = True
        results[name] = (elapsed, predictions, stats)
        print(
            f"{name:>11}: {elapsed:7.2f} s for {len(texts)} requests "
            f"({len(texts) / elapsed:6.1f} req/s), {stats['forwards'] - 1} forwards, "
            f"largest batch {stats['largest_batch']}"
        )
    batched, single = results["batched"][0], results["one by one"][0]
    same = all(
        [c["id"] for c in a["top"]] == [c["id"] for c in b["top"]]
        for a, b in zip(results["batched"][1], results["one by one"][1], strict=True)
    )
    floor = floors.seconds(gflop=gflop)
    print(f"speed-up of batching: {single / batched:.2f}x (one by one / batched)")
    print(f"floor (FLOPs at {floors.gflops:.0f} GFLOP/s): {floor:.2f} s; batched is "
          f"{batched / floor:.1f}x the floor, one by one {single / floor:.1f}x")  # fmt: skip
    print(f"same top-5 tokens from both servers: {same}")


if __name__ == "__main__":
    main()
