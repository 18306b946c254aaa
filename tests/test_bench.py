"""Smoke tests of the benchmark harness (bench/, `make bench`): it runs on the lecture's tiny case,
checks every implementation before timing, refuses a wrong one, and skips a peer whose package
is missing; the gated cells' peers agree with each other and with the equations written out in
NumPy, and their generated module's peer runs, or is skipped while the module does not exist.
No wall-clock asserts: only that the harness runs and reports.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bench import cases, derivation, gated, impl, peers, report, run
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
        if not peers.applies(spec, case) or spec.cases or peers.missing(spec) is not None:
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


# ---------------------------------------------------------------------------------------------
# Gated cells (GRU, LSTM): the cases, the peers against a NumPy statement of the equations, and
# the generated module's peer with and without generated/gru.py and generated/lstm.py.

CELL_PEERS = {"torch-cell": "torch", "jax-cell": "jax"}


def test_the_case_list_includes_the_gated_cells_at_the_rnn_sizes() -> None:
    for cell in ("gru", "lstm"):
        for size in ("small", "medium"):
            case = CASES[f"{cell}-{size}"]
            rnn = CASES[size]
            assert (case.cell, case.T, case.B, case.n) == (cell, rnn.T, rnn.B, rnn.n)
            assert not case.last_only and case.gated
    # FLOPs: 2·B·n²·((5k + 3)·T − k) for gradients, k = 1 giving the RNN's 2·B·n²·(8T − 1).
    for name, k in (("small", 1), ("gru-small", 3), ("lstm-medium", 4)):
        c = CASES[name]
        f_loss, f_grad = c.flops()
        assert f_loss == 2 * c.T * c.B * c.n**2 * (2 * k + 1)
        assert f_grad == 2 * c.B * c.n**2 * ((5 * k + 3) * c.T - k)
    assert set(cases.CELLS["gru"].states) == {"s"} and cases.CELLS["lstm"].states == ("h", "c")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def _numpy_loss(cell: str, x: np.ndarray, d: np.ndarray, p: dict[str, np.ndarray]) -> float:
    """The cell's equations as the benchmark states them, step by step, in plain NumPy."""
    B, n_s = x.shape[1], p["W_y"].shape[0]
    s, c = np.zeros((B, n_s)), np.zeros((B, n_s))
    E = 0.0
    for x_t, d_t in zip(x, d, strict=True):
        if cell == "gru":
            r = _sigmoid(x_t @ p["W_xr"] + s @ p["W_sr"] + p["b_r"])
            u = _sigmoid(x_t @ p["W_xu"] + s @ p["W_su"] + p["b_u"])
            n = np.tanh(x_t @ p["W_xn"] + p["b_n"] + r * (s @ p["W_sn"] + p["b_sn"]))
            s = (1.0 - u) * n + u * s
        else:
            i = _sigmoid(x_t @ p["W_xi"] + s @ p["W_hi"] + p["b_i"])
            f = _sigmoid(x_t @ p["W_xf"] + s @ p["W_hf"] + p["b_f"])
            g = np.tanh(x_t @ p["W_xg"] + s @ p["W_hg"] + p["b_g"])
            o = _sigmoid(x_t @ p["W_xo"] + s @ p["W_ho"] + p["b_o"])
            c = f * c + i * g
            s = o * np.tanh(c)
        e = d_t - s @ p["W_y"]
        E += float(np.sum(e * e))
    return E


def _central_differences(
    cell: str, x: np.ndarray, d: np.ndarray, params: dict[str, np.ndarray], h: float = 1e-6
) -> dict[str, np.ndarray]:
    grads = {}
    for name, w in params.items():
        g = np.empty_like(w)
        for idx in np.ndindex(w.shape):
            plus, minus = dict(params), dict(params)
            plus[name], minus[name] = w.copy(), w.copy()
            plus[name][idx] += h
            minus[name][idx] -= h
            g[idx] = (_numpy_loss(cell, x, d, plus) - _numpy_loss(cell, x, d, minus)) / (2 * h)
        grads[name] = g
    return grads


def _tiny_cell_problem(cell: str, seed: int, *, n_x: int = 2, n_s: int = 3, n_y: int = 4):
    """A tiny problem with n_x ≠ n_s ≠ n_y (square weights would hide a transposed block)."""
    rng = np.random.default_rng(seed)
    T, B = 4, 2
    case = dataclasses.replace(CASES[f"{cell}-small"], name=f"tiny-{cell}", T=T, B=B, n=n_s)
    sizes = {"n_x": n_x, "n_s": n_s, "n_y": n_y}
    params = {
        name: rng.standard_normal(tuple(sizes[s] for s in shape)) * 0.7
        for name, shape in cases.CELLS[cell].params
    }
    x, d = rng.standard_normal((T, B, n_x)), rng.standard_normal((T, B, n_y))
    return cases.CellProblem(case, x, d, params)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_cell_peers_agree_with_each_other_and_with_the_equations_in_numpy(
    cell: str, seed: int
) -> None:
    prob = _tiny_cell_problem(cell, seed)
    ran = [s for s in peers.SPECS if s.key in CELL_PEERS and peers.missing(s) is None]
    if not ran:
        pytest.skip("neither torch nor jax is installed")
    E = _numpy_loss(cell, prob.x, prob.d, prob.params)
    numeric = _central_differences(cell, prob.x, prob.d, prob.params)
    named = {}
    for spec in ran:
        built = spec.factory(prob)
        named[spec.key] = built.named()
        got_E, got = named[spec.key]
        assert got_E == pytest.approx(E, rel=1e-12), spec.key
        assert float(np.asarray(built.loss())) == pytest.approx(E, rel=1e-12), spec.key
        assert list(got) == [name for name, _ in cases.CELLS[cell].params], spec.key
        for name, g in got.items():
            assert g.shape == prob.params[name].shape, (spec.key, name)
            np.testing.assert_allclose(g, numeric[name], rtol=1e-6, atol=1e-7, err_msg=name)
    if len(named) == 2:
        (_, a), (_, b) = named.values()
        for name in a:
            assert run.relative_error(a[name], b[name]) <= run.TOLERANCE, name


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_generated_cell_module_agrees_with_the_peers_and_the_equations(cell: str) -> None:
    """Runs once generated/gru.py and generated/lstm.py exist; skipped before."""
    if importlib.util.find_spec(f"generated.{cell}") is None:
        pytest.skip(f"generated/{cell}.py does not exist yet")
    prob = _tiny_cell_problem(cell, seed=5)
    E, got = gated.GeneratedCell(prob).named()
    assert E == pytest.approx(_numpy_loss(cell, prob.x, prob.d, prob.params), rel=1e-12)
    numeric = _central_differences(cell, prob.x, prob.d, prob.params)
    for name, g in got.items():
        np.testing.assert_allclose(g, numeric[name], rtol=1e-6, atol=1e-7, err_msg=name)
    for spec in peers.SPECS:
        if spec.key in CELL_PEERS and peers.missing(spec) is None:
            _, theirs = spec.factory(prob).named()
            assert list(theirs) == list(got), spec.key
            for name, g in got.items():
                assert run.relative_error(theirs[name], g) <= run.TOLERANCE, (spec.key, name)


def _fake_generated(cell: str, *, wrong: str | None = None) -> types.ModuleType:
    """A stand-in for generated/<cell>.py following its contract; its gradients are PyTorch's
    (only the harness's handling of the module is under test), ``wrong`` one off by 1e-8."""
    info = cases.CELLS[cell]
    Gradients = collections.namedtuple("Gradients", ["loss", "params"])

    def init_params(n_x: int, n_s: int, n_y: int, rng: object = None) -> dict[str, np.ndarray]:
        raise AssertionError("the benchmark seeds its own parameters")

    def gradients(
        x: np.ndarray,
        d: np.ndarray,
        params: dict[str, np.ndarray],
        s0: object = None,
        reduction: str = "sum",
    ) -> tuple[float, dict[str, np.ndarray]]:
        case = dataclasses.replace(CASES[f"{cell}-small"], T=x.shape[0], B=x.shape[1])
        E, grads = gated.TorchCell(cases.CellProblem(case, x, d, params)).named()
        if wrong is not None:
            grads[wrong] = grads[wrong] * (1 + 1e-8)
        return Gradients(E, grads)

    def loss(x: np.ndarray, d: np.ndarray, params: dict[str, np.ndarray]) -> float:
        return gradients(x, d, params)[0]

    mod = types.ModuleType(f"generated.{cell}")
    vars(mod).update(
        PARAMS=dict(info.params),
        STATES=info.states,
        init_params=init_params,
        gradients=gradients,
        loss=loss,
    )
    return mod


@pytest.fixture
def tiny_cells(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Tiny GRU and LSTM cases in the case list, for run.run in this process."""
    for cell in ("gru", "lstm"):
        case = dataclasses.replace(CASES[f"{cell}-small"], name=f"tiny-{cell}", T=4, B=2, n=3)
        monkeypatch.setitem(run.CASES, case.name, case)
    return ("tiny-gru", "tiny-lstm")


def test_without_the_generated_cells_their_peer_is_skipped_and_the_peers_are_checked(
    tiny_cells: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(impl.Unavailable, match=r"generated/no_such_cell\.py does not exist yet"):
        gated.generated_module("no_such_cell")
    for cell in ("gru", "lstm"):  # missing even once `make derive` writes them
        monkeypatch.setitem(sys.modules, f"generated.{cell}", None)
    results = run.run(_settings(tiny_cells))
    text = report.markdown(results)
    for result in results.cases:
        rows = {row.spec.key: row for row in result.rows}
        assert set(rows) == {"generated-cell", *CELL_PEERS}
        assert rows["generated-cell"].skipped == (
            f"generated/{result.case.cell}.py does not exist yet (make derive writes it)"
        )
        for key, module in CELL_PEERS.items():
            if _installed(module):
                error = rows[key].error
                assert error is not None and error <= run.TOLERANCE, key
                assert rows[key].gradients is not None
    assert "## Gated cells: GRU and LSTM" in text and "### tiny-gru: GRU, T = 4" in text
    assert "| generated (gru.py / lstm.py) | skipped: generated/gru.py does not exist yet" in text
    assert "## Results" not in text  # no RNN case was run


def test_the_generated_cells_peer_is_the_reference_when_its_module_exists(
    tiny_cells: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    for cell in ("gru", "lstm"):
        monkeypatch.setitem(sys.modules, f"generated.{cell}", _fake_generated(cell))
    results = run.run(_settings(tiny_cells))
    text = report.markdown(results)
    for result in results.cases:
        assert result.checked_against == "generated (gru.py / lstm.py)"
        ref = result.reference()
        assert ref.gradients is not None and ref.error == 0.0
    table = text.split("### The generated module against the fastest peer", 1)[1]
    table = table.split("### Agreement", 1)[0]
    assert "| tiny-gru | " in table and "| tiny-lstm | " in table and "skipped" not in table


def test_check_refuses_a_wrong_cell_gradient_and_a_broken_contract(
    tiny_cells: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setitem(sys.modules, "generated.gru", _fake_generated("gru", wrong="W_sn"))
    with pytest.raises(run.CheckFailed, match=r"tiny-gru.*PyTorch nn.GRU.*∂E/∂W_sn"):
        run.run(_settings(("tiny-gru",)))
    broken = _fake_generated("gru")
    vars(broken)["PARAMS"] = {**vars(broken)["PARAMS"], "W_sn": ("n_x", "n_s")}
    monkeypatch.setitem(sys.modules, "generated.gru", broken)
    with pytest.raises(run.CheckFailed, match=r"generated\.gru: PARAMS"):
        run.run(_settings(("tiny-gru",)))
