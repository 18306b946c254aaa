"""Stage 2: the chain rule. The paths E_t → ȳ_t → s̄_t → … → s̄_i → W and their factors (Eq. 36–47).

Contract: :func:`expand` turns a :class:`~derive.model.Statement` into one :class:`Expansion` per
weight: a sum of :class:`Term` s, each a product of :class:`Factor` s, as the lecture writes
them. The graph is the statement unrolled over N steps; the lecture's chain rule names only the
*shown* quantities (E_t, ȳ_t, s̄_t), so a factor ∂ū/∂v̄ between two of them runs through the
named intermediates between (z̄_t, ō_t), and each factor is composed from the local rules of
:mod:`derive.ops`: its Jacobian and its pullback. Nothing here is a string, and no rule is
written here.

Layout: the numerator layout. ∂ū/∂v̄ has a row per entry of ū and a column per entry of v̄, so
the lecture's products read left to right are literal matrix products: ∂E_3/∂ȳ_3 = −2(d̄_3 − ȳ_3)
is a row, ∂ȳ_3/∂s̄_3 = W_yᵀ, ∂s̄_3/∂s̄_2 = diag(Φ'(z̄_3)) W_sᵀ. A pullback maps the incoming row
U = ∂E/∂ū to ∂E/∂v̄ = U J. A factor ∂s̄_i/∂W has three indices: it has no Jacobian matrix, only
its pullback, and it is the *immediate* partial, s̄_{i-1} held fixed (the path through s̄_{i-1}
is a term of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive import model as m
from derive import ops

KINDS = ("loss", "output", "state", "weight")


def placeholder(cols: object) -> sp.MatrixSymbol:
    """U, the incoming row gradient ∂E/∂(numerator) of a pullback."""
    return sp.MatrixSymbol("U", 1, cols)


@dataclass(frozen=True)
class Factor:
    """One link ∂numerator/∂denominator of the chain rule."""

    numerator: sp.MatrixSymbol
    denominator: sp.MatrixSymbol
    kind: str
    jacobian: Any  # numerator layout; None for ∂(row)/∂(matrix)
    pullback: Any  # ∂E/∂denominator in terms of placeholder U = ∂E/∂numerator

    @property
    def placeholder(self) -> sp.MatrixSymbol:
        return placeholder(self.numerator.shape[1])

    def pull(self, upstream: Any) -> Any:
        """∂E/∂denominator given upstream = ∂E/∂numerator (the 1×1 identity starts a sweep)."""
        return ops.tidy(self.pullback.xreplace({self.placeholder: upstream}))


@dataclass(frozen=True)
class Term:
    """One path of the chain rule: E_t → ȳ_t → s̄_t → … → s̄_i → W (a product of factors)."""

    loss_step: int  # t of E_t
    through: int  # i: the step whose immediate partial ∂s̄_i/∂W (∂ȳ_t/∂W_y) ends the path
    factors: tuple[Factor, ...]

    def evaluate(self) -> Any:
        """The term as one matrix expression shaped like W: the reverse sweep of the pullbacks."""
        grad: Any = sp.Identity(1)
        for factor in self.factors:
            grad = factor.pull(grad)
        return grad


@dataclass(frozen=True)
class Expansion:
    """∂E/∂W as the sum of its chain-rule terms (Eq. 36–47)."""

    weight: sp.MatrixSymbol
    terms: tuple[Term, ...]

    def evaluate(self) -> Any:
        return sp.MatAdd(*(t.evaluate() for t in self.terms))


class Graph:
    """The statement unrolled over N steps, as the chain rule walks it."""

    def __init__(self, stmt: m.Statement) -> None:
        self.stmt = stmt
        self.definitions = stmt.definitions()
        self.hidden = {
            k: v
            for k, v in self.definitions.items()
            if self.role(k) == "hidden" and not self.shown(k)
        }
        # A value the model names (softmax(ō_t) is ȳ_t) is written by its name in factors.
        self.names = {
            v: k for k, v in self.definitions.items() if not isinstance(v, sp.MatrixSymbol)
        }

    def role(self, symbol: Any) -> str:
        if symbol in self.stmt.weights:
            return "weight"
        found = m.step_of(symbol)
        return "given" if found is None else self.stmt.quantities[found[0]].role

    def shown(self, symbol: Any) -> bool:
        found = m.step_of(symbol)
        return (
            found is not None
            and symbol in self.definitions
            and self.stmt.quantities[found[0]].shown
        )

    def ends(self, node: sp.MatrixSymbol) -> list[sp.MatrixSymbol]:
        """What ``node``'s definition reads through the hidden intermediates: the weights (the
        immediate partials) first, then the shown quantities, latest step first."""
        found: dict[Any, None] = {}
        todo = [self.definitions[node]]
        while todo:
            expr = todo.pop(0)
            for symbol in sorted(expr.atoms(sp.MatrixSymbol), key=str):
                if symbol in self.hidden:
                    todo.append(self.hidden[symbol])
                elif symbol in self.stmt.weights or self.shown(symbol):
                    found[symbol] = None
        weights = [w for w in self.stmt.weights if w in found]
        shown = sorted((s for s in found if s not in weights), key=_latest_first)
        return weights + shown

    def factor(self, numerator: sp.MatrixSymbol, denominator: sp.MatrixSymbol) -> Factor:
        rhs = self.definitions[numerator]
        u = placeholder(numerator.shape[1])
        if self.role(denominator) == "weight":
            kind = "weight"
        else:
            kind = {"loss": "loss", "state": "state"}.get(self.role(numerator), "output")
        jacobian = ops.jacobian(rhs, denominator, self.hidden, out=numerator)
        pullback = ops.vjp(rhs, denominator, u, self.hidden, out=numerator)
        return Factor(
            numerator,
            denominator,
            kind,
            None if jacobian is None else jacobian.xreplace(self.names),
            pullback.xreplace(self.names),  # type: ignore[union-attr]
        )

    def reaches(self, weight: sp.MatrixSymbol) -> set[Any]:
        """The computed quantities that depend on ``weight``, in one forward pass."""
        out: set[Any] = set()
        for target, rhs in self.definitions.items():
            atoms = rhs.atoms(sp.MatrixSymbol)
            if weight in atoms or atoms & out:
                out.add(target)
        return out


def _latest_first(symbol: Any) -> tuple[Any, str]:
    found = m.step_of(symbol)
    return (-(found[1] if found else 0), str(symbol))


def paths(
    stmt: m.Statement, weight: sp.MatrixSymbol, graph: Graph | None = None
) -> tuple[Term, ...]:
    """Every chain-rule path from the loss to ``weight``: through s̄_N first, as the lecture;
    truncated at K, the paths of E_t end at s̄_{t−K+1} (the lecture's sum over i in Eq. 42 and
    47 runs from t − K + 1)."""
    if weight not in stmt.weights:
        names = [w.name for w in stmt.weights]
        raise ValueError(f"weight: expected one of {names}, got {weight!r}")
    graph = graph or Graph(stmt)
    reaching = graph.reaches(weight)
    (loss,) = stmt.names("loss")
    terms: list[Term] = []

    window = stmt.config.window

    def walk(node: sp.MatrixSymbol, factors: tuple[Factor, ...], t: int) -> None:
        for end in graph.ends(node):
            step = m.step_of(end)
            if window is not None and step is not None and step[1] < t - window + 1:
                continue  # truncated: E_t reaches back to s̄_{t−K+1} only
            if end == weight:
                step = m.step_of(node)
                assert step is not None
                terms.append(Term(t, int(step[1]), (*factors, graph.factor(node, end))))
            elif end in reaching:
                walk(end, (*factors, graph.factor(node, end)), t)

    for t in stmt.config.loss_terms:
        walk(m.at(loss, t), (), t)
    return tuple(terms)


def transitions(stmt: m.Statement, graph: Graph | None = None) -> tuple[Factor, ...]:
    """∂s̄_t/∂s̄_{t−1} for each state, at the generic step t: the factor every step back
    multiplies by (in the lecture's RNN diag(Φ'(z̄_t)) W_sᵀ). Its repeated product decides
    whether gradients vanish or explode; it is built like every factor of a term, at step N,
    then renamed to step t."""
    graph = graph or Graph(stmt)
    last = stmt.config.steps
    out = []
    for name in stmt.names("state"):
        f = graph.factor(m.at(name, last), m.at(name, last - 1))
        steps = {last: m.t, last - 1: m.t - 1}
        out.append(
            Factor(
                m.renumber(f.numerator, steps),
                m.renumber(f.denominator, steps),
                f.kind,
                m.renumber(f.jacobian, steps),
                m.renumber(f.pullback, steps),
            )
        )
    return tuple(out)


def expand(stmt: m.Statement) -> dict[str, Expansion]:
    """∂E/∂W for every weight as a chain-rule expansion, keyed by weight name."""
    graph = Graph(stmt)
    return {w.name: Expansion(w, paths(stmt, w, graph)) for w in stmt.weights}
