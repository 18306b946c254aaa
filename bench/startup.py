"""Start-up of the Numba backend (issue 11): a fresh process's import and first call.

Each measurement is a new Python process that imports a generated module and calls its
``gradients`` once on a case's problem, timing both; numba's on-disk cache lives in a directory
of its own (``NUMBA_CACHE_DIR``), empty for the cold run (the first call compiles the kernel)
and filled by it for the warm runs (the first call loads the compiled kernel). The NumPy module
is measured the same way, for scale.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_SCRIPT = """
import importlib, json, sys, time
start = time.perf_counter()
mod = importlib.import_module(sys.argv[1])
imported = time.perf_counter()
from bench.cases import CASES, problem
p = problem(CASES[sys.argv[2]])
begin = time.perf_counter()
mod.gradients(p.x, p.d, *p.weights)
end = time.perf_counter()
print(json.dumps({"import": imported - start, "first": end - begin}))
"""

# (module, case): the lecture's case for both Numba modules, the NumPy module for scale.
JOBS = (
    ("generated.bptt_e3_numba", "lecture-e3"),
    ("generated.bptt_numba", "lecture"),
    ("generated.bptt_e3", "lecture-e3"),
)


@dataclass(frozen=True)
class Startup:
    module: str
    case: str
    cache: str  # "cold" (empty cache) or "warm"
    import_seconds: float
    first_call_seconds: float

    @property
    def total(self) -> float:
        return self.import_seconds + self.first_call_seconds


def _once(module: str, case: str, cache_dir: str) -> tuple[float, float]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, module, case],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return float(found["import"]), float(found["first"])


def measure(warm_runs: int = 5) -> list[Startup]:
    """Cold once, then the median of ``warm_runs`` warm processes, per job."""
    rows = []
    for module, case in JOBS:
        with tempfile.TemporaryDirectory(prefix="bptt-numba-cache-") as cache:
            cold = _once(module, case, cache)
            warm = [_once(module, case, cache) for _ in range(warm_runs)]
        rows.append(Startup(module, case, "cold", *cold))
        rows.append(
            Startup(
                module,
                case,
                "warm",
                statistics.median(w[0] for w in warm),
                statistics.median(w[1] for w in warm),
            )
        )
    return rows


def table(rows: list[Startup]) -> list[str]:
    lines = [
        "| module | case | numba cache | import (s) | first gradients call (s) | both (s) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        cache = r.cache if "numba" in r.module else "– (NumPy)"
        lines.append(
            f"| {r.module.split('.')[-1]}.py | {r.case} | {cache} | {r.import_seconds:.3f} "
            f"| {r.first_call_seconds:.3f} | {r.total:.3f} |"
        )
    return [*lines, ""]


if __name__ == "__main__":
    print("\n".join(table(measure())))
