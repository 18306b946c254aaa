"""Wall-clock measurement: warm-up, inner repetitions calibrated to a minimum sample length,
then the median of several rounds (time.perf_counter, the garbage collector off while a sample
runs, as timeit does)."""

from __future__ import annotations

import gc
import math
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median, quartiles and minimum over ``rounds`` samples of ``reps`` calls;
    ``faults``: the median of the samples' minor page faults per call (every thread of the
    process counted): memory the kernel had to hand out afresh, e.g. for large temporaries
    that the C allocator maps and unmaps at every call."""

    median: float
    q1: float
    q3: float
    best: float
    rounds: int
    reps: int
    faults: float = 0.0

    @property
    def iqr_percent(self) -> float:
        return 100.0 * (self.q3 - self.q1) / self.median if self.median > 0 else 0.0


def sample(fn: Callable[[], Any], reps: int) -> tuple[float, float]:
    """Seconds and minor page faults per call of ``reps`` back-to-back calls, the garbage
    collector off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        seconds = time.perf_counter() - start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        return seconds / reps, faults / reps
    finally:
        if enabled:
            gc.enable()


def calibrate(fn: Callable[[], Any], *, min_sample: float, warmup: float = 0.02) -> int:
    """Warm ``fn`` up (at least twice and ``warmup`` seconds), then return the repetitions that
    make one sample last ≥ ``min_sample`` seconds."""
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < warmup:
        fn()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    return max(1, math.ceil(min_sample / per_call)) if per_call > 0 else 1


def summarize(samples: list[tuple[float, float]], reps: int) -> Timing:
    seconds = sorted(t for t, _ in samples)
    if len(seconds) >= 2:
        q1, _, q3 = statistics.quantiles(seconds, n=4, method="inclusive")
    else:
        q1 = q3 = seconds[0]
    faults = statistics.median(f for _, f in samples)
    return Timing(statistics.median(seconds), q1, q3, seconds[0], len(seconds), reps, faults)


def measure(
    fn: Callable[[], Any], *, rounds: int, min_sample: float, warmup: float = 0.02
) -> Timing:
    """Time ``fn`` alone: warm-up and calibration, then ``rounds`` samples."""
    reps = calibrate(fn, min_sample=min_sample, warmup=warmup)
    return summarize([sample(fn, reps) for _ in range(rounds)], reps)


def _canary_work() -> int:
    total = 0
    for i in range(3000):
        total += i * i % 7
    return total


def canary() -> float:
    """Seconds of a fixed single-threaded pure-Python workload (~0.15 ms), the best of five.

    The machine can slow down without any counter of ours showing it (another virtual machine
    on the same physical core); a slower canary than its best is the only sign of that."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        _canary_work()
        best = min(best, time.perf_counter() - start)
    return best


def canary_best(tries: int = 30) -> float:
    """The canary's best on the fastest core: each core in turn (this thread pinned to it),
    ``tries`` canaries there. The cores of a virtual machine need not run at the same speed
    (one can share its physical core with a busy neighbour), and a process can stay on the slow
    one for its whole life: its own best canary would then not show that it is slow."""
    import os

    if not hasattr(os, "sched_getaffinity"):
        return min(canary() for _ in range(tries))
    allowed = os.sched_getaffinity(0)
    best = float("inf")
    try:
        for cpu in sorted(allowed):
            os.sched_setaffinity(0, {cpu})
            best = min(best, *(canary() for _ in range(tries)))
    finally:
        os.sched_setaffinity(0, allowed)
    return best
