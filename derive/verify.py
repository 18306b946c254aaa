"""Stage 4: proof. Instantiation at concrete sizes and comparison with entry-wise ``diff``.

Contract: :func:`prove` instantiates the model with a scalar symbol per entry
(:func:`derive.model.explicit`), takes the ground truth ∂E/∂w for every weight entry w with
``sympy.diff`` of the explicit scalar loss, and compares three candidates with it:

1. the chain-rule expansion, term by term, each factor with its own evaluated form (Jacobian);
2. the expanded closed form (the lecture's explicit terms);
3. the collected closed form (the δ recurrence).

Equality is exact: for polynomial models (identity Φ, linear output) both sides are evaluated in
exact rational arithmetic at random rational points and must be identical (a nonzero polynomial
difference vanishes at a random point with negligible probability); otherwise both sides are
evaluated at random rational points at 50 significant digits and must agree to 1e-30 relative.
A failed comparison is reported, never hidden: :func:`prove` returns a :class:`Proof` whose
``ok`` is False, and ``raise_if_failed`` raises :class:`ProofError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mpmath
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive import model as m
from derive.errors import DeriveError, ProofError

if TYPE_CHECKING:
    from derive.derivation import Derivation

DIGITS = 50
TOLERANCE = sp.Float("1e-30", DIGITS)

Binding = dict[sp.MatrixSymbol, sp.Matrix]


def evaluate(expr: Any, binding: Binding, act: m.Activation, dims: dict[Any, int]) -> sp.Matrix:
    """The explicit matrix of a dimension-free expression, given explicit matrices for its symbols.

    Φ and Φ' are bound to ``act``; symbolic sizes (Identity(n_y)) to ``dims``.
    """

    def ev(e: Any) -> Any:
        if isinstance(e, sp.MatrixSymbol):
            if e not in binding:
                raise DeriveError(f"cannot instantiate {e}: no explicit value bound to it")
            return binding[e]
        if isinstance(e, sp.Identity):
            return sp.eye(int(e.rows.xreplace(dims)))
        if isinstance(e, sp.ZeroMatrix):
            return sp.zeros(int(e.rows.xreplace(dims)), int(e.cols.xreplace(dims)))
        if isinstance(e, sp.MatAdd):
            parts = [ev(a) for a in e.args]
            total = parts[0]
            for p in parts[1:]:
                total = total + p
            return total
        if isinstance(e, sp.MatMul):
            scalar = sp.Integer(1)
            result = None
            for a in e.args:
                if not getattr(a, "is_Matrix", False):
                    scalar *= a
                    continue
                v = ev(a)
                result = v if result is None else result * v
            if result is None:
                raise DeriveError(f"cannot instantiate {e}: a product without a matrix")
            return result.applyfunc(lambda q: scalar * q) if scalar != 1 else result
        if isinstance(e, sp.Transpose):
            return ev(e.arg).T
        if isinstance(e, sp.HadamardProduct):
            parts = [ev(a) for a in e.args]
            total = parts[0]
            for p in parts[1:]:
                total = total.multiply_elementwise(p)
            return total
        if isinstance(e, ElementwiseApplyFunction):
            fn = m.applied_function(e)
            if fn == m.Phi:
                fn = act.phi
            elif fn == m.dPhi:
                fn = act.dphi
            return ev(e.expr).applyfunc(fn)
        if isinstance(e, DiagMatrix):
            return sp.diag(*ev(e.args[0]))
        if isinstance(e, m.Softmax):
            return m.softmax_row(ev(e.arg))
        raise DeriveError(f"cannot instantiate a {type(e).__name__}: {e}")

    result = ev(expr)
    if not isinstance(result, sp.MatrixBase):
        raise DeriveError(f"instantiating {expr} gave {type(result).__name__}, not a matrix")
    return sp.Matrix(result)


def ground_truth(ex: m.Explicit) -> dict[str, sp.Matrix]:
    """∂E/∂w by ``sympy.diff`` of the explicit scalar loss, one entry per weight entry w."""
    return {
        name: ex.values[w].applyfunc(lambda entry: sp.diff(ex.loss, entry))
        for name, w in zip(m.WEIGHT_NAMES, m.WEIGHTS, strict=True)
    }


# ---------------------------------------------------------------------------------------------
# The three candidates, each a function of a binding of the model's symbols.

Candidate = Callable[[Binding], dict[str, sp.Matrix]]


def _dims(ex: m.Explicit) -> dict[Any, int]:
    return dict(zip((m.n_x, m.n_s, m.n_y), ex.sizes, strict=True))


def expansion_candidate(derivation: Derivation, ex: m.Explicit) -> Candidate:
    """Term by term, each factor through its own evaluated Jacobian where it has one."""
    act, dims = derivation.config.act, _dims(ex)

    def run(binding: Binding) -> dict[str, sp.Matrix]:
        out = {}
        for name, expansion in derivation.expansions.items():
            w = binding[expansion.weight]
            total = sp.zeros(*w.shape)
            for term in expansion.terms:
                grad = sp.Matrix([[1]])
                for f in term.factors:
                    if f.jacobian is not None:
                        grad = grad * evaluate(f.jacobian, binding, act, dims).T
                    else:
                        local = {**binding, f.placeholder: grad}
                        grad = evaluate(f.pullback, local, act, dims)
                total += grad
            out[name] = total
        return out

    return run


def expanded_candidate(derivation: Derivation, ex: m.Explicit) -> Candidate:
    """The expanded closed form, one matrix expression per term."""
    act, dims = derivation.config.act, _dims(ex)

    def run(binding: Binding) -> dict[str, sp.Matrix]:
        out = {}
        for name, terms in derivation.closed.expanded.items():
            w = binding[derivation.expansions[name].weight]
            total = sp.zeros(*w.shape)
            for term in terms:
                total += evaluate(term, binding, act, dims)
            out[name] = total
        return out

    return run


def collected_candidate(derivation: Derivation, ex: m.Explicit) -> Candidate:
    """The δ recurrence, evaluated line by line, then the collected sums."""
    act, dims = derivation.config.act, _dims(ex)

    def run(binding: Binding) -> dict[str, sp.Matrix]:
        local = dict(binding)
        for line in derivation.closed.recurrence:
            local[line.target] = evaluate(line.expression, local, act, dims)
        return {
            name: evaluate(expr, local, act, dims)
            for name, expr in derivation.closed.collected.items()
        }

    return run


CANDIDATES: dict[str, Callable[[Derivation, m.Explicit], Candidate]] = {
    "chain-rule expansion": expansion_candidate,
    "expanded closed form": expanded_candidate,
    "collected closed form (δ recurrence)": collected_candidate,
}


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    candidate: str
    weight: str
    method: str  # "exact" (rational arithmetic) or "numeric" (50 digits)
    max_error: float  # max relative difference over entries and points (0 or inf when exact)
    ok: bool


@dataclass(frozen=True)
class Proof:
    config: m.Config
    sizes: tuple[int, int, int]
    points: int
    comparisons: tuple[Comparison, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons)

    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.ok]

    def raise_if_failed(self) -> None:
        if not self.ok:
            bad = "; ".join(f"{c.candidate} ∂E/∂{c.weight}" for c in self.failures())
            raise ProofError(f"{self.config.describe()} at sizes {self.sizes}: {bad} differ")

    def lines(self) -> list[str]:
        """A human-readable report, one line per comparison."""
        nx_, ns_, ny_ = self.sizes
        out = [
            f"proof for {self.config.describe()} at n_x={nx_}, n_s={ns_}, n_y={ny_}: "
            f"ground truth = sympy.diff of the explicit scalar loss, entry by entry"
        ]
        for c in self.comparisons:
            how = (
                f"identical in exact rational arithmetic at {self.points} random rational points"
                if c.method == "exact"
                else f"max rel. difference {c.max_error:.1e} at {self.points} random rational "
                f"points, {DIGITS} digits"
            )
            verdict = "equal" if c.ok else "NOT EQUAL"
            out.append(f"  ∂E/∂{c.weight}: {c.candidate}: {verdict} ({how})")
        out.append(f"  {'PROVEN' if self.ok else 'FAILED'} in {self.seconds:.1f} s")
        return out


def is_polynomial(config: m.Config) -> bool:
    return config.activation_name == "identity" and config.output == "linear"


def prove(
    derivation: Derivation,
    sizes: tuple[int, int, int],
    *,
    points: int = 3,
    seed: int = 0,
    candidates: Sequence[str] | None = None,
) -> Proof:
    """Compare the derivation's expansion and closed forms with the entry-wise ground truth."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"points: expected an int ≥ 1, got {points!r}")
    names = list(CANDIDATES) if candidates is None else list(candidates)
    for name in names:
        if name not in CANDIDATES:
            raise ValueError(f"candidates: expected names from {list(CANDIDATES)}, got {name!r}")
    start = time.perf_counter()
    config = derivation.config
    ex = m.explicit(config, sizes)
    truth = ground_truth(ex)
    comparisons = _compare(derivation, ex, truth, names, points, seed, exact=is_polynomial(config))
    return Proof(config, ex.sizes, points, tuple(comparisons), time.perf_counter() - start)


def _compare(
    derivation: Derivation,
    ex: m.Explicit,
    truth: dict[str, sp.Matrix],
    names: list[str],
    points: int,
    seed: int,
    *,
    exact: bool,
) -> list[Comparison]:
    rng = random.Random(seed)
    inputs = ex.input_symbols
    flat_truth = [e for w in m.WEIGHT_NAMES for e in truth[w]]
    truth_fn = (
        None
        if exact
        else sp.lambdify(inputs, flat_truth, modules=[_MPMATH_EXTRA, "mpmath"], cse=True)
    )
    candidates = {n: CANDIDATES[n](derivation, ex) for n in names}
    worst: dict[tuple[str, str], sp.Float] = {(n, w): sp.Float(0) for n in names for w in truth}
    with mpmath.workdps(DIGITS + 10):
        for _ in range(points):
            point = {v: sp.Rational(rng.randint(-12, 12), rng.randint(5, 9)) for v in inputs}
            if exact:
                expected = [e.xreplace(point) for e in flat_truth]
                binding = {k: v.xreplace(point) for k, v in ex.values.items()}
            else:
                floats = {v: sp.Float(r, DIGITS + 10) for v, r in point.items()}
                assert truth_fn is not None
                expected = truth_fn(*(mpmath.mpf(r.p) / r.q for r in point.values()))
                binding = {k: v.xreplace(floats) for k, v in ex.values.items()}
            for cand_name, run in candidates.items():
                got = run(binding)
                flat_got = [e for w in m.WEIGHT_NAMES for e in got[w]]
                k = 0
                for w in m.WEIGHT_NAMES:
                    for _entry in truth[w]:
                        if exact:
                            a, b = sp.Rational(expected[k]), sp.Rational(flat_got[k])
                            err = sp.Float(0) if a == b else sp.oo
                        else:
                            a = sp.Float(expected[k], DIGITS + 10)
                            b = sp.N(flat_got[k], DIGITS + 10)
                            err = abs(a - b) / max(sp.Float(1), abs(a))
                        if err > worst[(cand_name, w)] or not err.is_finite:
                            worst[(cand_name, w)] = err
                        k += 1
    method = "exact" if exact else "numeric"
    return [
        Comparison(n, w, method, float(worst[(n, w)]), bool(worst[(n, w)] <= TOLERANCE))
        for n in names
        for w in m.WEIGHT_NAMES
    ]


def _heaviside(v: Any, h0: Any = 0.5) -> Any:
    return mpmath.mpf(1) if v > 0 else (mpmath.mpf(0) if v < 0 else mpmath.mpf(h0))


# lambdify's mpmath printer knows neither Heaviside nor Max.
_MPMATH_EXTRA = {"Heaviside": _heaviside, "Max": max}


def lecture_sizes() -> tuple[int, int, int]:
    """The sizes ``--check`` uses by default (three of each, as in the lecture's figures)."""
    return (3, 3, 3)
