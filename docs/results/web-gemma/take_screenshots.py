"""Screenshots of `factscope serve` on gemma-3-270m, for docs/see.md.

    python docs/results/web-gemma/take_screenshots.py [--model gemma-3-270m]

Starts the server on a free loopback port, opens it in headless Chromium (the system
browser, /usr/bin/chromium) and saves predict.png, flow.png, trace.png, neurons.png and
attention.png next to this file (refusing to overwrite unless --force).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

HERE = Path(__file__).parent
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--only", default="predict,flow,trace,neurons,attention")
    args = parser.parse_args()
    wanted = args.only.split(",")
    names = [f"{n}.png" for n in args.only.split(",")]
    if not args.force and any((HERE / n).exists() for n in names):
        raise SystemExit("screenshots exist; pass --force to overwrite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    factscope = Path(sys.executable).parent / "factscope"
    server = subprocess.Popen([str(factscope), "serve", "--model", args.model, "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(url + "/api/info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", args=ARGS, headless=True,
                viewport={"width": 1350, "height": 950},
            )  # fmt: skip
            page = context.new_page()
            page.goto(url + "/")
            page.wait_for_selector("#predict-table tbody tr", timeout=120_000)
            page.wait_for_timeout(500)
            if "predict" in wanted:
                page.screenshot(path=str(HERE / "predict.png"))
            page.click("#tabs button[data-view=flow]")
            page.click("#flow-form button[type=submit]")
            page.wait_for_selector("#flow-grid svg", timeout=300_000)
            page.wait_for_timeout(6000)  # let the animation reach the output
            if "flow" in wanted:
                page.screenshot(path=str(HERE / "flow.png"), full_page=True)
            if "attention" in wanted:  # the Neurons view's attention patterns per head
                page.click("#tabs button[data-view=neurons]")
                page.click("#attention-run")
                page.wait_for_function(
                    "() => document.querySelector('#attention-sentence').textContent.length > 0",
                    timeout=300_000,
                )
                page.wait_for_timeout(1500)
                page.locator("#attention-panel").screenshot(path=str(HERE / "attention.png"))
            if "trace" not in wanted and "neurons" not in wanted:
                return
            page.click("#tabs button[data-view=trace]")
            page.fill("#trace-form input[name=samples]", "10")
            page.click("#trace-exact")  # the exact trace, as a job with progress
            page.wait_for_function(
                "() => document.querySelector('#trace-sentence').textContent"
                ".startsWith('Exact trace')",
                timeout=1_200_000,
            )
            page.wait_for_timeout(500)
            page.screenshot(path=str(HERE / "trace.png"), full_page=True)
            if "neurons" in wanted and page.locator("#tabs button[data-view=neurons]").count():
                page.click("#tabs button[data-view=neurons]")
                page.click("#neurons-form button[type=submit]")
                page.wait_for_selector("#neurons-result table", timeout=900_000)
                page.screenshot(path=str(HERE / "neurons.png"), full_page=True)
            context.close()
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
