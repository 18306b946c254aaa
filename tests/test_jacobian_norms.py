"""state_jacobian_norms of every generated module: ‖∂s̄_T/∂s̄_(T−k)‖₂ against oracles.

The oracle is the Jacobian of the state map s̄_(T−k) ↦ s̄_T computed by central differences on an
independent NumPy forward pass (Eq. 33), its spectral norm taken; for Φ = identity the norms are
exactly ρ^k when W_s = ρ·Q with Q orthogonal. The comparison is shown to fail on wrong norms.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import numpy as np
import pytest
from numba_modules import params as numba_params

from derive import Config
from derive.check import load_module
from derive.generate import module_files

PHI = {
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "relu": lambda z: np.maximum(z, 0),
    "identity": lambda z: z,
}
NUMPY_MODULES = [
    "bptt",
    "bptt_e3",
    "bptt_tanh_softmax_ce_all_c1_Tany",
    "bptt_tanh_linear_se_all_c1_Tany_K5",
]


def _states(phi: Any, x: np.ndarray, W_x: np.ndarray, W_s: np.ndarray, s: np.ndarray) -> Any:
    """s̄_T from s̄_0 = s over the inputs x (T, n_x): Eq. 33, written independently."""
    for x_t in x:
        s = phi(x_t @ W_x + s @ W_s)
    return s


def reference_norms(
    phi: Any, x: np.ndarray, W_x: np.ndarray, W_s: np.ndarray, s0: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """‖∂s̄_T/∂s̄_(T−k)‖₂ for k = 1 … T, unbatched, by central differences."""
    T, n_s = x.shape[0], W_s.shape[0]
    states = [s0]
    for t in range(T):
        states.append(_states(phi, x[t : t + 1], W_x, W_s, states[-1]))
    out = []
    for k in range(1, T + 1):
        start = states[T - k]
        J = np.empty((n_s, n_s))
        for j in range(n_s):
            e = np.zeros(n_s)
            e[j] = h
            plus = _states(phi, x[T - k :], W_x, W_s, start + e)
            minus = _states(phi, x[T - k :], W_x, W_s, start - e)
            J[:, j] = (plus - minus) / (2 * h)  # numerator layout: a row per entry of s̄_T
        out.append(np.linalg.norm(J, 2))
    return np.array(out)


def _problem(rng: np.random.Generator, T: int, n_x: int, n_s: int, B: int | None) -> Any:
    lead = (T,) if B is None else (T, B)
    x = rng.standard_normal((*lead, n_x))
    W_x = rng.standard_normal((n_x, n_s)) / np.sqrt(n_x)
    W_s = rng.standard_normal((n_s, n_s)) * 1.2 / np.sqrt(n_s)
    s0 = 0.5 * rng.standard_normal((*lead[1:], n_s))
    return x, W_x, W_s, s0


def assert_norms_match(norms: np.ndarray, x: Any, W_x: Any, W_s: Any, s0: Any, phi: Any) -> None:
    """Each batch row's norms against the central-difference reference (rel. error ≤ 1e-6)."""
    if x.ndim == 2:
        ref = reference_norms(phi, x, W_x, W_s, s0)
        np.testing.assert_allclose(norms, ref, rtol=1e-6, atol=1e-12)
        return
    assert norms.shape == x.shape[:2]
    for b in range(x.shape[1]):
        ref = reference_norms(phi, x[:, b], W_x, W_s, s0[b])
        np.testing.assert_allclose(norms[:, b], ref, rtol=1e-6, atol=1e-12)


def _modules() -> list[Any]:
    mods = [pytest.param(importlib.import_module(f"generated.{n}"), id=n) for n in NUMPY_MODULES]
    return mods + numba_params()


@pytest.mark.parametrize("module", _modules())
@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("with_s0", [False, True])
def test_norms_match_central_differences(module: Any, batch: int | None, with_s0: bool) -> None:
    rng = np.random.default_rng(7 + (batch or 0) + with_s0)
    T = module.CONFIG["steps"] or 6
    x, W_x, W_s, s0 = _problem(rng, T, 3, 4, batch)
    if not with_s0:
        s0 = np.zeros_like(s0)
    norms = module.state_jacobian_norms(x, W_x, W_s, s0 if with_s0 else None)
    assert norms.shape == ((T,) if batch is None else (T, batch))
    assert norms.dtype == np.float64
    assert_norms_match(norms, x, W_x, W_s, s0, PHI[module.CONFIG["activation"]])


@pytest.mark.parametrize("name", ["bptt", "bptt_e3"])
def test_float32_is_kept(name: str) -> None:
    module = importlib.import_module(f"generated.{name}")
    rng = np.random.default_rng(3)
    x, W_x, W_s, _ = _problem(rng, 3, 2, 3, None)
    norms = module.state_jacobian_norms(*(a.astype(np.float32) for a in (x, W_x, W_s)))
    assert norms.dtype == np.float32
    np.testing.assert_allclose(norms, module.state_jacobian_norms(x, W_x, W_s), rtol=1e-4)


def test_checker_fails_on_wrong_norms() -> None:
    """The comparison rejects norms off by one step, and those of W_s without diag(Φ'(z̄_t))."""
    from generated import bptt

    rng = np.random.default_rng(11)
    x, W_x, W_s, s0 = _problem(rng, 5, 3, 4, None)
    norms = bptt.state_jacobian_norms(x, W_x, W_s, s0)
    with pytest.raises(AssertionError):
        assert_norms_match(np.roll(norms, 1), x, W_x, W_s, s0, np.tanh)
    no_diag = [np.linalg.norm(np.linalg.matrix_power(W_s.T, k), 2) for k in range(1, 6)]
    with pytest.raises(AssertionError):
        assert_norms_match(np.array(no_diag), x, W_x, W_s, s0, np.tanh)


@cache
def _module(activation: str) -> Any:
    ((name, source),) = module_files(Config(activation=activation), loop=True).items()
    return load_module(name[:-3], source)


@pytest.mark.parametrize("activation", ["identity", "sigmoid", "relu"])
def test_other_activations(activation: str) -> None:
    module = _module(activation)
    rng = np.random.default_rng(5)
    x, W_x, W_s, s0 = _problem(rng, 4, 2, 3, 2)
    norms = module.state_jacobian_norms(x, W_x, W_s, s0)
    assert_norms_match(norms, x, W_x, W_s, s0, PHI[activation])


@pytest.mark.parametrize("rho", [0.5, 1.0, 2.0])
def test_identity_gives_the_geometric_law(rho: float) -> None:
    """Φ = identity, W_s = ρ·Q with Q orthogonal: ∂s̄_T/∂s̄_(T−k) = (Qᵀ)^k ρ^k, norm ρ^k."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    x = 0.1 * rng.standard_normal((30, 16))
    W_x = rng.standard_normal((16, 16)) / 4
    norms = _module("identity").state_jacobian_norms(x, W_x, rho * Q)
    np.testing.assert_allclose(norms, rho ** np.arange(1, 31), rtol=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros((3, 2)), np.zeros((3, 4)), np.zeros((4, 4))), "W_x: expected shape (2, n_s)"),
        ((np.zeros((3, 2)), np.zeros((2, 4)), np.zeros((4, 3))), "W_s: expected shape (4, 4)"),
        ((np.zeros((3, 2)), np.zeros((2, 4)), np.zeros((4, 4)), np.zeros(3)), "s0: expected"),
        ((np.zeros(3), np.zeros((2, 4)), np.zeros((4, 4))), "x: expected shape"),
    ],
)
def test_bad_input_is_refused(args: Any, message: str) -> None:
    from generated import bptt

    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        bptt.state_jacobian_norms(*args)
