"""Derivation performance (issue 5, part 2): how long the generator and the proof take, and how
the derivation time and the generated code's size grow with the number of steps N.

Measured: the command behind `make derive` (``python -m derive --out-dir DIR``, into a temporary
directory) and the proof (``python -m derive --check``) as subprocesses, wall time from start to
exit; the same work in this process (``generate.standard_files()`` and
``prove(derive(), (3, 3, 3))``) without the interpreter's start-up; then, for each N, the
straight-line module (``codegen.module_source(derive(Config(steps=N)), loop=False)``, loss E_N)
and the loop module (``loop=True``, printed from the derivation's generic step whatever N is).
SymPy's cache is cleared before each measurement so that no N profits from the one before.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench import machine


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _clear_sympy_cache() -> None:
    from sympy.core.cache import clear_cache

    clear_cache()


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    _clear_sympy_cache()
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    seconds: float
    status: int
    tail: str  # the last line it printed


def _command(*args: str) -> Command:
    argv = (sys.executable, "-m", "derive", *args)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return Command(argv, seconds, proc.returncode, text[-1] if text else "")


@dataclass(frozen=True)
class Point:
    N: int
    derive_s: float  # derive(Config(steps=N)) alone
    terms: int  # chain-rule terms over the three weights
    straight_s: float  # module_source(loop=False) of that derivation: plan + print + render + ruff
    format_s: float  # ruff format of that source alone (a subprocess)
    straight_bytes: int
    straight_lines: int
    loop_s: float
    loop_bytes: int
    loop_lines: int


def sweep(steps: Sequence[int], limit: float) -> tuple[list[Point], int | None]:
    """One Point per N, in order; stops after the first N whose straight-line module took more
    than ``limit`` seconds and returns that N as the second value (None when it ran through)."""
    from derive import Config, codegen, derive
    from derive.render import format_python

    # One-time costs (imports, the jinja environment, ruff's first start) outside the curve.
    codegen.module_source(derive(Config(steps=1)), loop=False, name="warm")
    points: list[Point] = []
    for N in steps:
        config = Config(steps=N)
        t_derive, d = _timed(partial(derive, config))
        terms = sum(len(e.terms) for e in d.expansions.values())
        t_straight, src = _timed(partial(codegen.module_source, d, loop=False, name="x"))
        t_format, _ = _timed(partial(format_python, src, "x.py"))
        t_loop, loop_src = _timed(partial(codegen.module_source, d, loop=True, name="x"))
        p = Point(
            N,
            t_derive,
            terms,
            t_straight,
            t_format,
            len(src.encode()),
            len(src.splitlines()),
            t_loop,
            len(loop_src.encode()),
            len(loop_src.splitlines()),
        )
        points.append(p)
        _log(
            f"  N = {N}: derive {t_derive:.2f} s, straight-line {t_straight:.2f} s "
            f"({p.straight_bytes} bytes), loop {t_loop:.2f} s ({p.loop_bytes} bytes)"
        )
        if t_straight > limit:
            return points, N
    return points, None


def _standard_outputs() -> tuple[str, float, list[str]]:
    """Time generate.standard_files(); if the notes cannot be generated yet, module_sources()."""
    from derive import generate

    try:
        seconds, files = _timed(generate.standard_files)
        return "generate.standard_files()", seconds, sorted(files)
    except Exception as exc:  # the notes are another helper's work in progress
        _log(f"  standard_files() failed ({type(exc).__name__}: {exc}); timing module_sources()")
        seconds, files = _timed(generate.module_sources)
        what = (
            f"generate.module_sources() (standard_files() failed here: "
            f"{type(exc).__name__}: {exc}; the notes are not included)"
        )
        return what, seconds, sorted(files)


def report(steps: Sequence[int], limit: float, command: str) -> str:
    start = time.perf_counter()
    meter = machine.LoadMeter()
    with tempfile.TemporaryDirectory() as tmp:
        _log("derivation: python -m derive --out-dir TMP")
        make_derive = _command("--out-dir", str(Path(tmp) / "generated"))
    _log("derivation: python -m derive --check")
    check = _command("--check")
    _log("derivation: in-process standard outputs and proof")
    import derive as d

    what, t_standard, files = _standard_outputs()
    t_proof, proof = _timed(lambda: d.prove(d.derive(), (3, 3, 3)))
    _log(f"derivation: sweep over N = {steps[0]}..{steps[-1]}")
    points, stopped = sweep(steps, limit)
    total = time.perf_counter() - start
    load = meter.stop()

    def cmd(c: Command) -> str:
        status = "ok" if c.status == 0 else f"exit status {c.status}: {c.tail}"
        return f"{c.seconds:.2f} s ({status})"

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Derivation performance",
        "",
        f"Produced by `{command}` on {now}, in {total:.0f} s"
        + (f"; meanwhile {load.describe()}." if load else "."),
        "",
        f"- Code measured: {machine.source_state()}.",
        f"- Machine: {machine.cpu_model()}, {machine.memory()}; Python "
        f"{platform.python_version()}, SymPy {importlib.metadata.version('sympy')}, "
        f"ruff {importlib.metadata.version('ruff')} (the generator formats with it, "
        "in a subprocess per module).",
        "",
        "## The generator and the proof",
        "",
        "| what | wall time |",
        "|---|---:|",
        f"| `python -m derive --out-dir DIR` (what `make derive` runs; a temporary DIR; "
        f"interpreter start-up and imports included) | {cmd(make_derive)} |",
        f"| `python -m derive --check` (the proof at sizes 3,3,3; start-up included) "
        f"| {cmd(check)} |",
        f"| in process: {what}: {len(files)} files | {t_standard:.2f} s |",
        f"| in process: `prove(derive(), (3, 3, 3))` ({'PROVEN' if proof.ok else 'FAILED'}) "
        f"| {t_proof:.2f} s |",
        "",
        "## Growth with the number of steps N",
        "",
        "Straight-line form: `codegen.module_source(d, loop=False, name='x')` of "
        "`d = derive(Config(steps=N))` (loss E_N, the lecture's configuration otherwise); its "
        "time is the plan, printing, rendering and the ruff format subprocess (`derive()` is "
        "its own column). Loop form: `loop=True` of the same derivation; it is printed from the "
        "derivation's generic step whatever N is, so its size is constant. SymPy's cache is "
        "cleared before every measurement; one warm-up module is generated before the sweep.",
        "",
        "| N | chain-rule terms | derive() (s) | straight-line module (s) | of which ruff "
        "format (s) | straight-line bytes | straight-line lines | loop module (s) | loop bytes "
        "| loop lines |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p.N} | {p.terms} | {p.derive_s:.3f} | {p.straight_s:.3f} | {p.format_s:.3f} "
            f"| {p.straight_bytes:,} | {p.straight_lines:,} | {p.loop_s:.3f} | "
            f"{p.loop_bytes:,} | {p.loop_lines:,} |"
        )
    lines.append("")
    if stopped is not None:
        lines.append(
            f"The sweep stopped after N = {stopped}: its straight-line module took more than "
            f"{limit:g} s."
        )
    else:
        lines.append(f"The sweep ran through every N asked for ({len(points)} values).")
    lines += ["", *_growth(points)]
    return "\n".join(lines).rstrip() + "\n"


def _growth(points: list[Point]) -> list[str]:
    """Fitted exponents k of time ≈ a·N^k and size ≈ b·N^k from the larger half of the sweep."""
    import numpy as np

    big = [p for p in points if p.N >= max(5, points[-1].N // 2)] if points else []
    if len(big) < 3:
        return []
    logN = np.log([p.N for p in big])

    def slope(values: list[float]) -> float:
        return float(np.polyfit(logN, np.log(values), 1)[0])

    k_derive = slope([p.derive_s for p in big])
    k_time = slope([p.straight_s for p in big])
    k_bytes = slope([p.straight_bytes for p in big])
    k_lines = slope([p.straight_lines for p in big])
    return [
        f"Growth over N = {big[0].N}..{big[-1].N} (least-squares slope of log–log): "
        f"derive() ~ N^{k_derive:.1f}, straight-line module time ~ N^{k_time:.1f}, "
        f"its bytes ~ N^{k_bytes:.1f}, its lines ~ N^{k_lines:.1f}.",
    ]


def parse_steps(text: str) -> list[int]:
    """'1-50', '1,2,3,5,10' or a mix like '1-5,10,20'."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = (int(v) for v in part.split("-", 1))
            out += range(lo, hi + 1)
        elif part:
            out.append(int(part))
    if not out or min(out) < 1:
        raise ValueError(f"--steps: expected N ≥ 1 like 1-50 or 1,2,3, got {text!r}")
    return sorted(set(out))
