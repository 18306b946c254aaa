"""The runtime benchmark (issue 5, part 1): check every implementation against the generated
module, then time ``loss`` and ``gradients`` of each on each case, and report.

Order of work: build every implementation for every case in this process → check each one's
loss and gradients against the generated module (for a gated cell whose module does not exist
yet, against the first peer that runs), aborting on any disagreement → measure the float64 GEMM
peak → time → measure the peak again.

Timing is isolated by default: each (case, implementation) runs in a fresh Python process of its
own (:mod:`bench.worker`), one after the other, as a training loop on one shape would run. In
one shared process the implementations would share glibc's allocator state (whether a large
temporary costs page faults depends on what was freed before: see the page-fault column) and
the thread pools of OpenBLAS, OpenMP and XLA, so the order of the peers would change their
times. ``isolated=False`` times everything in this process instead, the implementations taking
turns round by round (quicker, for the smoke test).
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import machine, peers, startup
from bench.cases import CASES, Case, inputs
from bench.impl import ContractError, Unavailable
from bench.timing import Timing, calibrate, canary, canary_best, sample, summarize

TOLERANCE = 1e-10
CANARY_SLACK = 0.25  # a round is disturbed when the canary ran 25% slower than its best


class CheckFailed(Exception):
    """An implementation disagrees with the generated module: no timing is worth reporting."""


@dataclass(frozen=True)
class Settings:
    cases: tuple[str, ...]
    rounds: int
    min_sample: float  # seconds
    peak_size: int
    peak_rounds: int
    peers: tuple[str, ...] | None  # None: all
    seed: int
    command: str
    mode: str
    isolated: bool = True
    # Isolated timing: the rounds are split over this many fresh processes per implementation,
    # run in turns (every implementation once, then again), so that a slow spell of the machine
    # that no counter sees (a neighbour on the host) hits one process's share, not all.
    processes: int = 1
    # Extra processes, at most, for an implementation still short of undisturbed rounds.
    extra_processes: int = 0
    canary: float | None = None  # the canary's best on the fastest core (set by run())
    # Warm fresh processes per Numba module for the start-up table (0: not measured).
    startup_runs: int = 5


@dataclass
class Row:
    spec: peers.Spec
    impl: peers.Impl | None = None
    skipped: str | None = None
    error: float | None = None  # max relative error against the reference, loss and gradients
    loss: Timing | None = None
    gradients: Timing | None = None
    compile_seconds: dict[str, float] = field(default_factory=dict)
    retaken: int = 0  # disturbed rounds set aside and taken again
    kept_disturbed: int = 0  # of those, kept for want of quiet ones


@dataclass
class CaseResult:
    case: Case
    rows: list[Row] = field(default_factory=list)
    load: machine.Load | None = None  # the rest of the machine's CPU use while this case ran
    # The label of the implementation the others were checked against (set by check()).
    checked_against: str | None = None

    def reference(self) -> Row:
        key = peers.REFERENCES[self.case.cell]
        return next(r for r in self.rows if r.spec.key == key)


@dataclass
class Results:
    settings: Settings
    cases: list[CaseResult]
    peaks: list[machine.Peak]
    seconds: float = 0.0
    load: machine.Load | None = None
    code: tuple[str, str] = ("", "")  # generated/'s git state and file digests, start and end
    code_after: tuple[str, str] = ("", "")
    # The Numba backend's start-up (bench.startup), when it ran.
    startup: list[Any] = field(default_factory=list)

    def numpy_peak(self) -> float | None:
        """The highest NumPy GEMM rate of the run (measured before and after the timing)."""
        rates = [p.gflops for p in self.peaks if p.library == "NumPy"]
        return max(rates) if rates else None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def relative_error(got: Any, expected: Any) -> float:
    """‖got − expected‖∞ / ‖expected‖∞ (absolute when expected is all zeros)."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return float("inf")
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    return diff / scale if scale > 0 else diff


def build(settings: Settings, specs: Sequence[peers.Spec] = peers.SPECS) -> list[CaseResult]:
    """Every selected implementation prepared for every selected case (or why it is skipped).

    Raises CheckFailed when an implementation breaks the contract the benchmark relies on.
    """
    references = set(peers.REFERENCES.values())
    chosen = [
        s for s in specs if s.key in references or settings.peers is None or s.key in settings.peers
    ]
    why_missing = {s.key: peers.missing(s) for s in chosen}
    results = []
    for name in settings.cases:
        case = CASES[name]
        prob = inputs(case, settings.seed)
        result = CaseResult(case)
        for spec in chosen:
            if not peers.applies(spec, case):
                continue
            row = Row(spec, skipped=why_missing[spec.key])
            if row.skipped is None:
                _log(f"  preparing {case.name}: {spec.label}")
                try:
                    row.impl = spec.factory(prob)
                except Unavailable as exc:
                    row.skipped = str(exc)
                except ContractError as exc:
                    raise CheckFailed(f"case {case.name}: {spec.label}: {exc}") from exc
                else:
                    row.compile_seconds = dict(row.impl.compile_seconds)
            result.rows.append(row)
        results.append(result)
    return results


def check(results: list[CaseResult]) -> None:
    """Compare each implementation's loss() and gradients() with the generated module's, or, on
    a gated cell's case whose generated module is missing, with the first implementation that
    runs (so that the peers still agree with each other before any timing).

    Raises CheckFailed naming the case, the implementation and the quantity that disagree.
    """
    for result in results:
        ref_row = result.reference()
        if ref_row.impl is None:
            assert result.case.gated, "the RNN's generated modules always run"
            ref_row = next((r for r in result.rows if r.impl is not None), ref_row)
        if ref_row.impl is None:
            continue  # nothing runs on this case
        result.checked_against = ref_row.spec.label
        expected_loss, expected = ref_row.impl.named()
        for row in result.rows:
            if row.impl is None or row.spec.other_loss:
                continue
            got_loss, got = row.impl.named()
            errors = {
                "loss (from gradients)": relative_error(got_loss, expected_loss),
                "loss()": relative_error(float(np.asarray(row.impl.loss())), expected_loss),
                **{
                    f"∂E/∂{w}": relative_error(got[w], e) if w in got else float("inf")
                    for w, e in expected.items()
                },
                **{f"∂E/∂{w} (unexpected)": float("inf") for w in got if w not in expected},
            }
            bad = {k: v for k, v in errors.items() if not v <= TOLERANCE}
            if bad:
                detail = ", ".join(f"{k}: relative error {v:.3g}" for k, v in bad.items())
                raise CheckFailed(
                    f"case {result.case.name} ({result.case.describe()}): {row.spec.label} "
                    f"disagrees with {ref_row.spec.label} beyond {TOLERANCE:g}: {detail}"
                )
            row.error = max(errors.values())


def time_all(results: list[CaseResult], settings: Settings) -> None:
    for result in results:
        meter = machine.LoadMeter()
        rows = [r for r in result.rows if r.impl is not None]
        if settings.isolated:
            _time_isolated(result.case, rows, settings)
        else:
            for what in ("loss", "gradients"):
                _log(f"  timing {result.case.name}: {what} of {len(rows)} implementations")
                sampled = round_robin(
                    [getattr(r.impl, what) for r in rows],
                    settings.rounds,
                    settings.min_sample,
                    settings.canary,
                )
                timings, retaken, kept = choose([sampled], settings.rounds)
                for row, timing in zip(rows, timings, strict=True):
                    setattr(row, what, timing)
                    row.retaken += retaken
                    row.kept_disturbed += kept
        result.load = meter.stop()


def _time_isolated(case: Case, rows: list[Row], settings: Settings) -> None:
    """``settings.processes`` fresh processes per implementation, in turns; then, for an
    implementation still short of undisturbed rounds, up to ``settings.extra_processes`` more."""
    for row in rows:
        row.impl = None  # the worker builds its own; free this one's memory
    per_process = -(-settings.rounds // settings.processes)
    parts: dict[str, list[Sampled]] = {row.spec.key: [] for row in rows}
    compiles: dict[str, list[dict[str, float]]] = {row.spec.key: [] for row in rows}

    def one_pass(todo: list[Row], label: str) -> None:
        for row in todo:
            _log(f"  timing {case.name}: {row.spec.label} ({label})")
            sampled, compile_seconds = _worker(row, case, settings, per_process)
            parts[row.spec.key].append(sampled)
            compiles[row.spec.key].append(compile_seconds)

    for n in range(settings.processes):
        one_pass(rows, f"process {n + 1} of {settings.processes}")
    for n in range(settings.extra_processes):
        short = [r for r in rows if sum(p.clean for p in parts[r.spec.key]) < settings.rounds]
        if not short:
            break
        one_pass(short, f"extra process {n + 1}: too few undisturbed rounds")
    for row in rows:
        (row.loss, row.gradients), row.retaken, row.kept_disturbed = choose(
            parts[row.spec.key], settings.rounds
        )
        row.compile_seconds = _median_dicts(compiles[row.spec.key])


def _median_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in dicts for k in d})
    return {k: statistics.median(d[k] for d in dicts if k in d) for k in keys}


ROOT = Path(__file__).resolve().parent.parent


def _worker(
    row: Row, case: Case, settings: Settings, rounds: int
) -> tuple[Sampled, dict[str, float]]:
    job = {
        "case": case.name,
        "key": row.spec.key,
        "seed": settings.seed,
        "rounds": rounds,
        "min_sample": settings.min_sample,
        "canary": settings.canary,
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.worker", json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"bench.worker failed for {case.name} / {row.spec.key} (status {proc.returncode}):\n"
            + proc.stderr[-2000:]
        )
    out = json.loads(lines[-1])
    sampled = Sampled(
        out["reps"],
        [(d, [(t, f) for t, f in one]) for d, one in out["rounds"]],
    )
    return sampled, out["compile_seconds"]


@dataclass(frozen=True)
class Sampled:
    """Every round taken by :func:`round_robin`: how disturbed it was (0: not at all) and one
    sample (seconds, page faults per call) of each function; and the calls per sample."""

    reps: list[int]
    rounds: list[tuple[float, list[tuple[float, float]]]]

    @property
    def clean(self) -> int:
        return sum(1 for d, _ in self.rounds if d == 0)


def choose(parts: Sequence[Sampled], rounds: int) -> tuple[list[Timing], int, int]:
    """Timings from every undisturbed round of ``parts``, filled up to ``rounds`` with the least
    disturbed ones if need be; also the number of disturbed rounds and how many were kept."""
    records = [r for part in parts for r in part.rounds]
    clean = [one for d, one in records if d == 0]
    disturbed = sorted(((d, one) for d, one in records if d > 0), key=lambda item: item[0])
    kept = [one for _, one in disturbed[: max(0, rounds - len(clean))]]
    taken = clean + kept
    n_fns = len(parts[0].reps)
    timings = [
        summarize([one[i] for one in taken], max(part.reps[i] for part in parts))
        for i in range(n_fns)
    ]
    return timings, len(disturbed), len(kept)


def round_robin(
    fns: list[Callable[[], Any]], rounds: int, min_sample: float, fastest: float | None = None
) -> Sampled:
    """Samples of each function taken in turns (one round = one sample of each), after each
    function's own warm-up and calibration, until ``rounds`` undisturbed rounds are in.

    The machine is shared: a round during which other processes (or the hypervisor) took a
    noticeable share of the CPU, or before or after which a fixed canary workload ran more than
    ``CANARY_SLACK`` slower than ``fastest`` (its best on the fastest core, measured by the
    caller; or its best here), a slowdown no counter shows, is marked disturbed and
    taken again: up to 3 × ``rounds`` rounds in all, and no more once ``rounds`` rounds in a row
    were disturbed (a steady load: more rounds would not help). :func:`choose` picks the rounds.
    """
    reps = [calibrate(fn, min_sample=min_sample) for fn in fns]
    records: list[tuple[float, list[tuple[float, float]]]] = []
    clean = in_a_row = 0
    fastest = min(fastest or float("inf"), *(canary() for _ in range(5)))
    while clean < rounds and len(records) < 3 * rounds and in_a_row < rounds:
        before = canary()
        meter = machine.LoadMeter(exact=True)
        one = [sample(fn, r) for fn, r in zip(fns, reps, strict=True)]
        load = meter.stop()
        after = canary()
        fastest = min(fastest, before, after)
        slow = max(before, after) / fastest - 1  # > 0: the machine ran slower than its best
        if slow > CANARY_SLACK or (load is not None and load.disturbed()):
            share = 0.0
            if load is not None:
                share = load.others_exact if load.others_exact is not None else load.others
                share += load.steal
            records.append((max(share + 100 * slow, 1e-9), one))
            in_a_row += 1
        else:
            records.append((0.0, one))
            clean += 1
            in_a_row = 0
    return Sampled(reps, records)


def run(settings: Settings, specs: Sequence[peers.Spec] = peers.SPECS) -> Results:
    start = time.perf_counter()
    meter = machine.LoadMeter()
    cells = sorted({CASES[name].cell for name in settings.cases} - {"rnn"})
    measured = ("generated/bptt.py", "generated/bptt_e3.py", *(f"generated/{c}.py" for c in cells))
    code = (machine.source_state(("generated",)), machine.digests(measured))
    how = "each implementation in its own process" if settings.isolated else "one process"
    _log(f"bench: {settings.mode}, cases {', '.join(settings.cases)}, {how}")
    results = build(settings, specs)
    _log("bench: checking every implementation against the generated module (or a peer)")
    check(results)
    _log(f"bench: float64 GEMM peak ({settings.peak_size}²)")
    # PyTorch's own GEMM rate is only worth its import when a PyTorch peer runs.
    torch = any(
        "torch" in row.spec.requires and row.skipped is None for r in results for row in r.rows
    )
    peaks = machine.gemm_peak(
        settings.peak_size, settings.peak_rounds, "before the timing", with_torch=torch
    )
    time.sleep(1.0)  # let this process's BLAS and OpenMP threads stop spinning and go to sleep
    settings = dataclasses.replace(settings, canary=canary_best())
    time_all(results, settings)
    _log(f"bench: float64 GEMM peak ({settings.peak_size}²) again")
    peaks += machine.gemm_peak(
        settings.peak_size, settings.peak_rounds, "after the timing", with_torch=torch
    )
    code_after = (machine.source_state(("generated",)), machine.digests(measured))
    started: list[Any] = []
    numba_ran = any(
        r.spec.key == "generated-numba" and r.skipped is None for c in results for r in c.rows
    )
    if numba_ran and settings.startup_runs > 0:
        _log("bench: Numba start-up (fresh processes, cold and warm cache)")
        started = startup.measure(warm_runs=settings.startup_runs)
    return Results(
        settings,
        results,
        peaks,
        time.perf_counter() - start,
        meter.stop(),
        code,
        code_after,
        started,
    )
