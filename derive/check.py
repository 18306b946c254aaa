"""Stage 6 (numeric check): the generated modules run against central differences.

Contract: :func:`gradient_checks` executes each generated module's source in a fresh module
object and compares its gradients with central differences of its own loss, at fixed sizes
(n_x ≠ n_s ≠ n_y, so a transposed weight cannot hide), a fixed seed and a fixed step h, for each
T the module accepts, unbatched and batched. It returns the relative errors (raw floats); a
relative error above :data:`CHECK_LIMIT` raises :class:`~derive.errors.GenerationError`.
:func:`derive.generate.standard_files` runs it once and hands the results to the notes, which
only print them. Two more runs of generated code for the notes: :func:`worked_value` (the worked
example through ``bptt_e3.py``, equal to its chain-rule terms' sum or an error) and
:func:`jacobian_norm_curves` (R6 measured by ``state_jacobian_norms``; the identity's curves
must be exactly ρ^k).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from derive.errors import GenerationError

WEIGHTS = ("W_x", "W_s", "W_y")

# Fixed sizes with n_x ≠ n_s ≠ n_y, a fixed seed, and a step h whose truncation error (of order h²)
# dominates the rounding error (of order 10⁻¹⁶/h): the errors are then the same on every machine
# to many digits.
CHECK_SIZES = (3, 4, 2)
CHECK_H = 1e-4
CHECK_SEED = 20240917
CHECK_LIMIT = 1e-6  # a wrong gradient is off by order 1; central differences by order h²
CHECK_STEPS = (1, 3, 5)
CHECK_BATCH = 4


@dataclass(frozen=True)
class CheckResult:
    """One module at one (T, batch): the relative error per weight, W_x, W_s, W_y."""

    module: str  # the file name, "bptt.py"
    steps: int
    batch: int | None
    errors: tuple[float, ...]


def load_module(name: str, source: str) -> types.ModuleType:
    """Execute generated source in a fresh module (registered only while it runs)."""
    module = types.ModuleType(f"_check_{name}")
    sys.modules[module.__name__] = module
    try:
        exec(compile(source, f"generated/{name}.py", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module


def relative_errors(
    module: Any, steps: int, batch: int | None, seed: int = CHECK_SEED, h: float = CHECK_H
) -> tuple[float, ...]:
    """max |∂E/∂w − central difference| / max |central difference|, per weight W_x, W_s, W_y."""
    rng = np.random.default_rng([seed, steps, batch or 0])
    n_x, n_s, n_y = CHECK_SIZES
    lead = (steps,) if batch is None else (steps, batch)
    x = rng.standard_normal((*lead, n_x))
    d = rng.standard_normal((*lead, n_y))
    s0 = 0.5 * rng.standard_normal((n_s,) if batch is None else (batch, n_s))
    weights = [0.5 * rng.standard_normal(s) for s in ((n_x, n_s), (n_s, n_s), (n_s, n_y))]
    grads = module.gradients(x, d, *weights, s0)
    objective = truncated_objective(module, x, d, weights, s0)
    errors = []
    for k, name in enumerate(WEIGHTS):
        numeric = np.zeros_like(weights[k])
        for idx in np.ndindex(weights[k].shape):
            plus = [w.copy() for w in weights]
            minus = [w.copy() for w in weights]
            plus[k][idx] += h
            minus[k][idx] -= h
            numeric[idx] = (objective(plus) - objective(minus)) / (2 * h)
        diff = np.max(np.abs(np.asarray(getattr(grads, name)) - numeric))
        errors.append(float(diff / np.max(np.abs(numeric))))
    return tuple(errors)


def cell_relative_errors(
    module: Any, steps: int, batch: int | None, seed: int = CHECK_SEED, h: float = CHECK_H
) -> tuple[float, ...]:
    """As :func:`relative_errors`, for a gated cell's module: per parameter, in PARAMS order,
    with every state's s0 given."""
    rng = np.random.default_rng([seed, steps, batch or 0])
    n_x, n_s, n_y = CHECK_SIZES
    lead = (steps,) if batch is None else (steps, batch)
    x = rng.standard_normal((*lead, n_x))
    d = rng.standard_normal((*lead, n_y))
    s0 = {
        k: 0.5 * rng.standard_normal((n_s,) if batch is None else (batch, n_s))
        for k in module.STATES
    }
    params = {k: 2 * v for k, v in module.init_params(n_x, n_s, n_y, rng).items()}
    grads = module.gradients(x, d, params, s0)
    errors = []
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[name][idx] += h
            minus[name][idx] -= h
            numeric[idx] = (module.loss(x, d, plus, s0) - module.loss(x, d, minus, s0)) / (2 * h)
        diff = np.max(np.abs(np.asarray(grads.params[name]) - numeric))
        errors.append(float(diff / np.max(np.abs(numeric))))
    return tuple(errors)


def truncated_objective(module: Any, x: Any, d: Any, weights: Any, s0: Any) -> Any:
    """The function of the weights whose gradient the module computes: its loss, or, truncated
    at K, Σ_t E_t with s̄_{t−K} held at its value for ``weights`` (Williams and Peng's objective):
    E_t from s̄_{t−K} is the loss of the window x_{t−K+1} … x_t (E_N modules) or the loss of the
    window to t less that of the window to t − 1 (Σ_t E_t modules), both from the module."""
    K = module.CONFIG.get("truncate")
    if K is None:
        return lambda w: module.loss(x, d, *w, s0)
    states, _ = module.forward(x, *weights, s0)
    T = np.shape(x)[0]
    every = module.CONFIG["loss_steps"] == "all"

    def objective(w: Any) -> float:
        total = 0.0
        for t in range(T) if every else [T - 1]:
            j = max(0, t - K + 1)
            start = s0 if j == 0 else states[j - 1]
            total += module.loss(x[j : t + 1], d[j : t + 1], *w, start)
            if every and t > j:
                total -= module.loss(x[j:t], d[j:t], *w, start)
        return total

    return objective


def check_cases(fixed_steps: int | None) -> list[tuple[int, int | None]]:
    """(T, batch) cases: a straight-line module's own T; a loop module's T = 1, 3, 5."""
    steps = CHECK_STEPS if fixed_steps is None else (fixed_steps,)
    return [(T, None) for T in steps] + [(steps[-1], CHECK_BATCH)]


def gradient_checks(modules: Mapping[str, str]) -> tuple[CheckResult, ...]:
    """Every module (file name → source) against central differences, in file-name order."""
    out = []
    for path, source in sorted(modules.items()):
        module = load_module(path.removesuffix(".py"), source)
        for steps, batch in check_cases(module.CONFIG["steps"]):
            errors = (
                cell_relative_errors(module, steps, batch)
                if hasattr(module, "PARAMS")
                else relative_errors(module, steps, batch)
            )
            if max(errors) > CHECK_LIMIT:
                raise GenerationError(
                    f"the gradient check of generated/{path} failed at T = {steps}, "
                    f"batch {batch}: relative errors {errors}"
                )
            out.append(CheckResult(path, steps, batch, errors))
    return tuple(out)


def worked_value(
    source: str, arrays: Mapping[str, np.ndarray], expected: Mapping[str, float]
) -> float:
    """∂E_3/∂W_s of the worked example (n = 1) by the generated module ``source``. Its ∂E_3/∂W_s
    and ∂E_3/∂W_x must equal ``expected`` (weight name → the sum of the example's terms) to
    1e-12 relative."""
    module = load_module("worked", source)
    grads = module.gradients(
        arrays["x"], arrays["d"], arrays["W_x"], arrays["W_s"], arrays["W_y"], s0=arrays["s0"]
    )
    for name, want in expected.items():
        got = float(getattr(grads, name)[0, 0])
        if abs(got - want) > 1e-12 * abs(want):
            raise GenerationError(
                f"the worked example: the generated module gives ∂E_3/∂{name} = {got!r}, "
                f"the chain-rule terms sum to {want!r}"
            )
    return float(grads.W_s[0, 0])


# The notes' plot of R6 (vanishing and exploding gradients): one fixed problem, every activation
# and every ρ run on the same inputs and the same orthogonal Q, so that the curves differ only by
# Φ and ρ. With Φ = identity, ∂s̄_T/∂s̄_(T−k) = (ρ·Qᵀ)^k has every singular value ρ^k: the
# measured norm must be ρ^k to rounding (about k·10⁻¹⁶ relative), a check of the whole pipeline.
NORM_SEED = 20240612
NORM_STEPS = 30
NORM_STATES = 16  # n_s
NORM_INPUTS = 16  # n_x
NORM_RHOS = (0.5, 1.0, 2.0)
NORM_INPUT_SCALE = 0.1
NORM_LAW_LIMIT = 1e-12  # relative; measured: below 1e-15 at k = 30
NORM_ORDER = ("identity", "tanh")  # the plot's panels, left to right


@dataclass(frozen=True)
class NormCurve:
    """‖∂s̄_T/∂s̄_(T−k)‖₂ for k = 1 … T, measured by a generated module's state_jacobian_norms."""

    activation: str
    rho: float
    norms: tuple[float, ...]


def norm_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plot's inputs x (T, n_x), W_x (n_x, n_s) and the orthogonal Q (n_s, n_s), seeded."""
    rng = np.random.default_rng(NORM_SEED)
    Q, _ = np.linalg.qr(rng.standard_normal((NORM_STATES, NORM_STATES)))
    W_x = rng.standard_normal((NORM_INPUTS, NORM_STATES)) / np.sqrt(NORM_INPUTS)
    x = NORM_INPUT_SCALE * rng.standard_normal((NORM_STEPS, NORM_INPUTS))
    return x, W_x, Q


def _curve_order(curve: NormCurve) -> tuple[int, str, float]:
    """Identity, then tanh (then any other activation by name); ρ ascending."""
    name = curve.activation
    return NORM_ORDER.index(name) if name in NORM_ORDER else len(NORM_ORDER), name, curve.rho


def jacobian_norm_curves(sources: Mapping[str, str]) -> tuple[NormCurve, ...]:
    """The notes' plot of R6: for each activation → module source in ``sources``, the norms over
    30 steps at n_s = 16, W_s = ρ·Q (Q a seeded random orthogonal matrix), ρ ∈ {0.5, 1, 2},
    s̄_0 = 0, inputs of scale 0.1, a fixed seed. Identity first, then tanh, ρ ascending. The
    identity curves must follow ρ^k (else :class:`~derive.errors.GenerationError`)."""
    x, W_x, Q = norm_problem()
    k = np.arange(1, NORM_STEPS + 1)
    curves = []
    for activation, source in sources.items():
        module = load_module(f"norms_{activation}", source)
        for rho in NORM_RHOS:
            norms = np.asarray(module.state_jacobian_norms(x, W_x, rho * Q), dtype=float)
            if norms.shape != (NORM_STEPS,):
                raise GenerationError(
                    f"state_jacobian_norms ({activation}) returned shape {norms.shape}, "
                    f"expected ({NORM_STEPS},)"
                )
            if activation == "identity":
                law = rho**k
                worst = float(np.max(np.abs(norms / law - 1)))
                if not worst <= NORM_LAW_LIMIT:
                    raise GenerationError(
                        f"state_jacobian_norms with Φ = identity, ρ = {rho:g}: the norms differ "
                        f"from ρ^k by {worst:.3g} relative (limit {NORM_LAW_LIMIT:g})"
                    )
            curves.append(NormCurve(activation, rho, tuple(float(v) for v in norms)))
    return tuple(sorted(curves, key=_curve_order))
