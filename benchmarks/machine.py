"""What every benchmark prints first: this machine's floors and whether it is busy.

    from machine import machine_report, median_time   # benchmarks/ is on sys.path
    floors = machine_report()   # prints, returns Floors(gflops, gbps, ...)

Machines differ by 10x or more (float32 matrix products from ~27 to ~390 GFLOP/s), so
every target is a ratio: against a baseline run in the same process, and against the
floor of the work counted in FLOPs and bytes (`floor_seconds`). A second process busy on a
2-core machine can slow torch by an order of magnitude, so the load average and torch's
thread count are printed with a warning when the machine is not idle.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 1) -> float:
    """Median wall time of `fn()` in seconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass(frozen=True)
class Floors:
    gflops: float  # float32 matrix-product rate, GFLOP/s
    gbps: float  # memory read rate, GB/s
    threads: int  # torch intra-op threads
    load: float  # 1-minute load average when measured
    cores: int

    @property
    def busy(self) -> bool:
        return self.load > 0.5 * self.cores

    def seconds(self, gflop: float = 0.0, gbytes: float = 0.0) -> float:
        """The floor of a job: the larger of its compute time and its memory time."""
        return max(gflop / self.gflops, gbytes / self.gbps)


def measure_floors() -> Floors:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    matmul = median_time(lambda: a @ b, repeats=5)
    big = torch.ones(1 << 28)  # 1 GiB, far larger than any cache
    read = median_time(lambda: big.sum(), repeats=5)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return Floors(
        gflops=2 * 2048**3 / matmul / 1e9,
        gbps=big.numel() * 4 / read / 1e9,
        threads=torch.get_num_threads(),
        load=load,
        cores=os.cpu_count() or 1,
    )


def machine_report(title: str = "") -> Floors:
    """Measure and print this machine's floors; warn when it is busy."""
    floors = measure_floors()
    head = f"{title}: " if title else ""
    print(
        f"{head}machine: {floors.cores} cores, torch {torch.__version__} with "
        f"{floors.threads} threads; float32 matmul {floors.gflops:.0f} GFLOP/s, "
        f"memory read {floors.gbps:.1f} GB/s; load average {floors.load:.2f}"
    )
    if floors.busy:
        print(
            f"WARNING: the machine is busy (load {floors.load:.2f} on {floors.cores} cores); "
            "timings below may be several times slower than on an idle machine"
        )
    return floors


def busy_report(title: str = "") -> float:
    """Before timing (cheap, no floors measured): print the load average and torch's thread
    count, with a warning when the machine is busy. Returns the 1-minute load average."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cores = os.cpu_count() or 1
    head = f"{title}: " if title else ""
    threads = torch.get_num_threads()
    print(f"{head}load average {load:.2f} on {cores} cores, torch {threads} threads")
    if load > 0.5 * cores:
        print(
            f"WARNING: the machine is busy (load {load:.2f} on {cores} cores); the times "
            "below may be several times those of an idle machine, and so may the ratios"
        )
    return load


def interleaved_medians(fns: list[Callable[[], object]], repeats: int = 7) -> list[float]:
    """Median wall time of each of `fns`, called in turn `repeats` times after one untimed
    call each: a change in the machine's load weighs on all of them alike, so their ratios
    hold even when the times do not."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]
