"""Bad invocations of `factscope sae ...` and `features` (see tests/test_cli_errors.py)."""

from __future__ import annotations

TRAIN = ["sae", "train", "--layer", "1", "--model", "{tiny}"]
FEAT = ["features", "Fact Michael Jordan plays", "--sae", "{tmp}"]

ROWS: list[tuple[list[str], str]] = [
    (["sae", "train", "--out", "{tmp}/x"], "--layer is required"),
    (["sae", "train", "--layer", "-1"], "--layer must be at least 0 (got -1)"),
    ([*TRAIN], "--out is required"),
    ([*TRAIN, "--kind", "gated", "--out", "{tmp}/x"], "--kind 'gated' is not valid"),
    ([*TRAIN, "--site", "attn", "--out", "{tmp}/x"], "--site 'attn' is not valid"),
    ([*TRAIN, "--latents", "1"], "--latents must be at least 2 (got 1)"),
    ([*TRAIN, "--k", "0"], "--k must be at least 1 (got 0)"),
    ([*TRAIN, "--latents", "8", "--k", "9", "--out", "{tmp}/x"], "--k 9 is more than --latents 8"),
    ([*TRAIN, "--tokens", "0"], "--tokens must be at least 1 (got 0)"),
    ([*TRAIN, "--held-out-tokens", "0"], "--held-out-tokens must be at least 1 (got 0)"),
    ([*TRAIN, "--epochs", "0"], "--epochs must be at least 0.01"),
    ([*TRAIN, "--batch-size", "0"], "--batch-size must be at least 1 (got 0)"),
    ([*TRAIN, "--lr", "-1"], "--lr must be at least 0"),
    ([*TRAIN, "--l1", "-1"], "--l1 must be at least 0"),
    ([*TRAIN, "--l0", "-1"], "--l0 must be at least 0"),
    ([*TRAIN, "--seq-len", "1"], "--seq-len must be at least 2 (got 1)"),
    ([*TRAIN, "--ce-sequences", "-1"], "--ce-sequences must be at least 0 (got -1)"),
    ([*TRAIN, "--seed", "-1"], "--seed must be at least 0 (got -1)"),
    ([*FEAT, "--steer", "inf"], "--steer must be a finite number (got inf)"),
    ([*TRAIN, "--layer", "99", "--out", "{tmp}/x"], "--layer 99 is out of range"),
    ([*TRAIN, "--corpus", "{tmp}/none.txt", "--out", "{tmp}/x"], "is not a file"),
    ([*TRAIN, "--out", "{tmp}/afile.txt"], "is a file, not a folder"),
    (["sae", "eval", "{tmp}/missing"], "does not exist"),
    (["sae", "eval", "{tmp}"], "is not a SAELens folder"),
    (["sae", "eval", "{tmp}/afile.txt"], "does not say where it reads"),
    (["sae", "eval", "{tmp}", "--layer", "-2"], "--layer must be at least 0 (got -2)"),
    (["sae", "eval", "{tmp}", "--held-out-tokens", "0"], "--held-out-tokens must be at least 1"),
    (["sae", "eval", "{tmp}", "--ce-sequences", "-1"], "--ce-sequences must be at least 0"),
    (["features", "hi"], "--sae is required"),
    ([*FEAT], "is not a SAELens folder"),
    ([*FEAT, "--top", "0"], "--top must be at least 1 (got 0)"),
    ([*FEAT, "--layer", "-1"], "--layer must be at least 0 (got -1)"),
    ([*FEAT, "--context-tokens", "0"], "--context-tokens must be at least 1 (got 0)"),
    ([*FEAT, "--format", "gif", "--out", "{tmp}/x"], "--format 'gif' is not supported"),
    (
        ["features", "hi", "--sae", "{tmp}/afile.txt", "--layer", "1", "--site", "resid"],
        "ends in .npz or .safetensors",
    ),
]
