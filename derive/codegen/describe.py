"""Stage 7 (code, any backend): the words of a generated module, printed from the plan.

Contract: :func:`comment`, a plan statement as the comment that heads its code (its equation
label, then the statement in the lecture's notation, by :mod:`derive.printing.text`);
:func:`model_text`, the statement's equations, loss and argument shapes for a module's
docstring, from the one notation table. Every backend's docstrings and comments come from here.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive import labels, notation
from derive import model as m
from derive.codegen.plan import OVER, Statement, loss_node
from derive.derivation import Derivation
from derive.printing.text import text


@dataclass(frozen=True)
class ModelText:
    """The model in plain text for a module's docstring, from the statement."""

    equations: tuple[str, ...]  # Eq. 33–35 at step t, the named intermediates substituted
    loss: str  # the loss of the configuration, for any number of steps
    loss_fixed: str  # … for exactly N steps
    arguments: tuple[tuple[str, str, str], ...]  # (name, shape, meaning)


def comment(st: Statement) -> str:
    """``Eq. 33: s̄_t = Φ(z̄_t)``: the label and the statement in the lecture's notation."""
    return f"{st.labels[0]}: {text(st.target)} = {text(st.expr)}"


def step_comment(st: Statement) -> tuple[str, ...]:
    """Comment lines for a loop statement: the label and the statement in the lecture's
    notation, when it is computed; then any further label with what it names."""
    rhs = text(st.expr)
    body = f"Σ_t {rhs}" if st.over == "sum" else rhs
    first = f"{st.labels[0]}: {text(st.target)} = {body} ({OVER[st.over]})"
    lines = textwrap.wrap(first, width=84, subsequent_indent="  ")
    lines += [f"{label}: {labels.OURS.get(label, '')}" for label in st.labels[1:]]
    return tuple(f"# {line}" for line in lines)


def model_text(d: Derivation) -> ModelText:
    """Eq. 33–35 with the intermediates substituted, the loss, and the arguments' shapes."""
    stmt = d.statement
    hidden = {eq.target: eq.rhs for eq in stmt.equations if _role(stmt, eq.target) == "hidden"}
    shown = []
    for eq in stmt.equations:
        if _role(stmt, eq.target) != "hidden":
            rhs = eq.rhs.xreplace(hidden).xreplace(hidden)
            shown.append(f"{text(eq.target)} = {text(rhs)}")
    (loss,) = stmt.names("loss")
    e_t = text(m.at(loss, m.t))
    per_step = f"{e_t} = {text(loss_node(stmt))}"
    batch = "summed over the batch"
    if d.config.loss_steps == "all":
        total = f"E = Σ_t {e_t}, {per_step}, {batch}"
        fixed = total
    else:
        last, fixed_last = m.at(loss, "T"), m.at(loss, d.config.steps)
        node = loss_node(stmt)
        total = f"{text(last)} = {text(m.instantiate(node, {m.t: sp.Symbol('T')}))}, {batch}"
        fixed = f"{text(fixed_last)} = {text(m.instantiate(node, {m.t: d.config.steps}))}, {batch}"
    args = []
    for role in ("input", "target"):
        for name in stmt.names(role):
            size = stmt.quantities[name].size
            first, end = text(m.at(name, 1)), text(m.at(name, "T"))
            meaning = f"{notation.NOTATION[name].meaning}s {first} … {end}"
            args.append((name, f"(T, {size}) or (T, B, {size})", meaning))
    for w in stmt.weights:
        meaning = notation.lookup(w.name)[0].meaning
        args.append((w.name, f"({w.shape[0]}, {w.shape[1]})", meaning))
    for name in stmt.names("state"):
        size = stmt.quantities[name].size
        args.append(
            (f"{name}0", f"({size},) or (B, {size})", f"{text(m.at(name, 0))}, zeros when None")
        )
    return ModelText(tuple(shown), total, fixed, tuple(args))


def _role(stmt: m.Statement, symbol: Any) -> str:
    found = m.step_of(symbol)
    return "" if found is None else stmt.quantities[found[0]].role
