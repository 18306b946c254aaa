"""Stage 5→6 (shared): what both module forms need to become printed lines.

Contract: the context dataclasses the module templates receive (already-printed strings only),
and the small tools on matrix expressions that both forms use: renaming model symbols to the
names of the code, Φ' written through s̄_t, a matrix cse with temporaries ``_t0, _t1, …``, and
Eq. 35 as statements.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import model as m
from derive.derivation import Derivation

Expr: TypeAlias = sp.MatrixExpr


@dataclass(frozen=True)
class Block:
    """Printed lines under comment lines; the first comment cites an equation label."""

    comments: tuple[str, ...]
    lines: tuple[str, ...]


@dataclass(frozen=True)
class ModuleBase:
    """What every module template needs, already printed."""

    name: str
    template: str
    title: str
    description: tuple[str, ...]
    config_items: tuple[tuple[str, str], ...]
    steps: int | None
    loss_doc: str
    helpers: tuple[str, ...]


def rename(expr: Expr, names: dict[sp.MatrixSymbol, str]) -> Expr:
    """Replace model symbols by symbols named after the code that holds them."""
    return expr.xreplace({k: sp.MatrixSymbol(v, *k.shape) for k, v in names.items()})


def dphi_through_states(expr: Expr, act: m.Activation, steps: Iterable[int]) -> Expr:
    """Φ'(z̄_t) → Φ'(s̄_t) written in the output, where the activation allows (1 − s̄_t² for tanh).

    Generated code then needs neither z̄_t nor a second evaluation of Φ.
    """
    if act.dphi_of_output is None:
        return expr
    return expr.xreplace(
        {m.dphi(m.z(t)): ElementwiseApplyFunction(act.dphi_of_output, m.s(t)) for t in steps}
    )


def _is_matrix(e: object) -> bool:
    return bool(getattr(e, "is_Matrix", False))


def _is_leaf(e: Expr) -> bool:
    return isinstance(e, sp.MatrixSymbol) or (
        isinstance(e, sp.Transpose) and isinstance(e.arg, sp.MatrixSymbol)
    )


def matrix_cse(
    exprs: Sequence[Expr], prefix: str = "_t"
) -> tuple[list[tuple[str, Expr]], list[Expr]]:
    """Common matrix subexpressions named ``_t0, _t1, …`` (SymPy's ``cse`` rebuilds the Lambda
    inside elementwise nodes and fails on them, and would name temporaries ``x0``, which collide
    with the inputs x̄_1, x̄_2).

    Returns (definitions in evaluation order, reduced expressions).
    """
    counts: Counter[Expr] = Counter()

    def count(e: Expr) -> None:
        if _is_leaf(e):
            return
        counts[e] += 1
        if counts[e] > 1:
            return
        for a in e.args:
            if _is_matrix(a):
                count(a)

    for e in exprs:
        count(e)
    repeated = {e for e, c in counts.items() if c > 1}
    names: dict[Expr, sp.MatrixSymbol] = {}
    defs: list[tuple[str, Expr]] = []

    def rebuild(e: Expr) -> Expr:
        if _is_leaf(e):
            return e
        if e in names:
            return names[e]
        args = [rebuild(a) if _is_matrix(a) else a for a in e.args]
        new = e.func(*args) if args != list(e.args) else e
        if e in repeated:
            name = f"{prefix}{len(defs)}"
            defs.append((name, new))
            names[e] = sp.MatrixSymbol(name, *e.shape)
            return names[e]
        return new

    reduced = [rebuild(e) for e in exprs]
    return defs, reduced


# ---------------------------------------------------------------------------------------------


def config_items(config: m.Config, loop: bool) -> tuple[tuple[str, str], ...]:
    return (
        ("steps", "None" if loop else str(config.steps)),
        ("activation", repr(config.activation_name)),
        ("output", repr(config.output)),
        ("scale", repr(float(config.scale))),
        ("loss_steps", repr(config.loss_steps)),
    )


def helpers(config: m.Config) -> tuple[str, ...]:
    return ("softmax",) if config.output == "softmax" else ()


def loss_doc(config: m.Config, loop: bool) -> str:
    c = "" if config.scale == 1 else f"{config.scale} · "
    if config.loss_steps == "last":
        last = "T" if loop else str(config.steps)
        return f"E_{last} = {c}(d̄_{last} − ȳ_{last})², summed over the batch"
    return f"E = Σ_t E_t, E_t = {c}(d̄_t − ȳ_t)², summed over the batch"


def wrap(*paragraphs: str) -> tuple[str, ...]:
    """Docstring paragraphs wrapped to the line length, a blank line between them."""
    out: list[str] = []
    for para in paragraphs:
        if out:
            out.append("")
        out.extend(textwrap.wrap(para, width=96))
    return tuple(out)


def loss_statements(
    d: Derivation, rows: dict[int, tuple[str, str]] | None = None
) -> list[tuple[str, sp.MatrixSymbol, Expr]]:
    """Eq. 35 summed over the loss's steps, as ``_e_t = d̄_t − ȳ_t`` and ``E = c Σ_t tr(e eᵀ)``.

    tr(e eᵀ) of a row-stacked e sums the batch's rows (the printer writes it as a dot product).
    ``rows`` renames d̄_t, ȳ_t per step (the loop form's stacked arrays).
    """
    label, _, expr = next(f for f in d.forward if f[1] == m.E_T)
    coeff, matrices = expr.as_coeff_matrices()
    err = matrices[0]  # (d̄_t − ȳ_t) of c (d̄_t − ȳ_t)(d̄_t − ȳ_t)ᵀ
    generic_d, generic_y = m.D_T, m.Y_T
    out = []
    total = sp.Integer(0)
    for t in d.config.loss_terms:
        dn, yn = rows[t] if rows else (m.d(t).name, m.y(t).name)
        e = sp.MatrixSymbol(f"_e{t}" if not rows else "_e", 1, m.n_y)
        body = err.xreplace(
            {generic_d: sp.MatrixSymbol(dn, 1, m.n_y), generic_y: sp.MatrixSymbol(yn, 1, m.n_y)}
        )
        out.append((label, e, body))
        total += sp.Trace(e * e.T)
    out.append((label, sp.MatrixSymbol("E", 1, 1), coeff * total))
    return out


def prune(statements: list[tuple[str, sp.MatrixSymbol, Expr]], needed: set[str]) -> list:
    """Keep the statements the ``needed`` names depend on, in order."""
    keep = []
    need = set(needed)
    for st in reversed(statements):
        if st[1].name in need:
            keep.append(st)
            need |= free_matrix_symbols(st[2])
    return list(reversed(keep))


def free_matrix_symbols(e: Expr) -> set[str]:
    return {s.name for s in e.atoms(sp.MatrixSymbol)}
