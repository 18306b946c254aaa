"""Execution tier: the committed generated modules, run on seeded float64 inputs, against oracles.

Central differences (relative error ≤ 1e-6 per weight), a directional check, the derivation's
own ground truth (sympy.diff of the explicit loss, evaluated numerically) for bptt_e3, and proof
that each checker fails on a deliberately wrong gradient.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import sympy as sp
from gradcheck import directional_error, gradient_errors, random_problem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive import Config
from derive import model as m
from derive.verify import ground_truth
from generated import bptt, bptt_e3

TOL = 1e-6
SIZES = [(1, 1, 1), (2, 3, 4), (4, 3, 2), (3, 5, 1)]


def _checked_problem(module: Any, rng: np.random.Generator, T: int, *args: Any, **kw: Any) -> Any:
    """A random problem (see random_problem), its gradients checked against central
    differences; returns the problem."""
    x, d, weights, s0 = problem = random_problem(rng, T, *args, **kw)
    errors = gradient_errors(module, x, d, weights, s0)
    assert max(errors.values()) <= TOL, errors
    return problem


@pytest.mark.parametrize(
    ("T", "sizes", "batch", "with_s0", "seed"),
    [
        (T, sizes, batch, with_s0, seed)
        for (T, sizes, batch, with_s0), seed in zip(
            itertools.product([1, 2, 3, 5, 20], SIZES, [None, 4], [False, True]),
            itertools.cycle([0, 1, 2]),
        )
    ],
)
def test_bptt_matches_central_differences(
    T: int, sizes: tuple[int, int, int], batch: int | None, with_s0: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x, d, weights, s0 = _checked_problem(bptt, rng, T, sizes, batch, with_s0)
    assert directional_error(bptt, x, d, weights, s0, rng) <= 1e-7


@pytest.mark.parametrize(
    ("T", "batch", "copies"), [(8, 64, False), (9, 64, True), (600, None, True), (2, 300, False)]
)
def test_bptt_long_recurrences_match_central_differences(
    T: int, batch: int | None, copies: bool
) -> None:
    """Long recurrences ((T − 1)·B ≥ 512) multiply by a contiguous copy of W_sᵀ, shorter ones
    by the transposed view: both paths against central differences, and the path taken."""
    rng = np.random.default_rng(T)
    x, d, weights, s0 = _checked_problem(bptt, rng, T, (2, 3, 2), batch, True, scale=0.4)
    copy = bptt._scratch.arrays[1]["W_sT_copy"]  # scratch of the last call, this thread
    copy.fill(np.nan)
    bptt.gradients(x, d, *weights, s0)
    assert np.array_equal(copy, weights[1].T) is copies


@pytest.mark.parametrize(
    ("sizes", "batch", "with_s0"), list(itertools.product(SIZES, [None, 3], [False, True]))
)
@pytest.mark.parametrize("seed", [0, 1])
def test_bptt_e3_matches_central_differences(
    sizes: tuple[int, int, int], batch: int | None, with_s0: bool, seed: int
) -> None:
    _checked_problem(bptt_e3, np.random.default_rng(seed), 3, sizes, batch, with_s0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    T=st.integers(1, 6),
    sizes=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    batch=st.one_of(st.none(), st.integers(1, 3)),
    with_s0=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_bptt_property_random_shapes(
    T: int, sizes: tuple[int, int, int], batch: int | None, with_s0: bool, seed: int
) -> None:
    _checked_problem(bptt, np.random.default_rng(seed), T, sizes, batch, with_s0)


def test_bptt_e3_equals_the_derivations_ground_truth() -> None:
    """bptt_e3 against sympy.diff of the explicit E_3 at sizes (2, 3, 2), evaluated in float64."""
    sizes = (2, 3, 2)
    ex = m.explicit(m.statement(Config()), sizes)
    truth = ground_truth(ex)
    inputs = ex.input_symbols
    fn = sp.lambdify(inputs, [truth[w] for w in m.WEIGHT_NAMES], modules="numpy", cse=True)
    rng = np.random.default_rng(7)
    x, d, weights, s0 = random_problem(rng, 3, sizes, None, True)
    assert s0 is not None
    values = [
        *weights[0].ravel(),
        *weights[1].ravel(),
        *weights[2].ravel(),
        *s0,
        *x.ravel(),
        *d.ravel(),
    ]
    expected = [np.asarray(e, dtype=float) for e in fn(*values)]
    got = bptt_e3.gradients(x, d, *weights, s0)
    for name, exp in zip(m.WEIGHT_NAMES, expected, strict=True):
        np.testing.assert_allclose(getattr(got, name), exp, rtol=1e-12, atol=1e-12)
    assert got.loss == pytest.approx(
        float(ex.loss.xreplace(dict(zip(inputs, values, strict=True)))), rel=1e-12
    )


def test_bptt_e3_agrees_with_bptt_on_the_last_step_loss() -> None:
    """The straight-line E_3 module and the loop module differ only in the loss's steps."""
    rng = np.random.default_rng(3)
    x, d, weights, s0 = random_problem(rng, 3, (2, 3, 2), 2, True)
    d_last = d.copy()
    e3 = bptt_e3.gradients(x, d, *weights, s0)
    # Σ_t E_t with d̄_1, d̄_2 set to the outputs themselves has E_1 = E_2 = 0 ...
    _, y = bptt.forward(x, *weights, s0)
    d_last[:2] = y[:2]
    total = bptt.gradients(x, d_last, *weights, s0)
    assert total.loss == pytest.approx(e3.loss, rel=1e-12)
    # ... but not zero gradients, so only the losses agree; the forward passes must agree exactly.
    s_a, y_a = bptt.forward(x, *weights, s0)
    s_b, y_b = bptt_e3.forward(x, *weights, s0)
    np.testing.assert_allclose(s_a, s_b, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(y_a, y_b, rtol=1e-14, atol=1e-15)


# --- the checkers must fail on a wrong gradient ---------------------------------------------


def _broken(module: Any, how: str) -> Any:
    """The module with one classic mistake in its gradients."""

    def gradients(*args: Any) -> Any:
        g = module.gradients(*args)
        if how == "W_s transposed":  # row layout confused with column layout
            return g._replace(W_s=g.W_s.T)
        if how == "factor 2 of ∂E/∂ȳ forgotten":
            return g._replace(W_x=g.W_x / 2, W_s=g.W_s / 2, W_y=g.W_y / 2)
        return g._replace(W_y=g.W_y * 1.001)  # a 0.1 % error in one weight

    return SimpleNamespace(gradients=gradients, loss=module.loss)


@pytest.mark.parametrize(
    "how", ["W_s transposed", "factor 2 of ∂E/∂ȳ forgotten", "W_y off by 0.1 %"]
)
@pytest.mark.parametrize("module", [bptt, bptt_e3], ids=["bptt", "bptt_e3"])
def test_checkers_fail_on_a_wrong_gradient(module: Any, how: str) -> None:
    rng = np.random.default_rng(11)
    x, d, weights, s0 = random_problem(rng, 3, (3, 3, 2), None, True)
    wrong = _broken(module, how)
    assert max(gradient_errors(module, x, d, weights, s0).values()) <= TOL
    assert max(gradient_errors(wrong, x, d, weights, s0).values()) > TOL
    right_dir = directional_error(module, x, d, weights, s0, np.random.default_rng(5))
    wrong_dir = directional_error(wrong, x, d, weights, s0, np.random.default_rng(5))
    assert right_dir <= 1e-7 < wrong_dir
