"""Bad invocations of `factscope edit` and `factscope edit-eval` (collected by test_cli_errors)."""

from __future__ import annotations

PROMPT = "Fact Michael Jordan plays the sport of"
EDIT = ["edit", PROMPT, "--subject", "Michael Jordan", "--model", "{tiny}"]
EVAL = ["edit-eval", "--dataset", "athlete_sport", "--out", "{tmp}/run", "--model", "{tiny}"]

ROWS: list[tuple[list[str], str]] = [
    (["edit", PROMPT, "--new", "golf"], "--subject is required"),
    (["edit", PROMPT, "--subject", "Michael Jordan"], "--new is required"),
    (
        ["edit", PROMPT, "--subject", "Tom Brady", "--new", "golf", "--model", "{tiny}"],
        "does not occur in prompt",
    ),
    ([*EDIT, "--new", " "], "new answer is empty"),
    ([*EDIT, "--new", "golf", "--old", "golf"], "equals the old one"),
    ([*EDIT, "--new", "golf", "--layer", "9"], "layer 9 is out of range"),
    ([*EDIT, "--new", "golf", "--layer", "-1"], "--layer must be at least 0"),
    ([*EDIT, "--new", "golf", "--method", "grace"], "unknown edit method 'grace'"),
    ([*EDIT, "--new", "golf", "--corpus", "{tmp}/missing.txt"], "is not a file"),
    ([*EDIT, "--new", "golf", "--layer", "1", "--corpus", "{tmp}/afile.txt"], "fewer than"),
    ([*EDIT, "--new", "golf", "--stats-tokens", "10"], "--stats-tokens must be at least 100000"),
    ([*EDIT, "--new", "golf", "--save", "{tmp}/afile.txt"], "already exists"),
    ([*EDIT, "--new", "golf", "--trace", "magic"], "--trace 'magic' is not known"),
    (["edit-eval", "--dataset", "athlete_sport"], "--out is required"),
    (["edit-eval", "--out", "{tmp}/run"], "--dataset is required"),
    ([*EVAL, "--n", "0"], "--n must be at least 1"),
    ([*EVAL, "--sequential", "-1"], "--sequential must be at least 0"),
    ([*EVAL, "--fluency-tokens", "-1"], "--fluency-tokens must be at least 0"),
    ([*EVAL, "--stats-tokens", "5"], "--stats-tokens must be at least 100000"),
    ([*EVAL, "--layer", "-2"], "--layer must be at least 0"),
    ([*EVAL, "--method", "grace"], "unknown edit method 'grace'"),
    (["edit-eval", "--dataset", "nosuch", "--out", "{tmp}/run"], "unknown dataset 'nosuch'"),
    ([*EVAL, "--corpus", "{tmp}/missing.txt"], "is not a file"),
    ([*EVAL, "--known", "{tmp}"], "is not a `factscope know` run folder"),
    ([*EVAL, "--nullspace-energy", "1.5"], "--nullspace-energy must be at most 1"),
    (
        [*EDIT, "--new", "golf", "--nullspace-energy", "-0.1"],
        "--nullspace-energy must be at least 0",
    ),
    ([*EDIT, "--new", "golf", "--clamp", "0"], "--clamp must be at least 0.01"),
    ([*EVAL, "--clamp", "-1"], "--clamp must be at least 0.01"),
    (
        [*EDIT, "--new", "golf", "--mom2-update-weight", "0"],
        "--mom2-update-weight must be at least",
    ),
    ([*EVAL, "--mom2-update-weight", "-5"], "--mom2-update-weight must be at least"),
    (
        [*EDIT, "--new", "golf", "--mom2-update-weight", "2000"],
        "--mom2-update-weight is MEMIT's and AlphaEdit's",
    ),
]
