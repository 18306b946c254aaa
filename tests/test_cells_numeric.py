"""Oracle tier for the generated GRU and LSTM modules (generated/gru.py, generated/lstm.py).

Their gradients and losses equal torch.nn.GRU / torch.nn.LSTM autograd in float64 (relative error
≤ 1e-10; the weight mapping is in tests/cells_reference.py), their forward passes equal PyTorch's,
their gradients pass central differences (≤ 1e-6), batched and unbatched, with and without s0,
float32 stays float32; and each checker fails on a deliberately wrong gradient.

A module not generated yet skips its tests, with the reason. Outside CI a missing torch skips the
PyTorch comparisons with the install hint (the central differences still run); under CI=true it
fails them, as a missing numba or TeX does (tests/numba_modules.py, tests/test_notes.py).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import numpy as np
import pytest
from cells_reference import (
    CELLS,
    GATES,
    STATES,
    central_differences_params,
    params_table,
    random_problem,
    torch_forward,
    torch_gradients,
)
from gradcheck import relative_error
from numba_modules import IN_CI

SAME = 1e-10  # relative difference from PyTorch's autograd, both in float64
TOL = 1e-6  # central differences, as for the lecture's RNN (tests/test_generated.py)
# The differences' round-off (~ε·E/H) dominates their error here: at H = 1e-6 the worst parameter
# of these problems came within 8× of TOL (LSTM, batched: b_f at 1.2e-7), at H = 1e-5 within 200×.
H = 1e-5
F32 = 1e-4  # float32 results against float64 ones
SIZES = (3, 4, 2)  # n_x ≠ n_s ≠ n_y: a transposed W_x or W_y block cannot fit
TORCH_HINT = "pip install 'bptt-derive[bench]'"

CELL = pytest.mark.parametrize("cell", CELLS)
BATCH = pytest.mark.parametrize("batch", [None, 3], ids=["unbatched", "batched"])
WITH_S0 = pytest.mark.parametrize("with_s0", [False, True], ids=["s0-zeros", "s0-given"])
REDUCTION = pytest.mark.parametrize("reduction", ["sum", "mean"])


def _module(cell: str) -> Any:
    """generated.<cell>, or a skip while it has not been generated."""
    name = f"generated.{cell}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the module exists but fails to import: a failure, not a skip
            raise
        pytest.skip(f"{name} is not generated yet: `make derive` writes generated/{cell}.py")


@pytest.fixture
def torch_required() -> None:
    """Skip with the install hint when torch is missing; under CI=true, fail instead."""
    try:
        importlib.import_module("torch")
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"torch is missing under CI=true ({exc}); install it: {TORCH_HINT}")
        pytest.skip(f"torch is not installed ({exc}): {TORCH_HINT}")


# --- the checkers: errors per parameter, so a test can show that they fail -------------------


def torch_errors(
    cell: str, loss: float, grads: dict[str, Any], problem: Any, reduction: str
) -> dict[str, float]:
    """Relative error of the loss and of each parameter's gradient against PyTorch's autograd."""
    x, d, params, s0 = problem
    E, expected = torch_gradients(cell, x, d, params, s0, reduction)
    errors = {name: relative_error(np.asarray(grads[name]), g) for name, g in expected.items()}
    errors["loss"] = abs(loss - E) / abs(E)
    return errors


def difference_errors(
    module: Any, grads: dict[str, Any], problem: Any, reduction: str
) -> dict[str, float]:
    """Relative error of each parameter's gradient against central differences of module.loss."""
    x, d, params, s0 = problem
    loss = functools.partial(module.loss, reduction=reduction)
    numeric = central_differences_params(loss, x, d, params, s0, H)
    return {name: relative_error(np.asarray(grads[name]), num) for name, num in numeric.items()}


# --- the contract the mapping relies on ------------------------------------------------------


@CELL
def test_parameters_and_states_are_the_mapped_ones(cell: str) -> None:
    """Every parameter is one tests/cells_reference.py maps onto PyTorch's, with its shape."""
    module = _module(cell)
    assert dict(module.PARAMS) == params_table(cell)
    assert tuple(module.STATES) == STATES[cell]
    assert module.CONFIG == {
        "cell": cell,
        "steps": None,
        "output": "linear",
        "loss": "squared-error",
        "scale": 1.0,
        "loss_steps": "all",
        "truncate": None,
        "backend": "numpy",
    }


# --- PyTorch's autograd, float64 -------------------------------------------------------------


@pytest.mark.usefixtures("torch_required")
@CELL
@pytest.mark.parametrize("T", [1, 2, 5])
@pytest.mark.parametrize("sizes", [SIZES, (1, 1, 1)], ids=["3-4-2", "1-1-1"])
@BATCH
@WITH_S0
@REDUCTION
def test_gradients_equal_torch_autograd(
    cell: str,
    T: int,
    sizes: tuple[int, int, int],
    batch: int | None,
    with_s0: bool,
    reduction: str,
    rng: np.random.Generator,
) -> None:
    module = _module(cell)
    x, d, params, s0 = problem = random_problem(cell, rng, T, sizes, batch, with_s0)
    g = module.gradients(x, d, params, s0, reduction=reduction)
    assert set(g.params) == set(params)
    for name, p in params.items():
        assert g.params[name].shape == p.shape and g.params[name].dtype == np.float64, name
    errors = torch_errors(cell, g.loss, g.params, problem, reduction)
    assert max(errors.values()) <= SAME, errors
    assert module.loss(x, d, params, s0, reduction=reduction) == pytest.approx(g.loss, rel=1e-12)


@pytest.mark.usefixtures("torch_required")
@CELL
@pytest.mark.parametrize("T", [1, 4])
@BATCH
@WITH_S0
def test_forward_equals_torch(
    cell: str, T: int, batch: int | None, with_s0: bool, rng: np.random.Generator
) -> None:
    """States at every step (nn.LSTM's c stepped one call per step), y = out W_y, and the last
    step against PyTorch's h_n (and c_n) of one call over the whole sequence."""
    module = _module(cell)
    x, _, params, s0 = random_problem(cell, rng, T, SIZES, batch, with_s0)
    states, y = module.forward(x, params, s0)
    want_states, want_y, final = torch_forward(cell, x, params, s0)
    lead = (T,) if batch is None else (T, batch)
    assert set(states) == set(STATES[cell])
    assert y.shape == (*lead, SIZES[2]) and y.dtype == np.float64
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-13)
    for name in STATES[cell]:
        assert states[name].shape == (*lead, SIZES[1]) and states[name].dtype == np.float64
        np.testing.assert_allclose(states[name], want_states[name], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(states[name][-1], final[name], rtol=1e-12, atol=1e-13)


# --- central differences ---------------------------------------------------------------------


@CELL
@BATCH
@WITH_S0
@REDUCTION
def test_gradients_match_central_differences(
    cell: str, batch: int | None, with_s0: bool, reduction: str, rng: np.random.Generator
) -> None:
    module = _module(cell)
    x, d, params, s0 = problem = random_problem(cell, rng, 3, SIZES, batch, with_s0)
    g = module.gradients(x, d, params, s0, reduction=reduction)
    errors = difference_errors(module, g.params, problem, reduction)
    assert max(errors.values()) <= TOL, errors


# --- float32 ---------------------------------------------------------------------------------


@CELL
@BATCH
def test_float32_is_kept(cell: str, batch: int | None, rng: np.random.Generator) -> None:
    """float32 in, float32 out, and the float32 results are the float64 ones, rounded."""
    module = _module(cell)
    x, d, params, s0 = random_problem(cell, rng, 4, SIZES, batch, True)
    assert s0 is not None
    f32 = functools.partial(np.asarray, dtype=np.float32)
    p32 = {k: f32(v) for k, v in params.items()}
    s32 = {k: f32(v) for k, v in s0.items()}
    states, y = module.forward(f32(x), p32, s32)
    states64, y64 = module.forward(x, params, s0)
    assert y.dtype == np.float32 and relative_error(y, y64) <= F32
    for name in STATES[cell]:
        assert states[name].dtype == np.float32, name
        assert relative_error(states[name], states64[name]) <= F32, name
    g = module.gradients(f32(x), f32(d), p32, s32)
    g64 = module.gradients(x, d, params, s0)
    assert g.loss == pytest.approx(g64.loss, rel=F32)
    for name in params:
        assert g.params[name].dtype == np.float32, name
        assert relative_error(g.params[name], g64.params[name]) <= F32, name


# --- the checkers must fail on a wrong gradient ----------------------------------------------

HOW = ["one entry off by 0.1 %", "gates swapped", "bias gradient zeroed"]


def _wrong(cell: str, grads: dict[str, np.ndarray], how: str) -> dict[str, np.ndarray]:
    """The gradients with one classic mistake."""
    wrong = {k: v.copy() for k, v in grads.items()}
    gates = GATES[cell]
    if how == "gates swapped":  # PyTorch's gate order mistaken: r ↔ u (z), i ↔ f
        a, b = f"W_x{gates[0]}", f"W_x{gates[1]}"
        wrong[a], wrong[b] = grads[b], grads[a]
    elif how == "bias gradient zeroed":  # the GRU's b_sn lives in PyTorch's *other* bias
        wrong["b_sn" if cell == "gru" else "b_f"][:] = 0
    else:
        name = "W_sn" if cell == "gru" else "W_hg"
        wrong[name][0, 1] += 1e-3 * np.max(np.abs(grads[name]))
    return wrong


def _checked_problem(cell: str) -> tuple[Any, Any]:
    """The module and a problem on which its gradients are right."""
    module = _module(cell)
    problem = random_problem(cell, np.random.default_rng(11), 3, SIZES, 2, True)
    x, d, params, s0 = problem
    return module.gradients(x, d, params, s0), problem


@pytest.mark.usefixtures("torch_required")
@CELL
@pytest.mark.parametrize("how", HOW)
def test_torch_check_fails_on_a_wrong_gradient(cell: str, how: str) -> None:
    g, problem = _checked_problem(cell)
    assert max(torch_errors(cell, g.loss, g.params, problem, "sum").values()) <= SAME
    wrong = _wrong(cell, g.params, how)
    assert max(torch_errors(cell, g.loss, wrong, problem, "sum").values()) > SAME


@CELL
@pytest.mark.parametrize("how", HOW)
def test_central_differences_fail_on_a_wrong_gradient(cell: str, how: str) -> None:
    g, problem = _checked_problem(cell)
    module = _module(cell)
    assert max(difference_errors(module, g.params, problem, "sum").values()) <= TOL
    wrong = _wrong(cell, g.params, how)
    assert max(difference_errors(module, wrong, problem, "sum").values()) > TOL
