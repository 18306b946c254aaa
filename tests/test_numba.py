"""The Numba backend (issue 11): its committed modules against central differences and against
the NumPy backend, in each of its three regimes, from several threads; its kernels compiled once
per dtype for every accepted input; its packaging (no numba imported by `import generated`, a
clear ImportError without numba, no error when numba cannot cache); the command line.

The contract, input-check and error-text tests of the NumPy modules run on these modules too
(tests/test_inputs.py). Outside CI a missing numba skips this file with the install hint; under
CI=true it fails.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numba_modules
import numpy as np
import pytest
from conftest import ROOT
from gradcheck import gradient_errors, random_problem

from bench.cases import CASES, problem
from derive import Config, codegen, derive
from generated import bptt, bptt_e3

numba = pytest.importorskip("numba") if not numba_modules.IN_CI else __import__("numba")
bptt_numba = numba_modules.load("bptt_numba")
bptt_e3_numba = numba_modules.load("bptt_e3_numba")

TOL = 1e-6  # central differences, as for the NumPy modules
SAME = 1e-12  # norm-wise relative difference from the NumPy backend (float64)
KERNELS = ("_forward_kernel", "_loss_kernel", "_gradients_kernel", "_state_steps", "_delta_steps")


def _scale(sizes: Any) -> float:
    """Weights scaled by 1/√n_s (as the bench's are): with n_s = 24 at the tests' usual 0.6 the
    state saturates and central differences lose digits on large losses."""
    return 0.6 * min(1.0, (3 / sizes[1]) ** 0.5)


def _norm_rel(got: Any, want: Any) -> float:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    scale = float(np.linalg.norm(want))
    diff = float(np.linalg.norm(got - want))
    return diff / scale if scale > 0 else diff


def _max_difference(a: Any, b: Any) -> float:
    return max(_norm_rel(x, y) for x, y in zip(a, b, strict=True))


# T·B·n_s² and B·n_s² pick the regime: one kernel; NumPy/BLAS products with the recurrences
# in kernels (T·B·n_s² ≥ _DOT_LINE); NumPy alone (B·n_s² ≥ _BLAS_LINE).
REGIMES = [
    pytest.param(3, None, (2, 3, 4), id="kernel-T3"),
    pytest.param(7, 4, (3, 5, 2), id="kernel-batched"),
    pytest.param(1, 2, (1, 1, 1), id="kernel-sizes-1"),
    pytest.param(40, 2, (2, 24, 3), id="steps-in-kernels"),
    pytest.param(70, None, (3, 24, 2), id="steps-in-kernels-unbatched"),
    pytest.param(4, 2, (3, 200, 2), id="numpy-blas"),
]


def test_regimes_are_what_the_sizes_say() -> None:
    m = bptt_numba
    assert not m._numpy_path(7, 4, 5) and not m._numpy_path(3, 1, 3)
    assert m._numpy_path(40, 2, 24) and m._numpy_path(70, 1, 24)
    assert not m._step_blas(2, 24) and not m._step_blas(1, 24)
    assert m._step_blas(2, 200)


@pytest.mark.parametrize(("T", "batch", "sizes"), REGIMES)
def test_gradients_match_central_differences(T: int, batch: int | None, sizes: Any) -> None:
    rng = np.random.default_rng(T * 31 + (batch or 0))
    x, d, weights, s0 = random_problem(rng, T, sizes, batch, True, _scale(sizes))
    errors = gradient_errors(bptt_numba, x, d, weights, s0)
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parametrize("batch", [None, 3])
def test_lecture_module_matches_central_differences(batch: int | None) -> None:
    x, d, weights, s0 = random_problem(np.random.default_rng(5), 3, (2, 3, 4), batch, True)
    errors = gradient_errors(bptt_e3_numba, x, d, weights, s0)
    assert max(errors.values()) <= TOL, errors


def test_the_check_fails_on_a_wrong_gradient() -> None:
    """The oracle above is not blind: ∂E/∂W_s off by one part in 10⁴ is caught."""
    x, d, weights, s0 = random_problem(np.random.default_rng(2), 5, (2, 3, 4), 2, True)

    class Wrong:
        loss = staticmethod(bptt_numba.loss)

        @staticmethod
        def gradients(*args: Any) -> Any:
            g = bptt_numba.gradients(*args)
            return g._replace(W_s=g.W_s * (1 + 1e-4))

    assert max(gradient_errors(bptt_numba, x, d, weights, s0).values()) <= TOL
    assert gradient_errors(Wrong, x, d, weights, s0)["W_s"] > TOL


@pytest.mark.parametrize(("T", "batch", "sizes"), REGIMES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_equal_to_the_numpy_backend(T: int, batch: int | None, sizes: Any, reduction: str) -> None:
    rng = np.random.default_rng(T + 1000 * (batch or 0))
    x, d, weights, s0 = random_problem(rng, T, sizes, batch, True, _scale(sizes))
    got = bptt_numba.gradients(x, d, *weights, s0, reduction=reduction)
    want = bptt.gradients(x, d, *weights, s0, reduction=reduction)
    assert _max_difference(got, want) <= SAME
    assert (
        _max_difference(bptt_numba.forward(x, *weights, s0), bptt.forward(x, *weights, s0)) <= SAME
    )
    assert _norm_rel(bptt_numba.loss(x, d, *weights, s0), bptt.loss(x, d, *weights, s0)) <= SAME


@pytest.mark.parametrize("name", ["lecture", "small", "medium", "long", "lecture-e3"])
def test_equal_to_the_numpy_backend_on_the_bench_cases(name: str) -> None:
    p = problem(CASES[name])
    ours, theirs = (bptt_e3_numba, bptt_e3) if CASES[name].last_only else (bptt_numba, bptt)
    got = ours.gradients(p.x, p.d, *p.weights)
    want = theirs.gradients(p.x, p.d, *p.weights)
    assert _max_difference(got, want) <= SAME


def test_the_equality_check_sees_a_difference() -> None:
    a = (1.0, np.ones(3))
    assert _max_difference(a, a) == 0.0
    assert _max_difference(a, (1.0, np.ones(3) * (1 + 1e-11))) > SAME


def test_float32_keeps_its_dtype_and_agrees() -> None:
    x, d, weights, s0 = random_problem(np.random.default_rng(9), 6, (2, 3, 4), 2, True)
    single = [np.asarray(a, dtype=np.float32) for a in (x, d, *weights, s0)]
    got = bptt_numba.gradients(*single)
    assert all(g.dtype == np.float32 for g in got[1:])
    assert _max_difference(got, bptt.gradients(x, d, *weights, s0)) <= 1e-5


def test_calls_from_several_threads_at_once_are_correct() -> None:
    problems = [
        random_problem(np.random.default_rng(i), T, sizes, batch, True)
        for i, (T, batch, sizes) in enumerate(
            [(5, 2, (2, 3, 4)), (3, 4, (2, 3, 4)), (7, None, (2, 3, 4)), (40, 2, (2, 24, 4))]
        )
    ]
    serial = [bptt_numba.gradients(x, d, *w, s0) for x, d, w, s0 in problems]
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda p: bptt_numba.gradients(p[0], p[1], *p[2], p[3]), problems * 10)
        )
    for got, want in zip(results, serial * 10, strict=True):
        assert got.loss == want.loss
        for name in ("W_x", "W_s", "W_y"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


@pytest.mark.parametrize("mod", [bptt_numba, bptt_e3_numba], ids=["bptt_numba", "bptt_e3_numba"])
def test_warmup_covers_every_accepted_input(mod: Any) -> None:
    """After warmup(), read-only, Fortran-order, strided, integer and list inputs run on the two
    compiled signatures per kernel: nothing is compiled again."""
    mod.warmup()
    counts = {k: len(getattr(mod, k).signatures) for k in KERNELS}
    assert all(n == 2 for n in counts.values()), counts
    T = 3
    x, d, w, s0 = random_problem(np.random.default_rng(1), T, (2, 3, 4), 2, True)
    readonly = [a.copy() for a in (x, d, *w, s0)]
    for a in readonly:
        a.setflags(write=False)
    calls = [
        readonly,
        [np.repeat(x, 2, axis=1)[:, ::2], d, *(np.asfortranarray(a) for a in w), s0],
        [a.astype(np.float32) for a in (x, d, *w, s0)],
        [(x * 3).astype(int), d.tolist(), *(a.tolist() for a in w), s0],
    ]
    for args in calls:
        mod.gradients(*args)
        mod.loss(*args)
        mod.forward(args[0], *args[2:])
    if mod is bptt_numba:  # the step kernels' regime
        xl, dl, wl, s0l = random_problem(np.random.default_rng(2), 40, (2, 24, 4), 2, True)
        assert mod._numpy_path(40, 2, 24)
        mod.gradients(np.asfortranarray(xl), dl, *wl, s0l)
    assert {k: len(getattr(mod, k).signatures) for k in KERNELS} == counts


def test_config_names_the_backend() -> None:
    assert bptt_numba.CONFIG == {**bptt.CONFIG, "backend": "numba"}
    assert bptt_e3_numba.CONFIG == {**bptt_e3.CONFIG, "backend": "numba"}


def test_kernels_are_njit_with_cache_and_nogil_only() -> None:
    source = (ROOT / "generated" / "bptt_numba.py").read_text(encoding="utf-8")
    assert "numba.njit(cache=True, nogil=True)" in source
    assert "fastmath" not in source and "parallel" not in source and "prange" not in source
    for name in KERNELS:
        assert f"@_jit\ndef {name}(" in source
        options = getattr(bptt_numba, name).targetoptions
        assert options.get("nogil") is True and not options.get("parallel"), options


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_generated_needs_no_numba_and_the_numba_modules_say_how_to_get_it() -> None:
    blocked = """
        import sys
        sys.modules["numba"] = None  # as if numba were not installed
        import generated
        from generated import bptt, bptt_e3
        assert "numba" not in sys.modules or sys.modules["numba"] is None
        assert not any(m.endswith("_numba") for m in sys.modules)
        for name in ("bptt_numba", "bptt_e3_numba"):
            try:
                __import__("generated." + name)
            except ImportError as exc:
                print(exc)
            else:
                raise SystemExit(name + " imported without numba")
    """
    out = _python(blocked)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all("pip install 'bptt-derive[numba]'" in line for line in lines)


def test_no_writable_cache_falls_back_to_no_cache() -> None:
    """numba raises RuntimeError at decoration when it cannot cache; the module then compiles
    without the on-disk cache, silently."""
    code = """
        import numba
        plain = numba.njit
        def njit(*args, **kw):
            if kw.get("cache"):
                raise RuntimeError("cannot cache function: no locator available")
            return plain(*args, **kw)
        numba.njit = njit
        import warnings
        warnings.simplefilter("error")
        import numpy as np
        from generated import bptt_e3_numba as m, bptt_e3
        x = np.linspace(-1, 1, 6).reshape(3, 2); d = np.ones((3, 2)); W = np.eye(2) / 2
        a, b = m.gradients(x, d, W, W, W), bptt_e3.gradients(x, d, W, W, W)
        assert abs(a.loss - b.loss) <= 1e-12 * abs(b.loss)
        assert not m._gradients_kernel._cache.__class__.__name__.endswith("FunctionCache")
        print("ok")
    """
    out = _python(code)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_cli_writes_a_numba_module_and_refuses_truncation(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "derive", "--out-dir", str(tmp_path)]
    ok = subprocess.run(
        [*run, "--steps", "any", "--loss-steps", "all", "--backend", "numba"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    (written,) = tmp_path.glob("*.py")
    assert written.name == "bptt_tanh_linear_se_all_c1_Tany_numba.py"
    assert written.read_text(encoding="utf-8") == (ROOT / "generated" / "bptt_numba.py").read_text(
        encoding="utf-8"
    ).replace("bptt_numba needs numba", f"{written.stem} needs numba")
    refused = subprocess.run(
        [*run, "--steps", "any", "--truncate", "2", "--backend", "numba"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    assert "backend numba: truncated BPTT" in refused.stderr


CONFIGS = [
    pytest.param(Config(output="softmax", loss="cross-entropy", loss_steps="all"), id="ce"),
    pytest.param(Config(output="softmax", loss_steps="all", scale="1/2"), id="softmax-se"),
    pytest.param(Config(activation="sigmoid", loss_steps="last"), id="sigmoid-last"),
    pytest.param(Config(activation="relu", loss_steps="all"), id="relu"),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_other_configurations_equal_their_numpy_modules(config: Config, tmp_path: Path) -> None:
    """Every node the kernels print (softmax, log-softmax, Φ of each kind, E_N alone, a scale),
    generated for both backends and compared on each regime."""
    d = derive(config)
    mods = {}
    for backend in ("numpy", "numba"):
        name = f"m_{backend}_{config.activation_name}_{config.output}_{config.loss_steps}"
        path = tmp_path / f"{name}.py"
        path.write_text(
            codegen.module_source(d, loop=True, name=name, backend=backend), encoding="utf-8"
        )
        sys.path.insert(0, str(tmp_path))
        try:
            mods[backend] = __import__(name)
        finally:
            sys.path.remove(str(tmp_path))
    for i, (T, batch, sizes) in enumerate(
        [(3, None, (2, 3, 4)), (5, 3, (3, 2, 3)), (40, 2, (2, 3, 3))]
    ):
        x, dd, weights, s0 = random_problem(
            np.random.default_rng(i), T, sizes, batch, True, _scale(sizes)
        )
        if config.loss == "cross-entropy":
            dd = np.abs(dd)
        got = mods["numba"].gradients(x, dd, *weights, s0)
        want = mods["numpy"].gradients(x, dd, *weights, s0)
        assert _max_difference(got, want) <= SAME, (T, batch)
        errors = gradient_errors(mods["numba"], x, dd, weights, s0)
        assert max(errors.values()) <= TOL, errors
