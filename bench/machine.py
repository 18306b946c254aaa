"""What the numbers were measured on: CPU, cores, libraries, BLAS and threads, and the float64
GEMM peak measured in the same run (the yardstick of the GFLOP/s columns)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.timing import measure

# Set on some processors of this workplace so that old OpenBLAS builds run; they slow a current
# NumPy. The harness never changes them, it only records them.
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")


def source_state(paths: tuple[str, ...] = ("generated", "derive", "templates")) -> str:
    """The repository's commit and whether ``paths`` differ from it (read-only git calls)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *paths], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown (no git)"
    if not head:
        return "unknown (not a git checkout)"
    changed = (
        f"; uncommitted changes in {', '.join(paths)}"
        if dirty
        else f"; {', '.join(paths)} as committed"
    )
    return f"commit {head}{changed}"


def digests(paths: tuple[str, ...] = ("generated/bptt.py", "generated/bptt_e3.py")) -> str:
    """Short SHA-256 of each file, to tell whether the measured code changed during a run."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = []
    for rel in paths:
        try:
            with open(os.path.join(root, rel), "rb") as f:
                out.append(f"{rel} {hashlib.sha256(f.read()).hexdigest()[:12]}")
        except OSError:
            out.append(f"{rel} missing")
    return ", ".join(out)


def cpu_model() -> str:
    """The model name of /proc/cpuinfo, with family and model (the name alone can be vague)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
                if not line.strip():
                    break
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']}, model {info['model']})"
    return name


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in ("avx2", "fma", "avx512f") if f in have]
    except OSError:
        pass
    return []


def memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def blas_pools() -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS and OpenMP pools loaded so far (empty without it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return list(threadpool_info())


def numpy_blas() -> str:
    """NumPy's BLAS as numpy.show_config states it, plus the kernel threadpoolctl sees."""
    text = "unknown"
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        text = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # the layout of show_config differs across NumPy versions
        pass
    for pool in blas_pools():
        if pool.get("user_api") == "blas" and "numpy" in str(pool.get("filepath", "")):
            text += (
                f", {pool.get('internal_api')} kernel {pool.get('architecture')}, "
                f"{pool.get('num_threads')} threads ({pool.get('threading_layer')})"
            )
    return text


@dataclass(frozen=True)
class Load:
    """What the rest of the machine took from us while we measured, in % of wall × cores.

    others: busy CPU time (/proc/stat: user, nice, system, irq, softirq) minus this process's
    and its finished children's; /proc/stat counts 10 ms ticks, too coarse for short intervals.
    others_exact: the CPU time of every other process's threads (/proc/PID/task/TID/schedstat,
    nanoseconds; misses processes that started and ended within the interval), or None when
    not measured. steal: time the hypervisor gave the virtual CPUs to someone else.
    """

    seconds: float
    others: float
    steal: float
    others_exact: float | None = None

    def describe(self) -> str:
        return f"other processes {self.others:.0f}%, steal {self.steal:.0f}% of the CPU time"

    def disturbed(self) -> bool:
        """Whether others took more than 5% of the CPU time: more than 2 ms of it by the exact
        count, or more than 20 ms by /proc/stat's ticks; or the hypervisor stole more than 5%."""
        capacity = self.seconds * (os.cpu_count() or 1)
        if self.others_exact is not None:
            exact = self.others_exact / 100 * capacity
            if self.others_exact > 5.0 and exact > 0.002:
                return True
        coarse = (self.others + self.steal) / 100 * capacity
        return self.steal > 5.0 or (self.others > 5.0 and coarse > 0.02)


def _others_cpu() -> float:
    """Seconds of CPU the threads of every process but this one have used so far."""
    me, total = os.getpid(), 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != me]
    except OSError:
        return 0.0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:  # ended meanwhile
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f:
                    total += int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


class LoadMeter:
    """Start it, then :meth:`stop` gives the :class:`Load` over the interval (None off Linux).

    ``exact`` also sums every other process's CPU time from schedstat (a few ms per reading);
    leave it off where this process's own children run in the interval (they would count as
    others there).
    """

    def __init__(self, *, exact: bool = False) -> None:
        self.exact = exact
        self.start = self._read()

    def _read(self) -> tuple[float, float, float, float, float] | None:
        try:
            with open("/proc/stat", encoding="utf-8") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        children = os.times()  # reaped child processes (bench.worker) count as ours too
        return (
            time.perf_counter(),
            (user + nice + system + irq + softirq) / tick,
            steal / tick,
            # every thread of this process (finer than the ticks), and its finished children
            time.process_time() + children.children_user + children.children_system,
            _others_cpu() if self.exact else 0.0,
        )

    def stop(self) -> Load | None:
        end = self._read()
        if self.start is None or end is None:
            return None
        wall = end[0] - self.start[0]
        capacity = wall * (os.cpu_count() or 1)
        if capacity <= 0:
            return None
        busy = end[1] - self.start[1]
        own = end[3] - self.start[3]
        return Load(
            wall,
            max(0.0, 100 * (busy - own) / capacity),
            100 * (end[2] - self.start[2]) / capacity,
            100 * (end[4] - self.start[4]) / capacity if self.exact else None,
        )


@dataclass(frozen=True)
class Peak:
    library: str
    size: int
    gflops: float
    when: str = ""


def gemm_peak(size: int, rounds: int, when: str = "", *, with_torch: bool = True) -> list[Peak]:
    """float64 C = A B with A, B of size × size: NumPy always; PyTorch too when ``with_torch``
    and it is installed."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((size, size)), rng.standard_normal((size, size))
    flops = 2.0 * size**3
    # The best of the rounds: a peak, and the statistic least hurt by a busy neighbour.
    t = measure(lambda: a @ b, rounds=rounds, min_sample=0).best
    out = [Peak("NumPy", size, flops / t, when)]
    if not with_torch:
        return out
    try:
        import torch
    except ImportError:
        return out
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    t = measure(lambda: ta @ tb, rounds=rounds, min_sample=0).best
    out.append(Peak("PyTorch", size, flops / t, when))
    return out


def facts(peaks: list[Peak]) -> list[str]:
    """Markdown bullet lines describing the machine and the software."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    lines = [
        f"CPU: {cpu_model()} ({platform.machine()}; {', '.join(cpu_flags()) or 'no AVX2'}), "
        f"{os.cpu_count()} logical cores ({affinity} usable by this process), memory {memory()}",
        f"Python {platform.python_version()}, NumPy {np.__version__}, BLAS: {numpy_blas()}",
    ]
    env = ", ".join(
        f"{v}={os.environ[v]!r}" if v in os.environ else f"{v} unset" for v in OPENBLAS_VARS
    )
    lines.append(f"OpenBLAS environment: {env} (the harness does not change them)")
    threads = [f"{v}={os.environ[v]!r}" for v in THREAD_VARS if v in os.environ]
    lines.append(
        "Thread settings from the environment: " + (", ".join(threads) if threads else "none")
    )
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        mkl = "MKL" if torch.backends.mkl.is_available() else "no MKL"
        lines.append(
            f"PyTorch {torch.__version__}: {torch.get_num_threads()} intra-op and "
            f"{torch.get_num_interop_threads()} inter-op threads, CPU BLAS {mkl}"
        )
    elif (v := _version("torch")) is not None:
        lines.append(f"PyTorch {v} (installed, not run)")
    else:
        lines.append("PyTorch: not installed")
    if "jax" in sys.modules:
        jax = sys.modules["jax"]
        devices = ", ".join(str(d) for d in jax.devices())
        lines.append(
            f"JAX {jax.__version__}, jaxlib {_version('jaxlib')}: backend "
            f"{jax.default_backend()} ({devices}), x64 on, XLA's default CPU thread pool"
        )
    else:
        lines.append(f"JAX: {'installed, not run' if _version('jax') else 'not installed'}")
    lines.append(f"autograd: {_version('autograd') or 'not installed'}")
    try:
        n_threads = len(os.listdir("/proc/self/task"))
        lines.append(
            f"OS threads in the benchmark process at the end (all pools together): {n_threads}"
        )
    except OSError:
        pass
    for p in peaks:
        lines.append(
            f"float64 GEMM peak, {p.when} ({p.library}, {p.size}×{p.size} @ {p.size}×{p.size}, "
            f"best of the rounds): {p.gflops / 1e9:.1f} GFLOP/s"
        )
    return lines
