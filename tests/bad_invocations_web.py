"""Bad invocations of `factscope serve` and `factscope explain-fact` (collected by
tests/test_cli_errors.py): each is one `error:` line and exit code 2, before any server
starts or any page is written."""

from __future__ import annotations

PROMPT = "Fact Michael Jordan plays the sport of"
EXPLAIN = ["explain-fact", PROMPT, "--subject", "Michael Jordan", "--model", "{tiny}"]

ROWS: list[tuple[list[str], str]] = [
    (["serve", "--port", "0"], "--port must be at least 1 (got 0)"),
    (["serve", "--port", "70000"], "--port must be at most 65535 (got 70000)"),
    (["serve", "--port", "http"], "--port must be a whole number"),
    (["serve", "--host", " "], "--host is empty"),
    (["serve", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["serve", "--model", "{tmp}/missing.gguf"], "no such file or folder"),
    (["explain-fact", PROMPT, "--out", "{tmp}/r.html"], "--subject is required"),
    (["explain-fact", PROMPT, "--subject", "Michael Jordan"], "--out is required"),
    ([*EXPLAIN, "--out", "{tmp}/r.html", "--samples", "0"], "--samples must be at least 1"),
    ([*EXPLAIN, "--out", "{tmp}/r.html", "--samples", "101"], "--samples must be at most 100"),
    (
        [*EXPLAIN, "--out", "{tmp}/r.html", "--probe-facts", "-1"],
        "--probe-facts must be at least 0",
    ),
    (
        [*EXPLAIN, "--out", "{tmp}/r.html", "--probe-facts", "5001"],
        "--probe-facts must be at most 5000",
    ),
    ([*EXPLAIN, "--out", "{tmp}/r.html", "--probe-known", "{tmp}"], "not a `factscope know` run"),
    ([*EXPLAIN, "--out", "{tmp}/afile.txt"], "should end in .html"),
    ([*EXPLAIN, "--out", "{tmp}"], "is a folder"),
    (
        [
            "explain-fact",
            PROMPT,
            "--subject",
            "Tom Brady",
            "--model",
            "{tiny}",
            "--out",
            "{tmp}/r.html",
        ],
        "does not occur",
    ),
    (["explain-fact", PROMPT, "--subject", " ", "--out", "{tmp}/r.html"], "--subject is empty"),
]
