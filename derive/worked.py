"""Stage 5 (a consumer of the derivation): the lecture's case worked with numbers.

Contract: :func:`worked_example` takes the :class:`~derive.derivation.Derivation` of the lecture's
case (N = 3, loss E_3) and evaluates it at n_x = n_s = n_y = 1 and small concrete numbers: every
forward value (Eq. 33–35) and every chain-rule term of ∂E_3/∂W_s (Eq. 38–40), factor by factor
(each factor's Jacobian, a 1×1 matrix; the last factor ∂s̄_k/∂W_s by its action on the row that
reaches it), and their sum (Eq. 41). Exact inputs, values to 30 digits. It derives and prints
nothing; the notes print it, :mod:`derive.generate` checks it against the generated code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from derive import activations as acts
from derive import model as m
from derive import ops
from derive.derivation import Derivation
from derive.errors import GenerationError

DIGITS = 30

# The example's inputs: small numbers, s̄_0 ≠ 0 so that the term through s̄_1 (Eq. 40) shows.
VALUES: dict[str, sp.Rational] = {
    "W_x": sp.Rational(1, 2),
    "W_s": sp.Rational(3, 4),
    "W_y": sp.Rational(3, 2),
    "s_0": sp.Rational(1, 2),
    "x_1": sp.Integer(1),
    "x_2": sp.Rational(-1, 2),
    "x_3": sp.Integer(2),
    "d_1": sp.Integer(0),
    "d_2": sp.Integer(0),
    "d_3": sp.Integer(1),
}


@dataclass(frozen=True)
class Term:
    """One chain-rule term: its factors (Leibniz numerator, denominator) with their values, and
    the value of their product."""

    through: int  # k: the term's last factor is ∂s̄_k/∂W
    factors: tuple[tuple[sp.MatrixSymbol, sp.MatrixSymbol, sp.Float], ...]
    value: sp.Float


@dataclass(frozen=True)
class WorkedExample:
    """The lecture's case at n_x = n_s = n_y = 1 (see the module docstring)."""

    inputs: tuple[tuple[sp.MatrixSymbol, sp.Rational], ...]
    forward: tuple[tuple[sp.MatrixSymbol, sp.Float], ...]  # z̄_t, s̄_t (t = 1, 2, 3), ȳ_3, E_3
    derivatives: tuple[tuple[sp.MatrixSymbol, sp.Float], ...]  # Φ'(z̄_t), as D_t
    terms: tuple[Term, ...]  # Eq. 38, 39, 40
    total: sp.Float  # Eq. 41, ∂E_3/∂W_s
    terms_x: tuple[Term, ...]  # Eq. 43, 44, 45
    total_x: sp.Float  # Eq. 46, ∂E_3/∂W_x

    def arrays(self) -> dict[str, np.ndarray]:
        """The inputs as the generated modules take them: x, d (3, 1), W_x, W_s, W_y (1, 1),
        s0 (1,)."""
        v = {str(s.name): float(value) for s, value in self.inputs}
        return {
            "x": np.array([[v["x_1"]], [v["x_2"]], [v["x_3"]]]),
            "d": np.array([[v["d_1"]], [v["d_2"]], [v["d_3"]]]),
            "W_x": np.array([[v["W_x"]]]),
            "W_s": np.array([[v["W_s"]]]),
            "W_y": np.array([[v["W_y"]]]),
            "s0": np.array([v["s_0"]]),
        }

    def __getattr__(self, name: str) -> Any:
        """x, d, W_x, W_s, W_y, s0 as NumPy arrays (for the notebook)."""
        if name in ("x", "d", "W_x", "W_s", "W_y", "s0"):
            return self.arrays()[name]
        raise AttributeError(name)

    @property
    def term_values(self) -> dict[str, float]:
        """{"38": …, "39": …, "40": …}: each term's value."""
        return {str(41 - t.through): float(t.value) for t in self.terms}

    @property
    def dE_dW_s(self) -> float:
        return float(self.total)

    def _repr_latex_(self) -> str:
        # Like Derivation._repr_latex_: a later stage (the notes' printed pieces), imported for
        # notebook display; ∂E_3/∂W_s stands in for the generated module's value.
        from derive.notes.worked import worked

        w = worked(self, float(self.total))
        blocks = (w.forward.body, w.derivatives.body, w.terms.body, w.total.body)
        return (
            "$$\n"
            + "\n\\qquad\n".join(blocks[:2])
            + "\n$$\n$$\n"
            + "\n$$\n$$\n".join(blocks[2:])
            + "\n$$"
        )


def worked_example(d: Derivation, values: dict[str, sp.Rational] | None = None) -> WorkedExample:
    """The lecture's case, evaluated at ``values`` (default :data:`VALUES`), sizes (1, 1, 1)."""
    stmt = d.statement
    if d.config.steps != 3 or d.config.loss_steps != "last":
        raise GenerationError(f"the worked example needs the lecture's case, got {d.config}")
    values = dict(VALUES if values is None else values)
    ctx = ops.Context(d.config.act, {m.n_x: 1, m.n_s: 1, m.n_y: 1})
    given = [*stmt.weights, m.s(0), *(m.at(b, k) for b in ("x", "d") for k in (1, 2, 3))]
    binding: dict[Any, sp.Matrix] = {s: sp.Matrix([[values[str(s.name)]]]) for s in given}
    for target, rhs in stmt.definitions().items():
        binding[target] = ops.evaluate(rhs, binding, ctx).evalf(DIGITS)

    def number(e: Any) -> sp.Float:
        return sp.Float(ops.evaluate(e, binding, ctx).evalf(DIGITS)[0, 0], DIGITS)

    forward = [(q, number(q)) for k in (1, 2, 3) for q in (m.z(k), m.s(k))]
    forward += [(m.y(3), number(m.y(3))), (m.E(3), number(m.E(3)))]
    derivatives = tuple((m.D(k), number(acts.dphi(m.z(k)))) for k in (1, 2, 3))
    found = {}
    for weight in ("W_s", "W_x"):
        terms = []
        for term in d.expansions[weight].terms:
            factors = []
            row = sp.Matrix([[1]])
            for f in term.factors:
                if f.jacobian is not None:
                    J = ops.evaluate(f.jacobian, binding, ctx)
                else:  # ∂s̄_k/∂W at n = 1: its action on U = 1
                    J = ops.evaluate(f.pullback, {**binding, f.placeholder: sp.Matrix([[1]])}, ctx)
                value = sp.Float(J.evalf(DIGITS)[0, 0], DIGITS)
                factors.append((f.numerator, f.denominator, value))
                row = row * J
            value = sp.Float(row.evalf(DIGITS)[0, 0], DIGITS)
            terms.append(Term(term.through, tuple(factors), value))
        total = sp.Float(sum(t.value for t in terms), DIGITS)
        expected = sum(
            (ops.evaluate(e, binding, ctx) for e in d.closed.expanded[weight]), sp.zeros(1, 1)
        )
        if abs(total - expected.evalf(DIGITS)[0, 0]) > sp.Float(10) ** (5 - DIGITS):
            raise GenerationError(
                f"the worked example's {weight} terms do not sum to its closed form"
            )
        found[weight] = (tuple(terms), total)
    return WorkedExample(
        tuple((s, values[str(s.name)]) for s in given),
        tuple(forward),
        derivatives,
        *found["W_s"],
        *found["W_x"],
    )
