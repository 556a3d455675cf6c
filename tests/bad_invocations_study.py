"""Bad invocations of the study commands (know, probe, trace-many): one line, exit 2."""

from __future__ import annotations

KNOW = ["know", "--dataset", "athlete_sport", "--model", "{tiny}"]
PROBE = ["probe", "--dataset", "athlete_sport", "--model", "{tiny}"]
TRACE_MANY = ["trace-many", "--dataset", "athlete_sport", "--model", "{tiny}"]

ROWS: list[tuple[list[str], str]] = [
    (["know"], "--dataset is required"),
    (["probe"], "--dataset is required"),
    (["trace-many"], "--dataset is required"),
    (["know", "--dataset", "nope", "--model", "{tiny}"], "unknown dataset 'nope'"),
    (["probe", "--dataset", "nope.jsonl", "--model", "{tiny}"], "does not exist"),
    (["know", "--dataset", "{tmp}/afile.txt", "--model", "{tiny}"], "afile.txt line 1: bad JSON"),
    ([*KNOW, "--limit", "0"], "--limit must be at least 1 (got 0)"),
    ([*KNOW, "--batch-size", "0"], "--batch-size must be at least 1 (got 0)"),
    ([*KNOW, "--backend", "spark"], "--backend 'spark' is not known"),
    ([*KNOW, "--out", "{tmp}/afile.txt"], "is a file"),
    ([*KNOW, "--format", "gif"], "--format 'gif' is not supported"),
    ([*PROBE, "--folds", "1"], "--folds must be at least 2 (got 1)"),
    ([*PROBE, "--n", "0"], "--n must be at least 1 (got 0)"),
    ([*PROBE, "--batch-size", "0"], "--batch-size must be at least 1 (got 0)"),
    ([*PROBE, "--known", "{tmp}"], "is not a `factscope know` run folder"),
    ([*TRACE_MANY, "--n", "0"], "--n must be at least 1 (got 0)"),
    ([*TRACE_MANY, "--samples", "0"], "--samples must be at least 1 (got 0)"),
    ([*TRACE_MANY, "--window", "0"], "--window must be at least 1 (got 0)"),
    ([*TRACE_MANY, "--seed", "-1"], "--seed must be at least 0 (got -1)"),
    ([*PROBE, "--seed", "-1"], "--seed must be at least 0 (got -1)"),
    ([*TRACE_MANY, "--kind", "hidden,neurons"], "--kind 'hidden,neurons'"),
    ([*TRACE_MANY, "--backend", "spark"], "--backend 'spark' is not known"),
]
