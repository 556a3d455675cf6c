"""The sweep runner: one record per fact, resume after a real kill, refusal, Ray == local."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factscope.errors import FactscopeError
from factscope.study.sweep import read_records, run_sweep, run_sweep_batches

META = {"task": "square", "model": "toy", "dataset": "numbers"}


def items(n: int) -> list[dict[str, object]]:
    return [{"id": f"n/{i:04d}", "x": i} for i in range(n)]


def work(item: dict[str, object]) -> dict[str, object]:
    x = int(item["x"])  # type: ignore[call-overload]
    return {"x": x, "square": x * x, "sin": math.sin(x) / 3}


def test_records_and_resume_skip_done_ids(tmp_path: Path) -> None:
    calls: list[str] = []

    def counted(item: dict[str, object]) -> dict[str, object]:
        calls.append(str(item["id"]))
        return work(item)

    first = run_sweep(tmp_path / "run", items(10), counted, meta=META, progress=False)
    assert [r["id"] for r in first] == [f"n/{i:04d}" for i in range(10)]
    assert first[3] == {"id": "n/0003", "x": 3, "square": 9, "sin": math.sin(3) / 3}
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["meta"]["model"] == "toy" and run["meta"]["code_version"].startswith("0.")
    # more items later: only the new ones are computed
    calls.clear()
    second = run_sweep(tmp_path / "run", items(15), counted, meta=META, progress=False)
    assert calls == [f"n/{i:04d}" for i in range(10, 15)]
    assert second[:10] == first
    assert len(read_records(tmp_path / "run")) == 15


def test_batches_are_one_record_per_item(tmp_path: Path) -> None:
    sizes: list[int] = []

    def batch_fn(batch: list[dict[str, object]]) -> list[dict[str, object]]:
        sizes.append(len(batch))
        return [{"id": it["id"], **work(it)} for it in batch]

    records = run_sweep_batches(
        tmp_path, items(10), batch_fn, meta=META, batch_size=4, progress=False
    )
    assert sizes == [4, 4, 2]
    assert records == run_sweep(tmp_path / "b", items(10), work, meta=META, progress=False)


def test_refuses_a_run_of_another_model_unless_forced(tmp_path: Path) -> None:
    run_sweep(tmp_path, items(3), work, meta=META, progress=False)
    other = {**META, "model": "other"}
    with pytest.raises(FactscopeError, match=r"model 'toy'.*--force"):
        run_sweep(tmp_path, items(3), work, meta=other, progress=False)
    with pytest.raises(FactscopeError, match="dataset"):
        run_sweep(tmp_path, items(3), work, meta={**META, "dataset": "x"}, progress=False)
    records = run_sweep(tmp_path, items(2), work, meta=other, force=True, progress=False)
    assert len(records) == 2 and len(read_records(tmp_path)) == 2


def test_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(FactscopeError, match="twice"):
        run_sweep(tmp_path, items(3) + items(1), work, meta=META, progress=False)


def test_half_written_last_line_is_dropped_on_resume(tmp_path: Path) -> None:
    run_sweep(tmp_path, items(5), work, meta=META, progress=False)
    with (tmp_path / "records.jsonl").open("a") as f:
        f.write('{"id": "n/0005", "x": 5, "squ')  # a kill in the middle of a write
    records = run_sweep(tmp_path, items(7), work, meta=META, progress=False)
    assert records == run_sweep(tmp_path / "clean", items(7), work, meta=META, progress=False)
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 7 and all(json.loads(line) for line in lines)


SLOW_SWEEP = """
import math, sys, time
from factscope.study.sweep import run_sweep

def work(item):
    time.sleep(0.02)
    x = item["x"]
    return {"x": x, "square": x * x, "sin": math.sin(x) / 3}

items = [{"id": f"n/{i:04d}", "x": i} for i in range(int(sys.argv[2]))]
run_sweep(sys.argv[1], items, work, meta={"task": "square", "model": "toy", "dataset": "numbers"},
          progress=False)
"""


def test_killed_sweep_resumes_to_the_same_records(tmp_path: Path) -> None:
    n = 120
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SWEEP, str(run_dir), str(n)])
    records_file = run_dir / "records.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if records_file.exists() and records_file.read_text().count("\n") >= 20:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = read_records(run_dir)
    assert 20 <= len(before) < n, "the kill should land mid-run"

    resumed = run_sweep(run_dir, items(n), work, meta=META, progress=False)
    clean = run_sweep(tmp_path / "clean", items(n), work, meta=META, progress=False)
    assert resumed == clean
    ids = [json.loads(line)["id"] for line in records_file.read_text().splitlines()]
    assert len(ids) == n and len(set(ids)) == n  # none repeated, none lost
    assert ids[: len(before)] == [r["id"] for r in before]


def test_ray_backend_gives_the_same_records(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    # workers cannot import this test module: send its functions by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        offset = 0.5  # a closure: pickled by value and sent to the actors

        def batch_fn(batch: list[dict[str, object]]) -> list[dict[str, object]]:
            return [
                {"id": it["id"], **work(it), "shifted": int(it["x"]) + offset}  # type: ignore[call-overload]
                for it in batch
            ]

        kwargs = {"meta": META, "batch_size": 3, "progress": False}
        on_ray = run_sweep_batches(tmp_path / "ray", items(20), batch_fn, backend="ray", **kwargs)  # type: ignore[arg-type]
        local = run_sweep_batches(tmp_path / "local", items(20), batch_fn, **kwargs)  # type: ignore[arg-type]
        assert on_ray == local
        assert sorted(r["id"] for r in read_records(tmp_path / "ray")) == [r["id"] for r in local]
    finally:
        ray.shutdown()


def test_numpy_arrays_are_stored_beside_the_records(tmp_path: Path) -> None:
    import numpy as np

    from factscope.study.sweep import load_arrays

    def with_array(item: dict[str, object]) -> dict[str, object]:
        x = int(item["x"])  # type: ignore[call-overload]
        return {"x": x, "acts": np.full((2, 3), x, dtype=np.float32)}

    records = run_sweep(tmp_path, items(4), with_array, meta=META, progress=False)
    assert records[2]["arrays"] == "arrays/n__0002.npz" and records[2]["array_keys"] == ["acts"]
    np.testing.assert_array_equal(load_arrays(tmp_path, records[2])["acts"], np.full((2, 3), 2))
    assert load_arrays(tmp_path, {"id": "none"}) == {}


def test_meta_with_tuples_resumes(tmp_path: Path) -> None:
    """Hyperparameters hold tuples; run.json holds lists: the same options must still resume."""
    meta = {**META, "hparams": {"context_template_lengths": ((5, 10), (10, 10))}}
    first = run_sweep(tmp_path / "run", items(3), work, meta=meta, progress=False)
    again = run_sweep(tmp_path / "run", items(3), work, meta=meta, progress=False)
    assert again == first
