"""Stage 5 (code plan, shared): what a gradient module computes, before any language is chosen.

Contract: a plan is a list of :class:`Statement` s, ``target = expr``, each with the equation
labels it implements and *when* it is computed (:data:`OVER`): once, for every step at once,
at the last step, step by step forwards or backwards, or as a sum over steps. Expressions are
SymPy matrix expressions in step symbols (``s_t``, ``delta_t + 1``, ``s_N``) and weights; a
backend decides how they are stored and printed. The tools here take a :class:`Derivation`'s
results apart into statements without changing what they compute: Φ' through Φ's output,
the loss's residual named once, common subexpressions named ``_t0, _t1 …`` (never ``x0``: the
inputs are x̄_1, x̄_2 …). Nothing here prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import activations as acts
from derive import model as m
from derive import ops

OVER = {
    "once": "once per call",
    "all": "for every step at once",
    "last": "at the last step only",
    "forward": "step by step, t = 1 … T, reading step t − 1",
    "backward": "step by step, t = T − 1 … 1, reading step t + 1",
    "window": "for each loss step u, step by step back from t = u − 1 to u − K + 1",
    "sum": "a sum over every step",
    "at": "at one concrete step (straight-line code)",
}


@dataclass(frozen=True)
class Statement:
    """``target = expr`` under equation labels (the first is cited), computed ``over`` …"""

    labels: tuple[str, ...]
    target: sp.MatrixSymbol
    expr: Any
    over: str


def symbol(name: str, like: Any) -> sp.MatrixSymbol:
    """A symbol named ``name`` with the shape of ``like``."""
    return sp.MatrixSymbol(name, *like.shape)


def rename(expr: Any, names: dict[Any, str]) -> Any:
    """Replace symbols by symbols named after the code that holds them."""
    return expr.xreplace({k: symbol(v, k) for k, v in names.items()})


def free_names(e: Any) -> set[str]:
    return {str(s.name) for s in e.atoms(sp.MatrixSymbol)}


# ---------------------------------------------------------------------------------------------
# Rewrites that keep what is computed.


def through_outputs(expr: Any, stmt: m.Statement) -> Any:
    """Φ'(z̄_k) → the activation's Φ' of s̄_k where it has one (1 − s̄_k² for tanh): generated
    code then needs neither z̄_k nor a second evaluation of Φ. So for a gated cell's σ and tanh
    of a named pre-activation (σ'(z̄^r_k) → r̄_k ⊙ (1 − r̄_k)). Any step k."""
    act = stmt.config.act
    sources: dict[tuple[Any, str], tuple[str, Any]] = {}
    for eq in stmt.equations:
        if isinstance(eq.rhs, ElementwiseApplyFunction):
            fn = acts.applied_function(eq.rhs)
            found = acts.named(fn, act)
            inner = m.step_of(eq.rhs.expr)
            if found is None or inner is None or found[1] or found[0].dphi_of_output is None:
                continue
            slope = found[0].dphi_of_output
            sources[(acts.DERIVATIVES[fn], inner[0])] = (m.step_of(eq.target)[0], slope)  # type: ignore[index]
    mapping = {}
    for node in sp.preorder_traversal(expr):
        if isinstance(node, ElementwiseApplyFunction):
            at_step = m.step_of(node.expr)
            if at_step is not None and (acts.applied_function(node), at_step[0]) in sources:
                name, slope = sources[(acts.applied_function(node), at_step[0])]
                mapping[node] = acts.elementwise(slope, m.at(name, at_step[1]))
    return expr.xreplace(mapping)


def loss_node(stmt: m.Statement) -> Any:
    """The loss operation of step t (Eq. 35)."""
    (loss,) = stmt.names("loss")
    return next(eq.rhs for eq in stmt.equations if eq.target == m.at(loss, m.t))


def loss_at(stmt: m.Statement, k: Any) -> Any:
    """The loss operation at step k; its ``shared`` part (d̄_k − ȳ_k for the squared error, or
    None) is what its value and its pullback both compute."""
    return m.instantiate(loss_node(stmt), {m.t: k})


def matrix_cse(exprs: Sequence[Any], prefix: str = "_t") -> tuple[list[tuple[str, Any]], list[Any]]:
    """Common matrix subexpressions named ``_t0, _t1, …`` (SymPy's ``cse`` rebuilds the Lambda
    inside elementwise nodes and fails on them, and would name temporaries ``x0``, which collide
    with the inputs x̄_1, x̄_2).

    Returns (definitions in evaluation order, reduced expressions).
    """
    counts: Counter[Any] = Counter()

    def leaf(e: Any) -> bool:
        return isinstance(e, sp.MatrixSymbol) or (
            isinstance(e, sp.Transpose) and isinstance(e.arg, sp.MatrixSymbol)
        )

    def count(e: Any) -> None:
        if leaf(e):
            return
        counts[e] += 1
        if counts[e] > 1:
            return
        for a in e.args:
            if ops.is_matrix(a):
                count(a)

    for e in exprs:
        count(e)
    repeated = {e for e, c in counts.items() if c > 1}
    names: dict[Any, sp.MatrixSymbol] = {}
    defs: list[tuple[str, Any]] = []

    def rebuild(e: Any) -> Any:
        if leaf(e):
            return e
        if e in names:
            return names[e]
        args = [rebuild(a) if ops.is_matrix(a) else a for a in e.args]
        new = e.func(*args) if args != list(e.args) else e
        if e in repeated:
            name = f"{prefix}{len(defs)}"
            defs.append((name, new))
            names[e] = symbol(name, e)
            return names[e]
        return new

    reduced = [rebuild(e) for e in exprs]
    return defs, reduced


def prune(statements: Sequence[Statement], needed: Iterable[str]) -> list[Statement]:
    """The statements the ``needed`` names depend on, in order."""
    keep = []
    need = set(needed)
    for st in reversed(statements):
        if str(st.target.name) in need:
            keep.append(st)
            need |= free_names(st.expr)
    return list(reversed(keep))


def code_equations(stmt: m.Statement) -> list[m.Equation]:
    """The forward equations as code computes them: a named intermediate that only stands for
    another quantity (ō_t when ȳ_t = ō_t) is merged into it, the loss left out."""
    (loss,) = stmt.names("loss")
    equations = [eq for eq in stmt.equations if m.step_of(eq.target)[0] != loss]  # type: ignore[index]
    aliases = {eq.rhs: eq for eq in equations if isinstance(eq.rhs, sp.MatrixSymbol)}
    out = []
    for eq in equations:
        if eq.target in aliases:
            continue  # ō_t, computed as ȳ_t itself
        if eq in aliases.values():
            source = next(e for e in equations if e.target == eq.rhs)
            eq = m.Equation(eq.label, eq.target, source.rhs)
        out.append(eq)
    return out
