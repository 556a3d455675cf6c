"""The one sweep runner under every multi-fact command (know, probe, trace-many, edit-eval).

A sweep applies one piece of work to many facts and keeps one JSON record per fact in a
run directory, written the moment it is done:

    run_dir/run.json       what made the run: task, model, dataset, options, command, code version
    run_dir/records.jsonl  one line per finished fact, {"id": ..., ...}, appended and flushed
    run_dir/arrays/        per-fact numpy arrays (activations), when the work returns any

Running the same sweep again resumes: facts whose id is already in records.jsonl are skipped,
so killing a run loses at most the facts in flight (a half-written last line is dropped).
A run directory made by another model, dataset or set of options is refused unless
`force=True`, which starts it over.

Backends: "local" runs the work in this process (torch already spreads one forward pass over
all cores); "ray" sends batches to Ray actors, on this machine or on a cluster (`address`),
and writes the same records. Ray is an optional dependency, imported only when asked for.

    records = run_sweep(run_dir, facts, lambda fact: {"p": p_correct(fact)},
                        meta={"task": "know", "model": "gemma-3-270m", "dataset": "athletes"})
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

import numpy as np

from factscope import __version__
from factscope.errors import FactscopeError
from factscope.progress import progress_bar

if TYPE_CHECKING:
    from factscope.load import LoadedModel

Item = TypeVar("Item")
Record = dict[str, Any]
BatchFn = Callable[[list[Item]], list[Record]]

RUN_FILE = "run.json"
RECORDS_FILE = "records.jsonl"
ARRAYS_DIR = "arrays"
# meta keys that describe how a run was started, not what it computes: they may differ on resume
VOLATILE_META = ("command", "code_version", "started", "backend", "n_items")


def item_id(item: Any) -> str:
    """The id of a fact: its `.id` attribute, or its "id" key if it is a dict."""
    if isinstance(item, dict):
        return str(item["id"])
    return str(item.id)


def code_version() -> str:
    """factscope's version, plus the git commit when running from a checkout ("0.1.0+abc1234")."""
    root = Path(__file__).resolve().parents[3]
    if (root / ".git").exists():
        try:
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()  # fmt: skip
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()  # fmt: skip
            return f"{__version__}+{commit}" + (".dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            pass
    return __version__


def read_records(run_dir: Path) -> list[Record]:
    """The finished records of a run directory, in the order they were written.

    A last line cut off by a kill is not a record: it is dropped (and trimmed from the file by
    `open_run`, so that appending continues on a clean line)."""
    path = Path(run_dir) / RECORDS_FILE
    if not path.exists():
        return []
    records: list[Record] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # the write in flight when the run was killed
            record = json.loads(line)
            if record["id"] not in seen:
                seen.add(record["id"])
                records.append(record)
    return records


def _store_arrays(run_dir: Path, record: Record) -> Record:
    """Move the numpy arrays of a record into run_dir/arrays/<id>.npz (written whole, then
    renamed, before the record is appended: a kill never leaves a record without its
    arrays); the record keeps {"arrays": "arrays/<id>.npz", "array_keys": [...]}."""
    arrays = {k: v for k, v in record.items() if isinstance(v, np.ndarray)}
    if not arrays:
        return record
    name = f"{ARRAYS_DIR}/{record['id'].replace('/', '__')}.npz"
    target = run_dir / name
    target.parent.mkdir(exist_ok=True)
    partial = target.with_suffix(".partial.npz")
    np.savez(partial, **arrays)  # type: ignore[arg-type]
    os.replace(partial, target)
    rest = {k: v for k, v in record.items() if k not in arrays}
    return {**rest, "arrays": name, "array_keys": sorted(arrays)}


def load_arrays(run_dir: Path | str, record: Record) -> dict[str, np.ndarray]:
    """The numpy arrays a sweep stored for `record` (empty if it has none)."""
    if "arrays" not in record:
        return {}
    with np.load(Path(run_dir) / record["arrays"]) as data:
        return {k: data[k] for k in data.files}


def _trim_partial_line(path: Path) -> None:
    """Cut a half-written last line (no newline) off records.jsonl."""
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with path.open("r+b") as f:
            f.truncate(end)


def _describe(meta: dict[str, Any]) -> str:
    keys = [k for k in ("task", "model", "dataset") if k in meta]
    return ", ".join(f"{k} {meta[k]!r}" for k in keys) or "other options"


def open_run(run_dir: Path, meta: dict[str, Any], force: bool = False) -> list[Record]:
    """Prepare `run_dir` for a sweep described by `meta`; return the records already done.

    A new folder gets run.json. An existing run with the same meta (apart from the command
    and code version) is resumed. Another model, dataset or options is refused, unless
    `force`, which deletes its records and starts over."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise FactscopeError(f"run directory {run_dir} is a file; give a folder")
    run_file, records_file = run_dir / RUN_FILE, run_dir / RECORDS_FILE
    meta = {**meta, "code_version": meta.get("code_version") or code_version()}
    meta = json.loads(json.dumps(meta))  # as run.json holds it: tuples become lists
    if run_file.exists() and not force:
        try:
            old = json.loads(run_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise FactscopeError(
                f"{run_file} is not valid JSON; pass --force to start the run over"
            ) from None
        old_meta = old.get("meta", {})
        differ = sorted(
            k
            for k in set(old_meta) | set(meta)
            if k not in VOLATILE_META and old_meta.get(k) != meta.get(k)
        )
        if differ:
            raise FactscopeError(
                f"run directory {run_dir} was made by {_describe(old_meta)} "
                f"(differs in {', '.join(differ)}); pass --force to start over or choose "
                "another --out"
            )
        _trim_partial_line(records_file)
        done = read_records(run_dir)
        old.setdefault("resumed", []).append({"command": meta.get("command"), "done": len(done)})
        run_file.write_text(json.dumps(old, indent=1) + "\n", encoding="utf-8")
        return done
    if records_file.exists() and not force and not run_file.exists():
        raise FactscopeError(
            f"{records_file} exists without {RUN_FILE}; pass --force to start the run over"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    records_file.unlink(missing_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    data = {"meta": meta, "started": started}
    run_file.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return []


def _batches(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _run_local(batch_fn: BatchFn[Item], batches: list[list[Item]]) -> Iterator[list[Record]]:
    for batch in batches:
        yield batch_fn(batch)


class ModelWork:
    """A sweep's work function that holds a loaded model.

    Sent to a Ray actor, it travels as the model's source, device and dtype plus the fields
    named in `shipped`; the actor loads the model once and rebuilds the rest (`_prepare`)."""

    shipped: tuple[str, ...] = ()

    def __init__(self, lm: LoadedModel) -> None:
        self.lm: LoadedModel | None = lm
        self.model_spec = (str(lm.source), str(lm.model.device), lm.model.dtype)

    def _prepare(self) -> None:
        """What is derived from the model (prefix caches, token ids); nothing by default."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in ("model_spec", *self.shipped)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from factscope.load import load_model

        self.__dict__.update(state)
        source, device, dtype = self.model_spec
        self.lm = load_model(source, device=device, dtype=dtype)
        self._prepare()


class _BatchWorker:
    """A Ray actor holding one deserialised copy of the work (a model, say) for many batches."""

    def __init__(self, batch_fn: BatchFn[Any]) -> None:
        self.batch_fn = batch_fn

    def run(self, batch: list[Any]) -> list[Record]:
        return self.batch_fn(batch)


def _run_ray(
    batch_fn: BatchFn[Item], batches: list[list[Item]], address: str | None, workers: int | None
) -> Iterator[list[Record]]:
    """Batches on Ray actors, yielded as they finish (at most 2 in flight per actor)."""
    try:
        import ray
    except ImportError:
        raise FactscopeError(
            "--backend ray needs Ray; install it (pip install 'factscope[ray]') or use "
            "--backend local"
        ) from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise FactscopeError(
                f"cannot connect to Ray at {address!r} ({str(e).splitlines()[0]}); "
                "check --address or start the cluster with `ray start --head`"
            ) from None
    n_workers = workers or max(1, int(ray.available_resources().get("CPU", 1)))
    n_workers = min(n_workers, len(batches))
    actor_cls = ray.remote(num_cpus=1)(_BatchWorker)
    fn_ref = ray.put(batch_fn)
    actors: list[Any] = [actor_cls.remote(fn_ref) for _ in range(n_workers)]
    todo = list(reversed(batches))
    in_flight: dict[Any, Any] = {}  # object ref -> the actor computing it

    def submit(actor: Any) -> None:
        if todo:
            in_flight[actor.run.remote(todo.pop())] = actor

    for actor in actors:
        submit(actor)
        submit(actor)
    try:
        while in_flight:
            [ready], _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ready)
            submit(actor)
            yield ray.get(ready)
    finally:
        for actor in actors:
            ray.kill(actor)


class SweepOptions(TypedDict, total=False):
    """How a sweep runs, beside what it computes; what is left out takes `run_sweep_batches`'s
    default (in this process, resuming, a progress bar counting "facts")."""

    backend: str  # "local" or "ray"
    address: str | None  # the Ray cluster (None: Ray's default, one on this machine)
    workers: int | None  # Ray actors (None: one per CPU Ray sees, at most one per batch)
    force: bool  # start the run directory over instead of resuming
    desc: str  # what the progress bar counts
    progress: bool


def run_sweep_batches(
    run_dir: Path | str,
    items: Sequence[Item],
    batch_fn: BatchFn[Item],
    *,
    meta: dict[str, Any],
    batch_size: int = 1,
    backend: str = "local",
    address: str | None = None,
    workers: int | None = None,
    force: bool = False,
    desc: str = "facts",
    progress: bool = True,
) -> list[Record]:
    """Apply `batch_fn` to the facts not yet done, `batch_size` at a time; one record per fact.

    `batch_fn(batch)` returns one dict per item of `batch`, each with the item's "id": JSON-able
    values, plus numpy arrays (stored beside the records, see `load_arrays`). Records are
    appended to run_dir/records.jsonl and flushed as each batch finishes. Returns every record
    of the run (resumed and new), in the order of `items`, as read back from JSON, so a resumed
    run returns exactly what an uninterrupted one does. With backend "ray", `batch_fn` must
    pickle (it is sent once to each actor)."""
    if backend not in ("local", "ray"):
        raise FactscopeError(f"--backend {backend!r} is not known; use local or ray")
    if batch_size < 1:
        raise FactscopeError(f"batch size must be at least 1, got {batch_size}")
    ids = [item_id(item) for item in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise FactscopeError(f"fact id {dup!r} occurs twice in the sweep; ids must be unique")
    run_dir = Path(run_dir)
    meta = {**meta, "backend": backend, "n_items": len(items)}
    done = {r["id"]: r for r in open_run(run_dir, meta, force)}
    wanted = set(ids)
    todo = [item for item, i in zip(items, ids, strict=True) if i not in done]
    resumed = sum(1 for i in ids if i in done)

    batches = list(_batches(todo, batch_size))
    results = (
        _run_ray(batch_fn, batches, address, workers)
        if backend == "ray" and batches
        else _run_local(batch_fn, batches)
    )
    bar = progress_bar(len(items), progress, desc, " facts", initial=resumed, leave=True)
    start = time.perf_counter()
    new = 0
    with (run_dir / RECORDS_FILE).open("a", encoding="utf-8") as f:
        for records in results:
            lines = []
            for record in records:
                if "id" not in record:
                    raise ValueError("a sweep record has no 'id'; return one dict per item")
                if record["id"] not in wanted or record["id"] in done:
                    raise ValueError(f"sweep work returned an unexpected id {record['id']!r}")
                record = _store_arrays(run_dir, record)
                line = json.dumps(record, ensure_ascii=False)
                done[record["id"]] = json.loads(line)
                lines.append(line + "\n")
            f.write("".join(lines))
            f.flush()
            new += len(records)
            bar.update(len(records))
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - start
    bar.close()
    if progress:
        rate = f", {new / elapsed:.1f} facts/s" if new and elapsed > 0 else ""
        print(
            f"{desc}: {len(done)} of {len(items)} done ({resumed} resumed, {new} new "
            f"in {elapsed:.1f} s{rate}) -> {run_dir / RECORDS_FILE}",
            file=sys.stderr,
        )
    missing = [i for i in ids if i not in done]
    if missing:
        raise ValueError(f"sweep work returned no record for {missing[0]!r}")
    return [done[i] for i in ids]


def run_sweep(
    run_dir: Path | str,
    items: Sequence[Item],
    work_fn: Callable[[Item], Record],
    *,
    meta: dict[str, Any],
    **options: Unpack[SweepOptions],
) -> list[Record]:
    """`run_sweep_batches` with one fact at a time: `work_fn(item)` -> its record (a dict)."""
    return run_sweep_batches(run_dir, items, _PerItem(work_fn), meta=meta, batch_size=1, **options)


class _PerItem:
    """A per-fact function as a batch function (a class, so that Ray can pickle it)."""

    def __init__(self, work_fn: Callable[[Any], Record]) -> None:
        self.work_fn = work_fn

    def __call__(self, batch: list[Any]) -> list[Record]:
        return [{"id": item_id(item), **self.work_fn(item)} for item in batch]
