"""Stage 4: proof. Instantiation at concrete sizes and comparison with entry-wise ``diff``.

Contract: :func:`prove` instantiates the model with a scalar symbol per entry
(:func:`derive.model.explicit`), takes the ground truth ∂E/∂w for every weight entry w with
``sympy.diff`` of the explicit scalar loss, and compares four candidates with it:

1. the chain-rule expansion, term by term, each factor through its own Jacobian (a literal
   matrix product, numerator layout) or, for a three-index factor, its pullback;
2. the expanded closed form (the lecture's explicit terms);
3. the collected closed form (the δ recurrence);
4. the generic step (the forms at t = N and t < N and the sums over steps that a loop over any
   number of steps runs), instantiated at t = N, …, 1.

It also checks every numeric form the generated code runs instead of a definition (an
overflow-safe Φ, Φ' from Φ's output, softmax with its row maximum subtracted) against that
definition, at random points and at points of magnitude up to 1000: a wrong numeric form fails
the proof like a wrong derivative.

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

from derive import model as m
from derive import ops
from derive.errors import ProofError

if TYPE_CHECKING:
    from derive.activations import NumericForm
    from derive.config import Config
    from derive.derivation import Derivation

DIGITS = 50
TOLERANCE = sp.Float("1e-30", DIGITS)

Binding = dict[sp.MatrixSymbol, sp.Matrix]
# The model at concrete sizes, whole or as a graph of scalar definitions (candidates read dims).
Model = m.Explicit | m.ScalarGraph


def ground_truth(ex: m.Explicit) -> dict[str, sp.Matrix]:
    """∂E/∂w by ``sympy.diff`` of the explicit scalar loss, one entry per weight entry w; under
    truncation the constant rows standing for s̄_{t−K} are given their values after the diff."""
    return {
        w.name: ex.values[w].applyfunc(lambda entry: sp.diff(ex.loss, entry).xreplace(ex.constants))
        for w in ex.statement.weights
    }


# ---------------------------------------------------------------------------------------------
# The candidates, each a function of a binding of the model's symbols.

Candidate = Callable[[Binding], dict[str, sp.Matrix]]


def _context(derivation: Derivation, ex: Model) -> ops.Context:
    return ops.Context(derivation.config.act, ex.dims)


def expansion_candidate(derivation: Derivation, ex: Model) -> Candidate:
    """Term by term: U J with each factor's Jacobian where it has one, else its pullback."""
    ctx = _context(derivation, ex)

    def run(binding: Binding) -> dict[str, sp.Matrix]:
        out = {}
        for name, expansion in derivation.expansions.items():
            total = sp.zeros(*binding[expansion.weight].shape)
            for term in expansion.terms:
                grad = sp.Matrix([[1]])
                for f in term.factors:
                    if f.jacobian is not None:
                        grad = grad * ops.evaluate(f.jacobian, binding, ctx)
                    else:
                        grad = ops.evaluate(f.pullback, {**binding, f.placeholder: grad}, ctx)
                total += grad
            out[name] = total
        return out

    return run


def expanded_candidate(derivation: Derivation, ex: Model) -> Candidate:
    """The expanded closed form, one matrix expression per term."""
    ctx = _context(derivation, ex)

    def run(binding: Binding) -> dict[str, sp.Matrix]:
        out = {}
        for name, terms in derivation.closed.expanded.items():
            total = sp.zeros(*binding[derivation.expansions[name].weight].shape)
            for term in terms:
                total += ops.evaluate(term, binding, ctx)
            out[name] = total
        return out

    return run


def collected_candidate(derivation: Derivation, ex: Model) -> Candidate:
    """The δ recurrence, evaluated line by line, then the collected sums."""
    ctx = _context(derivation, ex)

    def run(binding: Binding) -> dict[str, sp.Matrix]:
        local = dict(binding)
        for line in derivation.closed.recurrence:
            local[line.target] = ops.evaluate(line.expression, local, ctx)
        return {
            name: ops.evaluate(expr, local, ctx)
            for name, expr in derivation.closed.collected.items()
        }

    return run


def generic_candidate(derivation: Derivation, ex: Model) -> Candidate:
    """The generic step at t = N, N − 1, …, 1 (the t = N lines first), then the sums over t.
    Truncated at K: for each loss step u, its seed lines at t = u and its carry lines at
    t = u − 1, …, u − K + 1, then each sum over u's window."""
    ctx = _context(derivation, ex)
    gen, n = derivation.closed.generic, derivation.config.steps
    window = derivation.config.window

    def lanes(binding: Binding) -> dict[str, sp.Matrix]:
        out = {w.name: sp.zeros(*binding[w].shape) for w in derivation.statement.weights}
        for u in derivation.config.loss_terms:
            local = dict(binding)
            steps = list(range(u, max(1, u - window + 1) - 1, -1))  # type: ignore[operator]
            for k in steps:
                for line in gen.seed if k == u else gen.carry:
                    at = {m.t: k}
                    target = m.instantiate(line.target, at)
                    local[target] = ops.evaluate(m.instantiate(line.expression, at), local, ctx)
            for name, sums in gen.lane_sums.items():
                for part in sums:
                    for k in steps if part.steps == "window" else [u]:
                        summand = m.instantiate(part.summand, {m.t: k})
                        out[name] += ops.evaluate(summand, local, ctx)
        return out

    def run(binding: Binding) -> dict[str, sp.Matrix]:
        if window is not None:
            return lanes(binding)
        local = dict(binding)
        for k in range(n, 0, -1):
            lines, at = (gen.last, {m.N: n}) if k == n else (gen.step, {m.t: k})
            for line in lines:
                target = m.instantiate(line.target, at)
                local[target] = ops.evaluate(m.instantiate(line.expression, at), local, ctx)
        out = {}
        for name, sums in gen.sums.items():
            total = sp.zeros(*binding[derivation.expansions[name].weight].shape)
            for part in sums:
                steps = [{m.N: n}] if part.steps == "last" else [{m.t: k} for k in range(1, n + 1)]
                for at in steps:
                    total += ops.evaluate(m.instantiate(part.summand, at), local, ctx)
            out[name] = total
        return out

    return run


CANDIDATES: dict[str, Callable[[Derivation, Model], Candidate]] = {
    "chain-rule expansion": expansion_candidate,
    "expanded closed form": expanded_candidate,
    "collected closed form (δ recurrence)": collected_candidate,
    "generic step (any N)": generic_candidate,
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
class FormCheck:
    """A numeric form of the generated code against its definition."""

    name: str
    max_error: float
    ok: bool


@dataclass(frozen=True)
class Proof:
    config: Config
    sizes: tuple[int, int, int]
    points: int
    comparisons: tuple[Comparison, ...]
    forms: tuple[FormCheck, ...]
    seconds: float
    truth: str = "diff"  # how the ground truth was taken (see prove)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons) and all(f.ok for f in self.forms)

    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.ok]

    def raise_if_failed(self) -> None:
        if not self.ok:
            bad = [f"{c.candidate} ∂E/∂{c.weight}" for c in self.failures()]
            bad += [f.name for f in self.forms if not f.ok]
            raise ProofError(
                f"{self.config.describe()} at sizes {self.sizes}: {'; '.join(bad)} differ"
            )

    def lines(self) -> list[str]:
        """A human-readable report, one line per comparison."""
        nx_, ns_, ny_ = self.sizes
        out = [
            f"proof for {self.config.describe()} at n_x={nx_}, n_s={ns_}, n_y={ny_}: "
            f"ground truth = {TRUTH_TEXT[self.truth]}"
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
        for f in self.forms:
            verdict = "equal" if f.ok else "NOT EQUAL"
            out.append(
                f"  numeric form {f.name}: {verdict} to its definition (max rel. difference "
                f"{f.max_error:.1e} at {FORM_POINTS} points up to ±1000, {DIGITS} digits)"
            )
        out.append(f"  {'PROVEN' if self.ok else 'FAILED'} in {self.seconds:.1f} s")
        return out


def is_polynomial(config: Config) -> bool:
    return config.activation_name == "identity" and config.output == "linear"


TRUTHS = ("diff", "graph")
TRUTH_TEXT = {
    "diff": "sympy.diff of the explicit scalar loss, entry by entry",
    "graph": "the explicit model entry by entry, each entry's definition differentiated by "
    "sympy.diff and composed by the scalar chain rule at each point",
}


def default_truth(config: Config) -> str:
    """'diff' for the lecture's RNN; 'graph' for a gated cell, whose explicit loss is too large
    to differentiate whole beyond N = 2 (``tests/test_cells.py`` shows both give the same)."""
    return "diff" if config.cell == "rnn" else "graph"


def prove(
    derivation: Derivation,
    sizes: tuple[int, int, int],
    *,
    points: int = 3,
    seed: int = 0,
    candidates: Sequence[str] | None = None,
    truth: str | None = None,
) -> Proof:
    """Compare the derivation's expansion and closed forms with the entry-wise ground truth,
    and the generated code's numeric forms with their definitions.

    ``truth``: 'diff', ``sympy.diff`` of the explicit scalar loss (:func:`ground_truth`);
    'graph', the explicit model kept as a graph of scalar definitions, each differentiated by
    ``sympy.diff`` and composed by the scalar chain rule at each point (:func:`graph_truth`);
    None picks :func:`default_truth`."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"points: expected an int ≥ 1, got {points!r}")
    names = list(CANDIDATES) if candidates is None else list(candidates)
    for name in names:
        if name not in CANDIDATES:
            raise ValueError(f"candidates: expected names from {list(CANDIDATES)}, got {name!r}")
    config = derivation.config
    truth = default_truth(config) if truth is None else truth
    if truth not in TRUTHS:
        raise ValueError(f"truth: expected one of {list(TRUTHS)}, got {truth!r}")
    start = time.perf_counter()
    exact = is_polynomial(config)
    model: Model
    if truth == "diff":
        model = m.explicit(derivation.statement, sizes)
        at_point = _diff_truth(model, exact)
    else:
        model = m.scalar_graph(derivation.statement, sizes)
        at_point = graph_truth(model, exact)
    comparisons = _compare(derivation, model, at_point, names, points, seed, exact=exact)
    forms = tuple(check_form(f, config, seed) for f in derivation.statement.numeric_forms())
    return Proof(
        config, model.sizes, points, tuple(comparisons), forms, time.perf_counter() - start, truth
    )


# The ground truth and the model's values at one point: ∂E/∂w per weight, and every symbol of
# the model (inputs and computed quantities) bound to its value there.
AtPoint = Callable[[dict[sp.Symbol, sp.Rational]], tuple[dict[str, sp.Matrix], Binding]]


def _diff_truth(ex: m.Explicit, exact: bool) -> AtPoint:
    truth = ground_truth(ex)
    weights = list(truth)
    flat = [e for w in weights for e in truth[w]]
    fn = (
        None
        if exact
        else sp.lambdify(ex.input_symbols, flat, modules=[_MPMATH_EXTRA, "mpmath"], cse=True)
    )

    def at(point: dict[sp.Symbol, sp.Rational]) -> tuple[dict[str, sp.Matrix], Binding]:
        if exact:
            values = [e.xreplace(point) for e in flat]
            binding = {k: v.xreplace(point) for k, v in ex.values.items()}
        else:
            assert fn is not None
            values = fn(*(mpmath.mpf(r.p) / r.q for r in point.values()))
            floats = {v: sp.Float(r, DIGITS + 10) for v, r in point.items()}
            binding = {k: v.xreplace(floats) for k, v in ex.values.items()}
        out, k = {}, 0
        for w in weights:
            rows, cols = truth[w].shape
            out[w] = sp.Matrix(rows, cols, values[k : k + rows * cols])
            k += rows * cols
        return out, binding

    return at


def graph_truth(graph: m.ScalarGraph, exact: bool) -> AtPoint:
    """∂E/∂w at a point from the scalar graph: each node's definition differentiated by
    ``sympy.diff`` with respect to each entry it reads (once, symbolically), then, at the
    point, the nodes' values in order and the adjoints ∂E/∂v in reverse order (∂E/∂u = Σ over
    the nodes v reading u of ∂E/∂v · ∂v/∂u): the scalar chain rule, entry by entry. No matrix
    rule of :mod:`derive.ops` takes part; the same values bind the candidates."""
    weights = graph.statement.weights
    wanted = set(graph.definitions) | {e for w in weights for e in graph.values[w]}
    partials = {
        node: [(u, sp.diff(expr, u)) for u in sorted(expr.free_symbols, key=str) if u in wanted]
        for node, expr in graph.definitions.items()
    }

    def value(e: sp.Expr, values: dict[Any, Any]) -> Any:
        v = e.xreplace(values)
        return v if exact or v.is_Float else sp.N(v, DIGITS + 10)

    def at(point: dict[sp.Symbol, sp.Rational]) -> tuple[dict[str, sp.Matrix], Binding]:
        values: dict[Any, Any] = (
            dict(point) if exact else {v: sp.Float(r, DIGITS + 10) for v, r in point.items()}
        )
        for node, expr in graph.definitions.items():
            values[node] = value(expr, values)
        adjoint: dict[Any, Any] = {}
        for node in graph.loss:
            adjoint[node] = adjoint.get(node, 0) + 1
        for node in reversed(list(graph.definitions)):
            a = adjoint.get(node)
            if a is None:
                continue
            for u, du in partials[node]:
                adjoint[u] = adjoint.get(u, 0) + a * value(du, values)
        truth = {
            w.name: graph.values[w].applyfunc(lambda e: adjoint.get(e, sp.Integer(0)))
            for w in weights
        }
        binding = {k: v.applyfunc(lambda e: values[e]) for k, v in graph.values.items()}
        return truth, binding

    return at


def _compare(
    derivation: Derivation,
    model: Model,
    at_point: AtPoint,
    names: list[str],
    points: int,
    seed: int,
    *,
    exact: bool,
) -> list[Comparison]:
    rng = random.Random(seed)
    inputs = model.input_symbols
    weights = [w.name for w in derivation.statement.weights]
    candidates = {n: CANDIDATES[n](derivation, model) for n in names}
    worst: dict[tuple[str, str], sp.Float] = {(n, w): sp.Float(0) for n in names for w in weights}
    with mpmath.workdps(DIGITS + 10):
        for _ in range(points):
            point = {v: sp.Rational(rng.randint(-12, 12), rng.randint(5, 9)) for v in inputs}
            expected, binding = at_point(point)
            for cand_name, run in candidates.items():
                got = run(binding)
                for w in weights:
                    for want, have in zip(expected[w], got[w], strict=True):
                        err = _error(want, have, exact)
                        if err > worst[(cand_name, w)] or not err.is_finite:
                            worst[(cand_name, w)] = err
    method = "exact" if exact else "numeric"
    return [
        Comparison(n, w, method, float(worst[(n, w)]), bool(worst[(n, w)] <= TOLERANCE))
        for n in names
        for w in weights
    ]


def _error(expected: Any, got: Any, exact: bool) -> Any:
    if exact:
        return sp.Float(0) if sp.Rational(expected) == sp.Rational(got) else sp.oo
    a = sp.Float(expected, DIGITS + 10)
    b = sp.N(got, DIGITS + 10)
    return abs(a - b) / max(sp.Float(1), abs(a))


# A numeric form is compared at this many points of a row of FORM_SIZE entries: half of them of
# moderate size, half scaled up to magnitude 1000 (where a naive exp overflows in float64).
FORM_POINTS = 6
FORM_SIZE = 4


def check_form(form: NumericForm, config: Config, seed: int = 0) -> FormCheck:
    """A numeric form against its definition at random points, at 50 digits."""
    rng = random.Random(seed)
    ctx = ops.Context(config.act, {form.argument.shape[1]: FORM_SIZE})
    worst = sp.Float(0)
    for k in range(FORM_POINTS):
        scale = 1 if k < FORM_POINTS // 2 else 400
        entries = [
            sp.Float(sp.Rational(rng.randint(-12, 12) * scale, rng.randint(5, 9)), DIGITS + 10)
            for _ in range(FORM_SIZE)
        ]
        row = sp.Matrix([entries])
        binding = {form.argument: row}
        with mpmath.workdps(DIGITS + 10):
            got = ops.evaluate(form.numeric, binding, ctx)
            want = ops.evaluate(form.definition, binding, ctx)
            for a, b in zip(want, got, strict=True):
                err = _error(sp.N(a, DIGITS + 10), b, exact=False)
                if err > worst or not err.is_finite:
                    worst = err
    return FormCheck(form.name, float(worst), bool(worst <= TOLERANCE))


def _heaviside(v: Any, h0: Any = 0.5) -> Any:
    return mpmath.mpf(1) if v > 0 else (mpmath.mpf(0) if v < 0 else mpmath.mpf(h0))


# lambdify's mpmath printer knows neither Heaviside nor Max.
_MPMATH_EXTRA = {"Heaviside": _heaviside, "Max": max}


def lecture_sizes() -> tuple[int, int, int]:
    """The sizes ``--check`` uses by default (three of each, as in the lecture's figures)."""
    return (3, 3, 3)
