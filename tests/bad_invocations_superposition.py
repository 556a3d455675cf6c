"""Bad invocations of `factscope superposition ...` and `params --video` (see
tests/test_cli_errors.py)."""

from __future__ import annotations

JL = ["superposition", "jl", "--n", "20", "--dim", "4", "--steps", "1"]
CAP = ["superposition", "capacity", "--dims", "4", "--eps", "0.5", "--steps", "1"]
TOY = ["superposition", "toy", "--steps", "1", "--dim-points", "0", "--phase-points", "0"]
MODEL = ["superposition", "model", "--model", "{tiny}"]

ROWS: list[tuple[list[str], str]] = [
    (["superposition", "jl", "--n", "1"], "--n must be at least 2 (got 1)"),
    (["superposition", "jl", "--dim", "0"], "--dim must be at least 1 (got 0)"),
    (["superposition", "jl", "--steps", "-1"], "--steps must be at least 0 (got -1)"),
    (["superposition", "jl", "--lr", "-0.1"], "--lr must be at least 0"),
    (["superposition", "jl", "--cutoff", "-1"], "--cutoff must be at least 0"),
    ([*JL, "--loss", "l3"], "--loss 'l3' is not valid"),
    ([*JL, "--format", "gif", "--out", "{tmp}/x"], "--format 'gif' is not supported"),
    ([*JL, "--out", "{tmp}/afile.txt"], "is a file, not a folder"),
    ([*JL, "--seed", "-1"], "--seed must be at least 0 (got -1)"),
    ([*CAP, "--seed", "-1"], "--seed must be at least 0 (got -1)"),
    ([*TOY, "--seed", "-1"], "--seed must be at least 0 (got -1)"),
    ([*MODEL, "--seed", "4294967296"], "--seed must be at most 4294967295 (got 4294967296)"),
    (["superposition", "capacity", "--steps", "0"], "--steps must be at least 1 (got 0)"),
    (["superposition", "capacity", "--max-n", "1"], "--max-n must be at least 2 (got 1)"),
    (["superposition", "capacity", "--tolerance", "-1"], "--tolerance must be at least 0"),
    ([*CAP[:4], "--eps", "x"], "--eps 'x' is not valid"),
    ([*CAP[:2], "--eps", "1.5", "--dims", "4"], "eps must be between 0 and 1"),
    ([*CAP[:2], "--dims", "1"], "dimensions must be at least 2"),
    ([*CAP, "--loss", "l3"], "--loss 'l3' is not valid"),
    (["superposition", "toy", "--steps", "0"], "--steps must be at least 1 (got 0)"),
    (["superposition", "toy", "--batch", "0"], "--batch must be at least 1 (got 0)"),
    (["superposition", "toy", "--dim-features", "1"], "--dim-features must be at least 2"),
    (["superposition", "toy", "--dim-hidden", "0"], "--dim-hidden must be at least 1"),
    (["superposition", "toy", "--dim-steps", "0"], "--dim-steps must be at least 1"),
    (["superposition", "toy", "--dim-points", "-1"], "--dim-points must be at least 0"),
    (["superposition", "toy", "--phase-points", "-1"], "--phase-points must be at least 0"),
    (["superposition", "toy", "--phase-steps", "0"], "--phase-steps must be at least 1"),
    ([*TOY[:2], "--dim-features", "10", "--dim-hidden", "30"], "--dim-hidden must be smaller"),
    ([*TOY, "--format", "gif"], "--format 'gif' is not supported"),
    ([*MODEL, "--unembed-sample", "1"], "--unembed-sample must be at least 2 (got 1)"),
    ([*MODEL, "--kind", "gate,keys"], "--kind 'gate,keys' is not valid"),
    ([*MODEL, "--layers", "0,99"], "unknown layer 99"),
    ([*MODEL, "--layers", "x"], "--layers 'x' is not valid"),
    (["params", "gpt3", "--video", "--format", "gif"], "--format 'gif' is not supported"),
    (["params", "no-such-model", "--video"], "unknown model"),
]
