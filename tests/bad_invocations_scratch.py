"""Bad invocations of explain, corpus, train and knowledge (collected by test_cli_errors.py).

`{tmp}/afile.txt` holds one short line ("not a folder"): a corpus too small to train on.
"""

from __future__ import annotations

TRAIN = ["train", "{tmp}/afile.txt", "--out", "{tmp}/run"]
CORPUS = ["corpus", "--out", "{tmp}/c"]
KNOW = ["knowledge", "--corpus", "{tmp}", "--model", "{tiny}"]

ROWS: list[tuple[list[str], str]] = [
    (["explain", "basics", "--steps", "0"], "--steps must be at least 1 (got 0)"),
    (["explain", "basics", "--lr", "-1"], "--lr must be at least 0"),
    (["explain", "layer", "hi"], "--layer is required"),
    (["explain", "layer", "hi", "--layer", "-1"], "--layer must be at least 0"),
    (["explain", "layer", "hi", "--layer", "0", "--values", "0"], "--values must be at least 1"),
    (["explain", "layer", "hi", "--layer", "99", "--model", "{tiny}"], "--layer 99 is outside"),
    (["explain", "layer", "hi", "--layer", "0", "--token", "50", "--model", "{tiny}"], "--token"),
    (
        ["explain", "layer", "hi", "--layer", "0", "--token", "-50", "--model", "{tiny}"],
        "--token -50 is outside",
    ),
    (["corpus"], "--out is required"),
    ([*CORPUS, "--people", "1"], "--people must be at least 2"),
    ([*CORPUS, "--bios-per-person", "0"], "--bios-per-person must be at least 1"),
    ([*CORPUS, "--qa-fraction", "1.5"], "--qa-fraction must be at most 1"),
    ([*CORPUS, "--qa-fraction", "0"], "--qa-fraction must be between 0 and 1"),
    ([*CORPUS, "--eval-people", "-1"], "--eval-people must be at least 0"),
    ([*CORPUS, "--regime", "double"], "--regime 'double' is unknown"),
    (["corpus", "--out", "{tmp}/afile.txt"], "is a file, not a folder"),
    (["train", "{tmp}/afile.txt"], "--out is required"),
    (["train", "{tmp}/missing.txt", "--out", "{tmp}/run"], "no such data file"),
    ([*TRAIN], "too few for one batch"),
    ([*TRAIN, "--vocab-size", "100"], "vocabulary of 100 is too small"),
    ([*TRAIN, "--vocab-size", "0"], "--vocab-size must be at least 1"),
    ([*TRAIN, "--seq-len", "256", "--context", "128"], "longer than the model's context of 128"),
    ([*TRAIN, "--context", "0"], "--context must be at least 1"),
    ([*TRAIN, "--seq-len", "0"], "--seq-len must be at least 1"),
    ([*TRAIN, "--steps", "0"], "--steps must be at least 1"),
    ([*TRAIN, "--batch-size", "0"], "--batch-size must be at least 1"),
    ([*TRAIN, "--lr", "-0.1"], "--lr must be at least 0"),
    ([*TRAIN, "--warmup", "-1"], "--warmup must be at least 0"),
    ([*TRAIN, "--warmup", "5", "--steps", "5"], "--warmup 5 must be less than --steps 5"),
    ([*TRAIN, "--min-lr-ratio", "2"], "--min-lr-ratio must be at most 1"),
    ([*TRAIN, "--weight-decay", "-1"], "--weight-decay must be at least 0"),
    ([*TRAIN, "--grad-clip", "-1"], "--grad-clip must be at least 0"),
    ([*TRAIN, "--eval-every", "0"], "--eval-every must be at least 1"),
    ([*TRAIN, "--checkpoint-every", "0"], "--checkpoint-every must be at least 1"),
    ([*TRAIN, "--stop-after", "0"], "--stop-after must be at least 1"),
    ([*TRAIN, "--seed", "-1"], "--seed must be at least 0 (got -1)"),
    ([*TRAIN, "--lr", "inf"], "--lr must be a finite number (got inf)"),
    ([*CORPUS, "--seed", "-1"], "--seed must be at least 0 (got -1)"),
    ([*TRAIN, "--preset", "huge"], "unknown --preset 'huge'"),
    ([*TRAIN, "--mlp", "tanh"], "unknown --mlp 'tanh'"),
    ([*TRAIN, "--resume"], "has no checkpoint.pt to resume"),
    (["train", "{tmp}/afile.txt", "--out", "{tmp}/afile.txt"], "is a file, not a folder"),
    ([*TRAIN, "--device", "cuda:7"], "cuda"),
    (["knowledge", "--model", "{tiny}"], "--corpus is required"),
    ([*KNOW], "has no qa.jsonl"),
    ([*KNOW, "--limit", "0"], "--limit must be at least 1"),
]
