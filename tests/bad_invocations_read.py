"""Bad invocations of the read commands (neurons, directions, knockout); see test_cli_errors."""

from __future__ import annotations

PROMPT = "Fact Michael Jordan plays the sport of"
NEURONS = ["neurons", PROMPT, "--subject", "Michael Jordan", "--model", "{tiny}"]
KNOCKOUT = ["knockout", PROMPT, "--subject", "Michael Jordan", "--model", "{tiny}"]

ROWS: list[tuple[list[str], str]] = [
    # neurons
    (["neurons", PROMPT], "--subject is required"),
    ([*NEURONS[:3], "Tom Brady", *NEURONS[4:]], "does not occur in prompt"),
    ([*NEURONS[:3], "  ", *NEURONS[4:]], "--subject is empty"),
    ([*NEURONS, "--top", "0"], "--top must be at least 1 (got 0)"),
    ([*NEURONS, "--top", "100000"], "--top 100000 is out of range"),
    ([*NEURONS, "--max-k", "0"], "--max-k must be at least 1 (got 0)"),
    ([*NEURONS, "--max-k", "100000"], "--max-k 100000 is out of range"),
    ([*NEURONS, "--draws", "0"], "--draws must be at least 1 (got 0)"),
    ([*NEURONS, "--ig-steps", "0"], "--ig-steps must be at least 1 (got 0)"),
    ([*NEURONS, "--batch-size", "0"], "--batch-size must be at least 1 (got 0)"),
    ([*NEURONS, "--method", "saliency"], "--method 'saliency' is not valid"),
    ([*NEURONS, "--modes", "zero,resample"], "--modes 'zero,resample'"),
    ([*NEURONS, "--variants", "both:Michael Jordan"], "is not KIND:NAME"),
    ([*NEURONS, "--variants", "first:Michael Phelps"], "does not tokenise like 'Michael Jordan'"),
    ([*NEURONS, "--out", "{tmp}/afile.txt"], "is a file, not a folder"),
    ([*NEURONS, "--seed", "-1"], "--seed must be at least 0 (got -1)"),
    # directions
    (["directions", PROMPT, "--model", "{tiny}", "--layer", "9"], "layer 9 does not exist"),
    (["directions", PROMPT, "--layer", "-1"], "--layer must be at least 0 (got -1)"),
    (["directions", PROMPT, "--model", "{tiny}", "--template", "sport of"], "has no '{}'"),
    (["directions", PROMPT, "--model", "{tiny}", "--format", "gif"], "--format 'gif'"),
    # knockout
    (["knockout", PROMPT], "--subject is required"),
    ([*KNOCKOUT[:3], "Tom Brady", *KNOCKOUT[4:]], "does not occur in prompt"),
    ([*KNOCKOUT, "--window", "0"], "--window must be at least 1 (got 0)"),
    ([*KNOCKOUT, "--window", "99"], "--window 99 is out of range"),
    ([*KNOCKOUT, "--heads", "0"], "--heads must be at least 1 (got 0)"),
    ([*KNOCKOUT, "--heads", "999"], "--heads 999 is out of range"),
]
