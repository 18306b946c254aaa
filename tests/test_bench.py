"""Smoke tests of the benchmark harness (bench/, `make bench`): it runs on the lecture's tiny case,
checks every implementation before timing, refuses a wrong one, and skips a peer whose package
is missing. No wall-clock asserts: only that the harness runs and reports.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from bench import derivation, peers, report, run
from bench.__main__ import main
from bench.cases import CASES, problem

# The peers that need a package of the `bench` extra, and that package.
OPTIONAL = {
    "torch": "torch",
    "torch-rnn": "torch",
    "jax": "jax",
    "autograd": "autograd",
    "generated-numba": "numba",
}
ALWAYS = ("generated", "generated-kernels", "numpy-efficient", "numpy-per-step")


def _settings(
    cases: tuple[str, ...], peer_keys: tuple[str, ...] | None = None, *, isolated: bool = False
) -> run.Settings:
    return run.Settings(
        cases=cases,
        rounds=1,
        min_sample=0.0,
        peak_size=32,
        peak_rounds=1,
        peers=peer_keys,
        seed=0,
        command="pytest",
        mode="smoke",
        isolated=isolated,
        startup_runs=0,
    )


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_harness_runs_every_importable_peer_on_the_lecture_cases() -> None:
    results = run.run(_settings(("lecture", "lecture-e3")))
    text = report.markdown(results)
    for result in results.cases:
        rows = {row.spec.key: row for row in result.rows}
        for key in ALWAYS:
            assert rows[key].gradients is not None and rows[key].loss is not None, key
            error = rows[key].error
            assert error is not None and error <= run.TOLERANCE, key
        for key, module in OPTIONAL.items():
            if _installed(module):
                error = rows[key].error
                assert rows[key].gradients is not None, key
                assert error is not None and error <= run.TOLERANCE, key
            else:
                assert rows[key].skipped is not None and rows[key].gradients is None
    assert "### lecture: T = 3, B = 1, n = 3" in text
    assert "### lecture-e3:" in text and "bptt.py (Σ_t E_t) †" in text
    assert "| generated (bptt.py / bptt_e3.py) |" in text
    assert "float64 GEMM peak" in text
    assert "## The faster generated backend against the best peer" in text
    for case in ("lecture", "lecture-e3"):
        assert f"| {case} | " in text.split("against the best peer", 1)[1]


def test_isolated_timing_runs_each_implementation_in_its_own_process() -> None:
    results = run.run(_settings(("lecture",), ("numpy-efficient",), isolated=True))
    rows = {row.spec.key: row for row in results.cases[0].rows}
    assert set(rows) == {"generated", "numpy-efficient"}
    for row in rows.values():
        assert row.impl is None  # built in the worker, not here
        assert row.loss is not None and row.gradients is not None
        assert row.gradients.rounds == 1 and row.gradients.reps >= 1
    assert "fresh Python processes of its own" in report.markdown(results)


def test_every_peer_agrees_with_the_generated_module_on_a_batched_case() -> None:
    """A tiny batched case with T > 3 (the lecture's has B = 1): the check alone, no timing."""
    case = dataclasses.replace(CASES["small"], name="tiny", T=5, B=3, n=4)
    prob = problem(case, seed=3)
    expected = peers.Generated(prob).values()
    for spec in peers.SPECS:
        if spec.cases or peers.missing(spec) is not None:
            continue
        got = spec.factory(prob).values()
        for g, e in zip(got, expected, strict=True):
            assert run.relative_error(g, e) <= run.TOLERANCE, spec.key


class _WrongGradient(peers.NumpyEfficient):
    """A deliberately wrong peer: ∂E/∂W_s off by one part in 10⁸."""

    def values(self) -> peers.Values:
        E, gx, gs, gy = super().values()
        return E, gx, gs * (1 + 1e-8), gy


def test_check_refuses_a_wrong_gradient_before_timing() -> None:
    specs = (*peers.SPECS[:1], peers.Spec("wrong", "deliberately wrong", _WrongGradient))
    with pytest.raises(run.CheckFailed, match=r"deliberately wrong.*∂E/∂W_s"):
        run.run(_settings(("lecture",)), specs)


def test_a_peer_whose_package_is_missing_is_skipped() -> None:
    absent = peers.Spec("absent", "absent peer", peers.NumpyEfficient, requires=("no_such_pkg_x",))
    results = run.run(_settings(("lecture",)), (*peers.SPECS[:1], absent))
    row = results.cases[0].rows[1]
    assert row.skipped is not None and "no_such_pkg_x" in row.skipped
    assert "| absent peer | skipped: no_such_pkg_x" in report.markdown(results)


def test_relative_error_sees_a_difference() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert run.relative_error(a, a) == 0.0
    assert run.relative_error(a * (1 + 1e-6), a) == pytest.approx(1e-6)
    assert run.relative_error(a[:1], a) == float("inf")


def test_command_line_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    argv = ["--cases", "lecture", "--rounds", "1", "--min-sample-ms", "0", "--peak-size", "32"]
    status = main([*argv, "--peers", "numpy-efficient", "--out", str(out)])
    assert status == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark:") and "NumPy, efficient (hand)" in text
    assert "python -m bench --cases lecture" in text


def test_command_line_rejects_an_unknown_case() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--cases", "huge", "--out", "-"])
    assert exc.value.code == 2


def test_derivation_sweep_and_its_stop() -> None:
    points, stopped = derivation.sweep([1, 2], limit=600.0)
    assert stopped is None and [p.N for p in points] == [1, 2]
    assert points[1].straight_bytes > points[0].straight_bytes
    assert points[1].loop_bytes == points[0].loop_bytes
    points, stopped = derivation.sweep([1, 2, 3], limit=0.0)
    assert stopped == 1 and len(points) == 1


def test_derivation_steps_parse() -> None:
    assert derivation.parse_steps("1-3,10,2") == [1, 2, 3, 10]
    with pytest.raises(ValueError, match="--steps"):
        derivation.parse_steps("0-2")
