"""Stage 5 (code plan, loop form): any number of steps T, from the derivation's generic step.

Contract: :func:`plan` turns a :class:`~derive.derivation.Derivation` into a :class:`LoopPlan`,
statements over generic step symbols, using only the statement's equations and the generic forms
of :mod:`derive.closed_form` (the lines at t = N and t < N, and ∂E/∂W as sums over steps):

* forward: the equations with the named intermediates substituted; what reads the previous
  step's state runs step by step, and every piece of it that does not (x̄_t W_x) is hoisted out
  to be computed for every step at once; the outputs for every step at once;
* loss: ȳ_t and the residual d̄_t − ȳ_t at the loss's steps, then E (Eq. 35);
* backward: a named adjoint that reads nothing of step t + 1 (g_t) for every step at once; one
  that does (δ_t) step by step from T − 1 down to 1, again with every piece that does not read
  step t + 1 (g_t W_yᵀ, Φ'(z̄_t)) hoisted out; its line at t = N, reusing the hoisted pieces;
* gradients: each sum over steps.

A number times an array computed for every step (g_t = −2 e_t for a linear output) is not
formed: the number moves onto the weight it meets (e_t (−2 W_y)ᵀ) or onto the sum. Storage is
the backend's business; nothing here says how arrays are laid out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import activations as acts
from derive import labels, ops
from derive import model as m
from derive.codegen.plan import Statement, code_equations, loss_node, residual, through_outputs
from derive.derivation import Derivation
from derive.errors import GenerationError


@dataclass(frozen=True)
class LoopPlan:
    """What a loop module computes, function by function (see the module docstring)."""

    bases: dict[str, Any]  # every per-step quantity of the plan: name → row length
    states: tuple[str, ...]
    inputs: tuple[str, ...]
    targets: tuple[str, ...]
    weights: tuple[sp.MatrixSymbol, ...]
    loss_steps: str  # "all" or "last"
    forward: tuple[Statement, ...]
    outputs: tuple[Statement, ...]
    loss: tuple[Statement, ...]
    backward: tuple[Statement, ...]
    gradients: tuple[Statement, ...]

    def step_of(self, symbol: Any) -> tuple[str, Any] | None:
        """(base, step) of a per-step symbol of this plan (``delta_t + 1`` → ("delta", t + 1))."""
        base, sep, index = str(getattr(symbol, "name", "")).rpartition("_")
        if not sep or base not in self.bases:
            return None
        return base, sp.sympify(index, locals=m.INDICES)


class _Builder:
    def __init__(self, d: Derivation) -> None:
        self.d = d
        self.stmt = d.statement
        self.bases: dict[str, Any] = {
            q.name: q.size for q in self.stmt.quantities.values() if q.role != "loss"
        }
        self.hoisted: dict[Any, str] = {}  # generic expression at t → base name
        self.hoist_defs: list[Statement] = []

    def at(self, base: str, k: Any) -> sp.MatrixSymbol:
        return sp.MatrixSymbol(f"{base}_{sp.sstr(k)}", 1, self.bases[base])

    def step(self, e: Any) -> Any:
        found = m.step_of(e) if isinstance(e, sp.MatrixSymbol) else None
        if found is None and isinstance(e, sp.MatrixSymbol):
            base, _, index = str(e.name).rpartition("_")
            if base in self.bases:
                return sp.sympify(index, locals=m.INDICES)
        return None if found is None else found[1]

    def instantiate(self, e: Any, values: dict[Any, Any]) -> Any:
        """``e`` with the steps of every per-step symbol substituted (``{t: N}``)."""
        mapping = {}
        for s in e.atoms(sp.MatrixSymbol):
            k = self.step(s)
            if k is not None and (new := k.xreplace(values)) != k:
                mapping[s] = self.at(str(s.name).rpartition("_")[0], new)
        return e.xreplace(mapping)

    def steps_in(self, e: Any) -> set[Any]:
        return {k for s in e.atoms(sp.MatrixSymbol) if (k := self.step(s)) is not None}

    # -- hoisting: pieces of a step's statement that do not read the neighbouring step --------

    def _name(self, e: Any) -> str:
        if isinstance(e, ElementwiseApplyFunction):
            fn = acts.applied_function(e)
            stem = "dphi" if fn in (acts.dPhi, self.stmt.config.act.dphi_of_output) else "f"
        elif isinstance(e, sp.MatMul):
            ms = e.as_coeff_matrices()[1]
            weight = ms[-1].arg if isinstance(ms[-1], sp.Transpose) else ms[-1]
            row = str(ms[0].name).rpartition("_")[0] if isinstance(ms[0], sp.MatrixSymbol) else "h"
            stem = f"{row}{weight}{'T' if isinstance(ms[-1], sp.Transpose) else ''}"
        else:
            stem = "h"
        name, k = stem, 1
        while name in self.bases:
            k += 1
            name = f"{stem}{k}"
        return name

    def hoist(self, e: Any, reads: Any, label: str) -> Any:
        """``e`` with every largest piece that reads no step ``reads`` (and does work: a product
        or a function) replaced by a per-step array computed for every step at once."""
        if not ops.is_matrix(e) or isinstance(e, sp.MatrixSymbol):
            return e
        if reads not in self.steps_in(e) and self.steps_in(e) == {m.t} and _work(e):
            if e not in self.hoisted:
                name = self._name(e)
                self.bases[name] = e.shape[1]
                self.hoisted[e] = name
                self.hoist_defs.append(Statement((label,), self.at(name, m.t), e, "all"))
            return self.at(self.hoisted[e], m.t)
        args = [self.hoist(a, reads, label) if ops.is_matrix(a) else a for a in e.args]
        return e.func(*args) if args != list(e.args) else e

    def reuse(self, e: Any, k: Any) -> Any:
        """``e`` at step k with every hoisted piece replaced by its array at k."""
        return e.xreplace(
            {self.instantiate(x, {m.t: k}): self.at(n, k) for x, n in self.hoisted.items()}
        )


def _work(e: Any) -> bool:
    return any(
        isinstance(n, sp.MatMul | ElementwiseApplyFunction) for n in sp.preorder_traversal(e)
    )


def _inline_hidden(stmt: m.Statement) -> list[m.Equation]:
    """The forward equations with every named intermediate (z̄_t, ō_t) substituted."""
    equations = code_equations(stmt)
    hidden = {
        eq.target: eq.rhs
        for eq in equations
        if stmt.quantities[m.step_of(eq.target)[0]].role == "hidden"  # type: ignore[index]
    }
    out = []
    for eq in equations:
        if eq.target not in hidden:
            rhs = eq.rhs
            while rhs.atoms(sp.MatrixSymbol) & set(hidden):
                rhs = rhs.xreplace(hidden)
            out.append(m.Equation(eq.label, eq.target, rhs))
    return out


def _adjoint_label(name: str) -> str:
    return {"g": labels.OUTPUT_GRADIENT, "delta": labels.DELTA}.get(name, labels.DELTA)


def plan(d: Derivation) -> LoopPlan:
    b = _Builder(d)
    stmt, t, N = b.stmt, m.t, m.N
    every = d.config.loss_steps == "all"
    states = stmt.names("state")

    # Forward: what reads the previous step step by step, the rest for every step at once.
    forward_steps, outputs = [], []
    for eq in _inline_hidden(stmt):
        if t - 1 in b.steps_in(eq.rhs):
            rhs = b.hoist(eq.rhs, t - 1, eq.label)
            forward_steps.append(Statement((eq.label,), eq.target, rhs, "forward"))
        else:
            outputs.append(Statement((eq.label,), eq.target, eq.rhs, "all"))
    forward = [*b.hoist_defs, *forward_steps]
    b.hoist_defs = []

    # Loss (Eq. 35) at the loss's steps: ȳ, the residual e = d̄ − ȳ, E = c Σ tr(e eᵀ).
    node = loss_node(stmt)
    b.bases["e"] = node.residual.shape[1]
    where, k = ("all", t) if every else ("last", N)
    loss = [
        Statement(
            st.labels, b.instantiate(st.target, {t: k}), b.instantiate(st.expr, {t: k}), where
        )
        for st in outputs
    ]
    e_k = b.at("e", k)
    loss.append(Statement((labels.LOSS,), e_k, residual(stmt, k), where))
    total = node.scale * sp.Trace(e_k * e_k.T)
    loss.append(
        Statement((labels.LOSS,), sp.MatrixSymbol("E", 1, 1), total, "sum" if every else "last")
    )
    errors = {residual(stmt, k): b.at("e", k) for k in (t, N)}

    def prepared(line: Any) -> Any:
        return through_outputs(line, stmt).xreplace(errors)

    # Backward: the generic step's lines.
    gen = d.closed.generic
    step_lines = {line.target: prepared(line.expression) for line in gen.step}
    last_lines = {line.target: prepared(line.expression) for line in gen.last}
    backward_all, backward_steps, backward_last = [], [], []
    for target, expr in step_lines.items():
        name = str(target.name).rpartition("_")[0]
        label = _adjoint_label(name)
        at_n = b.instantiate(target, {t: N})
        if t + 1 not in b.steps_in(expr):  # reads nothing of step t + 1: every step at once
            if last_lines.get(at_n) != b.instantiate(expr, {t: N}):
                raise GenerationError(f"{target} differs at t = N: {last_lines.get(at_n)}")
            backward_all.append(Statement((label,), target, expr, "all"))
        else:
            backward_steps.append(
                Statement((label,), target, b.hoist(expr, t + 1, label), "backward")
            )
    covered = {b.instantiate(st.target, {t: N}) for st in backward_all}
    for target, expr in last_lines.items():
        if target not in covered:
            label = _adjoint_label(str(target.name).rpartition("_")[0])
            backward_last.append(Statement((label,), target, b.reuse(expr, N), "last"))
    hoisted = b.hoist_defs

    # Every intermediate the backward pass reads but the forward pass did not keep (z̄_t when Φ'
    # cannot be written through s̄_t), for every step at once.
    kept = {*states, *stmt.names("input"), *stmt.names("target"), "e"}
    kept |= {str(st.target.name).rpartition("_")[0] for st in [*forward, *outputs]}
    kept |= {str(st.target.name).rpartition("_")[0] for st in [*backward_all, *hoisted]}
    kept |= {str(st.target.name).rpartition("_")[0] for st in [*backward_steps, *backward_last]}
    recomputed = _recompute(b, [*hoisted, *backward_all, *backward_last, *backward_steps], kept)

    # ∂E/∂W: each sum over steps (or its term at t = N alone).
    sums = []
    for w in stmt.weights:
        label_pair = labels.SUM_LABELS[w.name]
        for part in gen.sums[w.name]:
            target = sp.MatrixSymbol(f"dE_d{w.name}", *w.shape)
            over = "sum" if part.steps == "all" else "last"
            sums.append(Statement(label_pair, target, ops.tidy(prepared(part.summand)), over))

    backward = [*recomputed, *backward_all, *hoisted, *backward_last, *backward_steps]
    backward, sums = _fold(b, backward, sums)
    return LoopPlan(
        bases=dict(b.bases),
        states=states,
        inputs=stmt.names("input"),
        targets=stmt.names("target"),
        weights=stmt.weights,
        loss_steps=d.config.loss_steps,
        forward=tuple(forward),
        outputs=tuple(outputs),
        loss=tuple(loss),
        backward=tuple(backward),
        gradients=tuple(sums),
    )


def _recompute(b: _Builder, statements: list[Statement], kept: set[str]) -> list[Statement]:
    """Statements for every step at once of the quantities ``statements`` read but no earlier
    statement keeps, from the model's equations (the forward pass's hoisted pieces reused)."""
    out: list[Statement] = []
    defined = {eq.target: eq for eq in b.stmt.equations}
    todo = [s for st in statements for s in st.expr.atoms(sp.MatrixSymbol)]
    while todo:
        sym = todo.pop()
        found = m.step_of(sym)
        if found is None or found[0] in kept:
            continue
        eq = defined.get(m.at(found[0], m.t))
        if eq is None:
            raise GenerationError(f"the backward pass reads {sym}, which nothing computes")
        kept.add(found[0])
        rhs = b.reuse(eq.rhs, m.t)
        out.insert(0, Statement((eq.label,), eq.target, rhs, "all"))
        todo.extend(rhs.atoms(sp.MatrixSymbol))
    return out


def _fold(
    b: _Builder, backward: list[Statement], sums: list[Statement]
) -> tuple[list[Statement], list[Statement]]:
    """An array for every step that is only a number times another (g_t = c e_t) is not formed:
    its number moves onto the weight it is multiplied with, or in front of the sum."""
    out: list[Statement] = []
    substitute: dict[Any, Any] = {}
    folded_labels: dict[Any, tuple[str, ...]] = {}
    once: list[Statement] = []
    for st in backward:
        folded = [folded_labels[s] for s in st.expr.atoms(sp.MatrixSymbol) if s in folded_labels]
        expr = ops.tidy(st.expr.xreplace(substitute))
        if st.over == "all" and isinstance(expr, sp.MatMul):
            coeff, ms = expr.as_coeff_matrices()
            if coeff != 1 and len(ms) == 1 and isinstance(ms[0], sp.MatrixSymbol):
                substitute[st.target] = expr
                substitute[b.instantiate(st.target, {m.t: m.N})] = b.instantiate(expr, {m.t: m.N})
                folded_labels[st.target] = st.labels
                continue
            weights = [a for a in ms if not b.steps_in(a)]
            if coeff != 1 and weights and ms[-len(weights) :] == weights and len(weights) < len(ms):
                name = "c" + "".join(
                    str((a.arg if isinstance(a, sp.Transpose) else a).name) for a in weights
                )
                scaled = [a.arg if isinstance(a, sp.Transpose) else a for a in weights]
                if len(weights) == 1:
                    w = scaled[0]
                    cw = sp.MatrixSymbol(name, *w.shape)
                    labels_ = folded[0] if folded else st.labels
                    once.append(Statement(labels_, cw, sp.MatMul(coeff, w), "once"))
                    factor = cw.T if isinstance(weights[0], sp.Transpose) else cw
                    expr = ops.mul(*ms[: -len(weights)], factor)
        out.append(replace(st, expr=expr))
    folded_sums = [replace(st, expr=ops.tidy(st.expr.xreplace(substitute))) for st in sums]
    return [*once, *out], folded_sums
