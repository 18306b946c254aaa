"""Numeric gradient oracles for the generated modules: central differences and a directional check.

Both return errors rather than asserting, so a test can show that they *fail* on a wrong gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

WEIGHTS = ("W_x", "W_s", "W_y")


def central_differences(
    loss: Callable[..., float], x: Any, d: Any, weights: Sequence[np.ndarray], s0: Any, h: float
) -> list[np.ndarray]:
    """(E(W + h e_k) − E(W − h e_k)) / 2h for every entry k of every weight."""
    out = []
    for i, w in enumerate(weights):
        g = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            plus = [v.copy() for v in weights]
            minus = [v.copy() for v in weights]
            plus[i][idx] += h
            minus[i][idx] -= h
            g[idx] = (loss(x, d, *plus, s0) - loss(x, d, *minus, s0)) / (2 * h)
        out.append(g)
    return out


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """‖got − expected‖∞ / ‖expected‖∞ (absolute when expected is all zeros)."""
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    return diff / scale if scale > 0 else diff


def gradient_errors(
    module: Any, x: Any, d: Any, weights: Sequence[np.ndarray], s0: Any = None, h: float = 1e-6
) -> dict[str, float]:
    """Relative error of ``module.gradients`` against central differences, per weight."""
    grads = module.gradients(x, d, *weights, s0)
    numeric = central_differences(module.loss, x, d, weights, s0, h)
    return {
        name: relative_error(np.asarray(getattr(grads, name)), num)
        for name, num in zip(WEIGHTS, numeric, strict=True)
    }


def directional_error(
    module: Any,
    x: Any,
    d: Any,
    weights: Sequence[np.ndarray],
    s0: Any,
    rng: np.random.Generator,
    h: float = 1e-5,
) -> float:
    """|⟨v, ∇E⟩ − (E(W + hv) − E(W − hv))/2h| / scale for a random direction v of all weights."""
    grads = module.gradients(x, d, *weights, s0)
    v = [rng.standard_normal(w.shape) for w in weights]
    analytic = sum(float(np.vdot(vi, getattr(grads, n))) for vi, n in zip(v, WEIGHTS, strict=True))
    plus = [w + h * vi for w, vi in zip(weights, v, strict=True)]
    minus = [w - h * vi for w, vi in zip(weights, v, strict=True)]
    numeric = (module.loss(x, d, *plus, s0) - module.loss(x, d, *minus, s0)) / (2 * h)
    return abs(analytic - numeric) / max(abs(numeric), 1e-12)


def random_problem(
    rng: np.random.Generator,
    T: int,
    sizes: tuple[int, int, int],
    batch: int | None,
    with_s0: bool,
    scale: float = 0.6,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray | None]:
    """Seeded float64 inputs: x, d, [W_x, W_s, W_y], s0 (None when not used)."""
    n_x, n_s, n_y = sizes
    lead = (T,) if batch is None else (T, batch)
    x = rng.standard_normal((*lead, n_x))
    d = rng.standard_normal((*lead, n_y))
    weights = [
        rng.standard_normal((n_x, n_s)) * scale,
        rng.standard_normal((n_s, n_s)) * scale,
        rng.standard_normal((n_s, n_y)) * scale,
    ]
    s0 = None
    if with_s0:
        s0 = rng.standard_normal((n_s,) if batch is None else (batch, n_s)) * 0.5
    return x, d, weights, s0
