"""Stage 5 (code plan, straight-line form): exactly N steps, every chain-rule term a statement.

Contract: :func:`plan` turns a :class:`~derive.derivation.Derivation` into a
:class:`StraightPlan`: the forward pass of the statement's equations at t = 1..N, the loss
(Eq. 35, its residual named once), and the *expanded* closed forms, one statement per chain-rule
term (Eq. 38–40 and 43–45 in the lecture's case) and their sums (Eq. 41, 46), the factors the
terms share computed once (``_t0, _t1, …``). No loop over time: a reader sees the lecture's
terms. Each function's statements are pruned to what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive import labels, notation
from derive import model as m
from derive.codegen.plan import (
    Statement,
    code_equations,
    free_names,
    loss_at,
    matrix_cse,
    prune,
    symbol,
    through_outputs,
)
from derive.derivation import Derivation


@dataclass(frozen=True)
class Block:
    """Statements under comment lines; the first comment cites an equation label."""

    comments: tuple[str, ...]
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class StraightPlan:
    """The straight-line module: per function, its statements, in order."""

    steps: int
    forward: tuple[Statement, ...]
    forward_returns: tuple[tuple[str, ...], ...]  # the stacked results: (s_1 … s_N), (y_1 … y_N)
    loss: tuple[Statement, ...]
    gradients: tuple[Block, ...]
    results: tuple[str, ...]  # dE_dW_x, … in the order of the weights


def _forward(d: Derivation) -> list[Statement]:
    """Eq. 33–34 at t = 1..N."""
    return [
        Statement(
            (eq.label,), m.instantiate(eq.target, {m.t: k}), m.instantiate(eq.rhs, {m.t: k}), "at"
        )
        for k in range(1, d.config.steps + 1)
        for eq in code_equations(d.statement)
    ]


def _loss(d: Derivation) -> tuple[list[Statement], dict[Any, Any]]:
    """Eq. 35 summed over the loss's steps, from the loss operation's code form: what its value
    and its pullback share, ``_e{k} = d̄_k − ȳ_k`` for the squared error, named once; then
    ``E = Σ_k value``. A trace tr(a bᵀ) of row-stacked a, b sums over the batch's rows (the
    printer writes it as a dot product). Returns the statements and {shared part: its name}."""
    out, total, names = [], sp.Integer(0), {}
    for k in d.config.loss_terms:
        node = loss_at(d.statement, k)
        shared = node.shared
        if shared is not None:
            e = symbol(f"_e{k}", shared)
            out.append(Statement((labels.LOSS,), e, shared, "at"))
            names[shared] = e
            shared = e
        total += node.total(shared)
    out.append(Statement((labels.LOSS,), sp.MatrixSymbol("E", 1, 1), total, "at"))
    return out, names


def _term_labels(d: Derivation, weight: str, n_terms: int) -> tuple[list[str], str]:
    """Equation labels of a weight's terms and of their sum."""
    lecture = d.config.steps == 3 and d.config.loss_steps == "last"
    if weight == "W_y":
        lab = labels.W_Y_LECTURE if lecture else labels.W_Y_GENERAL
        return [lab] * n_terms, lab
    terms, total, general = (
        (labels.W_S_TERMS, labels.W_S_SUM, labels.W_S_GENERAL)
        if weight == "W_s"
        else (labels.W_X_TERMS, labels.W_X_SUM, labels.W_X_GENERAL)
    )
    if lecture:
        return list(terms), total
    return [general] * n_terms, general


def _leibniz(factors: Any) -> str:
    return " · ".join(
        f"∂{notation.text_name(f.numerator.name)}/∂{notation.text_name(f.denominator.name)}"
        for f in factors
    )


def plan(d: Derivation) -> StraightPlan:
    n = d.config.steps
    fwd = _forward(d)
    loss, errors = _loss(d)
    # The expanded terms with Φ' through s̄_t, the residual d̄_t − ȳ_t of Eq. 35 reused, and the
    # factors they share named once (cse over all of them at once).
    order = ("W_y", "W_s", "W_x")
    exprs = [
        through_outputs(e, d.statement).xreplace(errors)
        for w in order
        for e in d.closed.expanded[w]
    ]
    defs, reduced = matrix_cse(exprs)
    emitted: set[str] = set()
    blocks: list[Block] = []
    reduced_iter = iter(reduced)

    def temps_for(expr: Any, label: str) -> list[Statement]:
        """The shared factors ``expr`` needs that no earlier statement computed, in order."""
        needed = free_names(expr)
        for name, texpr in reversed(defs):  # a temporary only refers to earlier ones
            if name in needed:
                needed |= free_names(texpr)
        out = []
        for name, texpr in defs:
            if name in needed and name not in emitted:
                emitted.add(name)
                out.append(Statement((label,), symbol(name, texpr), texpr, "at"))
        return out

    for w in order:
        expansion = d.expansions[w]
        term_labels, sum_label = _term_labels(d, w, len(expansion.terms))
        targets = []
        for term, label in zip(expansion.terms, term_labels, strict=True):
            expr = next(reduced_iter)
            if len(expansion.terms) == 1:
                name = f"dE_d{w}"
            elif d.config.loss_steps == "last":
                name = f"dE_d{w}_{term.through}"
            else:
                name = f"dE_d{w}_{term.loss_step}_{term.through}"
            target = symbol(name, expansion.weight)
            targets.append(target)
            through = (
                f"through {notation.text_name(f's_{term.through}')}"
                if w != "W_y"
                else "one chain-rule step"
            )
            head = f"E_{term.loss_step}" if d.config.loss_steps == "all" else f"E_{n}"
            blocks.append(
                Block(
                    (f"{label}: ∂{head}/∂{w} {through}", f"  {_leibniz(term.factors)}"),
                    (*temps_for(expr, label), Statement((label,), target, expr, "at")),
                )
            )
        if len(targets) > 1:
            total = symbol(f"dE_d{w}", expansion.weight)
            blocks.append(
                Block(
                    (f"{sum_label}: ∂E/∂{w}, the sum of its {len(targets)} chain-rule terms",),
                    (Statement((sum_label,), total, sp.MatAdd(*targets, evaluate=False), "at"),),
                )
            )
    results = tuple(f"dE_d{w.name}" for w in d.statement.weights)
    needed = {name for b in blocks for st in b.statements for name in free_names(st.expr)}
    (y_name,) = d.statement.names("output")
    (s_name,) = d.statement.names("state")
    loss_reads = {name for st in loss for name in free_names(st.expr)}
    states = tuple(f"{s_name}_{k}" for k in range(1, n + 1))
    ys = tuple(f"{y_name}_{k}" for k in range(1, n + 1))
    gradient_fwd = prune(fwd, needed | loss_reads)
    return StraightPlan(
        steps=n,
        forward=tuple(prune(fwd, set(states) | set(ys))),
        forward_returns=(states, ys),
        loss=(*prune(fwd, loss_reads), *loss),
        gradients=(
            Block((), (*gradient_fwd, *loss)),
            *blocks,
        ),
        results=results,
    )
