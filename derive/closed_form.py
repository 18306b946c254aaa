"""Stage 3: closed forms. The terms as matrix expressions, and the δ recurrence by a reverse sweep.

Contract: :func:`closed_forms` gives, for one :class:`~derive.model.Statement` and its chain-rule
expansions,

1. ``expanded``: each term of :mod:`derive.chain` swept into one matrix expression, as the
   lecture writes them (for N = 3, three explicit terms per weight);
2. ``recurrence`` and ``collected``: the reverse sweep over the N unrolled steps. Each computed
   quantity's ∂E/∂q is the sum, over the equations that read q, of the local pullbacks of
   :mod:`derive.ops`; the statement names some of them (g_t = ∂E/∂ō_t, δ_t = ∂E/∂z̄_t), which
   become the recurrence's lines, and each ∂E/∂W is the sum of the weight pullbacks over every
   equation that reads W (Σ_i s̄_{i-1}ᵀ δ_i …);
3. ``generic``: the same sweep at a generic step t, once at the last step (t = N) and once before
   it (t < N, where the step t + 1 reads step t's state), with each ∂E/∂W as a sum over steps
   of one summand. These are the forms a loop over any number of steps runs.

No formula is typed here: every line comes from the statement's equations and the operations'
rules. All three are proven equal to the ground truth in :mod:`derive.verify`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive import chain, ops
from derive import model as m
from derive.errors import DeriveError


@dataclass(frozen=True)
class Definition:
    """``target = expression``: one line of the backward recurrence."""

    target: sp.MatrixSymbol
    expression: Any


@dataclass(frozen=True)
class Sum:
    """∂E/∂W's sum over steps: Σ_t ``summand`` over every step (``all``) or at t = N (``last``)."""

    summand: Any
    steps: str


@dataclass(frozen=True)
class GenericForms:
    """The sweep at a generic step: at t = N, at t < N, and ∂E/∂W as sums over steps; and the
    same split by where the gradient comes from, for truncated BPTT's per-loss-step windows:
    ``seed``, the adjoints at step t from E_t alone; ``carry``, those at step t from step t + 1
    alone (read for each loss step u, δ^(u)_t); ``lane_sums``, ∂E/∂W's summand for each loss
    step u over its window (``window``) or at t = u alone (``own``)."""

    last: tuple[Definition, ...]
    step: tuple[Definition, ...]
    sums: dict[str, tuple[Sum, ...]]
    seed: tuple[Definition, ...]
    carry: tuple[Definition, ...]
    lane_sums: dict[str, tuple[Sum, ...]]


@dataclass(frozen=True)
class ClosedForms:
    """The closed forms of one configuration.

    expanded     weight name → (term per path, in the order of :func:`chain.paths`)
    recurrence   the named adjoints (g_t, δ_t) in evaluation order, δ_N first
    collected    weight name → ∂E/∂W in terms of g_t and δ_t
    generic      the same at a generic step t (any number of steps)
    """

    expanded: dict[str, tuple[Any, ...]]
    recurrence: tuple[Definition, ...]
    collected: dict[str, Any]
    generic: GenericForms


def _sweep(
    equations: Sequence[m.Equation],
    later: Sequence[m.Equation],
    known: Mapping[Any, Any],
    seeds: set[Any],
    stmt: m.Statement,
    loss: Any = None,
) -> tuple[list[Definition], dict[Any, Any]]:
    """∂E/∂q for the targets of ``equations``, last first. ``later`` are equations of later steps
    whose adjoints are ``known``; ``seeds`` the loss terms (∂E/∂E_t = 1); ``loss`` u names the
    adjoints as with respect to E_u alone (δ^(u)_i). Returns the named adjoints as lines and
    every target's adjoint (its name, or its expression)."""
    adjoint: dict[Any, Any] = dict(known)
    lines: list[Definition] = []
    # A value the model names (softmax(ō_t) is ȳ_t) is written by its name.
    names = {
        eq.rhs: eq.target for eq in (*equations, *later) if not isinstance(eq.rhs, sp.MatrixSymbol)
    }
    readers: dict[Any, list[tuple[m.Equation, bool]]] = {}
    for eq in equations:
        for symbol in eq.rhs.atoms(sp.MatrixSymbol):
            readers.setdefault(symbol, []).append((eq, False))
    for eq in later:
        for symbol in eq.rhs.atoms(sp.MatrixSymbol):
            readers.setdefault(symbol, []).append((eq, True))
    for eq in reversed(equations):
        parts = [sp.Identity(1)] if eq.target in seeds else []
        for reader, is_later in readers.get(eq.target, []):
            if reader.target not in adjoint:
                if is_later:
                    raise DeriveError(
                        f"{reader.target} reads {eq.target} a step later but its adjoint has no "
                        f"name: name it in the statement (Quantity.adjoint)"
                    )
                continue
            pulled = ops.vjp(reader.rhs, eq.target, adjoint[reader.target], out=reader.target)
            if pulled is not None:
                parts.append(ops.tidy(pulled).xreplace(names))
        total = ops.add(parts)
        if total is None:
            continue
        found = m.step_of(eq.target)
        name = stmt.quantities[found[0]].adjoint if found else None
        if name is not None:
            symbol = m.at(name, found[1], loss)  # type: ignore[index]
            lines.append(Definition(symbol, total))
            adjoint[eq.target] = symbol
        else:
            adjoint[eq.target] = total
    return lines, adjoint


def _weight_sums(
    equations: Sequence[m.Equation], adjoint: Mapping[Any, Any], weight: sp.MatrixSymbol
) -> list[Any]:
    """The weight pullbacks of every equation that reads ``weight``, last step first."""
    out = []
    for eq in reversed(equations):
        if eq.target in adjoint and weight in eq.rhs.atoms(sp.MatrixSymbol):
            pulled = ops.vjp(eq.rhs, weight, adjoint[eq.target], out=eq.target)
            if pulled is not None:
                out.append(ops.tidy(pulled))
    return out


def _seeds(stmt: m.Statement, steps: Sequence[Any]) -> set[Any]:
    (loss,) = stmt.names("loss")
    return {m.at(loss, k) for k in steps}


def recurrence_and_collected(stmt: m.Statement) -> tuple[tuple[Definition, ...], dict[str, Any]]:
    """The reverse sweep over the N unrolled steps. Truncated at K, one sweep per loss step u
    over its window, steps u − K + 1 … u (s̄_{u−K} read as a constant), its adjoints named as
    with respect to E_u alone (δ^(u)_i); ∂E/∂W sums over every window."""
    n, window = stmt.config.steps, stmt.config.window
    if window is None:
        equations = [e for k in range(1, n + 1) for e in stmt.equations_at(k)]
        lines, adjoint = _sweep(equations, (), {}, _seeds(stmt, stmt.config.loss_terms), stmt)
        collected = {w.name: sp.MatAdd(*_weight_sums(equations, adjoint, w)) for w in stmt.weights}
        return tuple(lines), collected
    all_lines: list[Definition] = []
    parts: dict[str, list[Any]] = {w.name: [] for w in stmt.weights}
    for u in stmt.config.loss_terms:
        steps = range(max(1, u - window + 1), u + 1)
        equations = [e for k in steps for e in stmt.equations_at(k)]
        lines, adjoint = _sweep(equations, (), {}, _seeds(stmt, [u]), stmt, loss=u)
        all_lines.extend(lines)
        for w in stmt.weights:
            parts[w.name].extend(_weight_sums(equations, adjoint, w))
    return tuple(all_lines), {name: sp.MatAdd(*terms) for name, terms in parts.items()}


def generic(stmt: m.Statement) -> GenericForms:
    """The sweep at a generic step: t = N (nothing after it), and t < N (step t + 1 reads t)."""
    t, N = m.t, m.N
    every = stmt.config.loss_steps == "all"
    here = stmt.equations
    last_lines, last_adjoint = _sweep(here, (), {}, _seeds(stmt, [t]), stmt)
    later = stmt.equations_at(t + 1)
    named = {}
    for eq in later:
        found = m.step_of(eq.target)
        name = stmt.quantities[found[0]].adjoint if found else None
        if name is not None:
            named[eq.target] = m.at(name, t + 1)
    step_lines, step_adjoint = _sweep(here, later, named, _seeds(stmt, [t] if every else []), stmt)
    carry_lines, carry_adjoint = _sweep(here, later, named, set(), stmt)
    sums: dict[str, tuple[Sum, ...]] = {}
    lane_sums: dict[str, tuple[Sum, ...]] = {}
    for w in stmt.weights:
        everywhere = _weight_sums(here, step_adjoint, w)
        at_last = [s for s in _weight_sums(here, last_adjoint, w) if s not in everywhere]
        sums[w.name] = (
            *(Sum(s, "all") for s in everywhere),
            *(Sum(m.instantiate(s, {t: N}), "last") for s in at_last),
        )
        carried = _weight_sums(here, carry_adjoint, w)
        own = [s for s in _weight_sums(here, last_adjoint, w) if s not in carried]
        lane_sums[w.name] = (
            *(Sum(s, "window") for s in carried),
            *(Sum(s, "own") for s in own),
        )
    at_n = [
        Definition(m.instantiate(d.target, {t: N}), m.instantiate(d.expression, {t: N}))
        for d in last_lines
    ]
    return GenericForms(
        tuple(at_n), tuple(step_lines), sums, tuple(last_lines), tuple(carry_lines), lane_sums
    )


def closed_forms(stmt: m.Statement, expansions: dict[str, chain.Expansion]) -> ClosedForms:
    expanded = {name: tuple(t.evaluate() for t in e.terms) for name, e in expansions.items()}
    recurrence, collected = recurrence_and_collected(stmt)
    return ClosedForms(expanded, recurrence, collected, generic(stmt))
