"""Stage 7 (notes, shared): displayed equations, general forms checked, plain text for LaTeX.

Contract: :class:`Display`, the printed equation every section returns, and :func:`tagged`, one
tagged with its label; :func:`general_form`, which returns a general form only after it has
reproduced every concrete term it stands for (else :class:`~derive.errors.GenerationError`);
:func:`at_step`, an equation of the generic step at a concrete step; :func:`tex_text`, file and
function names as LaTeX text; :func:`with_diagonals`, the D_k naming every display uses. Step
symbols and their renaming are :mod:`derive.model`'s. No section's content lives here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import activations as acts
from derive import labels, ops
from derive import model as m
from derive.errors import GenerationError
from derive.printing.latex import Row, aligned

t, N, i = m.t, m.N, m.i


@dataclass(frozen=True)
class Display:
    """A displayed equation: its LaTeX body and its tag (``\\tag{38}``, or empty)."""

    body: str
    tag: str


def tagged(label: str, lhs: Any, rhs: Any) -> Display:
    return Display(aligned([Row.of(lhs, rhs)]), rf"\tag{{{labels.tag(label)}}}")


def step_of(symbol: sp.MatrixSymbol) -> int:
    """The concrete step of a model symbol: 3 for s_3."""
    found = m.step_of(symbol)
    if found is None or not found[1].is_Integer:
        raise GenerationError(f"{symbol} is not a quantity at a concrete step")
    return int(found[1])


def general_form(
    concrete: Sequence[Any], pattern: Any, values: Sequence[Mapping[sp.Symbol, int]]
) -> Any:
    """``pattern`` after checking that it reproduces each ``concrete[k]`` at ``values[k]``."""
    for expected, at in zip(concrete, values, strict=True):
        got = m.instantiate(pattern, at)
        if got != expected:
            raise GenerationError(
                f"the general form {pattern} does not give {expected} at {at}: got {got}"
            )
    return pattern


def at_step(eq: m.Equation, step: int) -> tuple[Any, Any]:
    """An equation of the generic step t at ``step`` (s̄_{t-1} too)."""
    return m.instantiate(eq.target, {t: step}), m.instantiate(eq.rhs, {t: step})


def tex_text(text: str) -> str:
    """Plain text for LaTeX: the underscores of file and function names escaped."""
    return text.replace("_", r"\_")


def with_diagonals(e: Any) -> Any:
    """``e`` with diag(Φ'(z̄_k)) named D_k, and U ⊙ Φ'(z̄_k) written as the product U D_k."""

    def step(v: Any) -> Any:
        found = m.step_of(v.arg if isinstance(v, sp.Transpose) else v)
        return None if found is None else found[1]

    def dphi_step(v: Any) -> Any:
        if isinstance(v, sp.Transpose):
            v = v.arg
        if isinstance(v, ElementwiseApplyFunction) and acts.applied_function(v) == acts.dPhi:
            return step(v.expr)
        return None

    def rewrite(v: Any) -> Any:
        if isinstance(v, sp.DiagMatrix) and (k := dphi_step(v.args[0])) is not None:
            return m.D(k)
        if isinstance(v, sp.HadamardProduct):
            ks = [dphi_step(a) for a in v.args]
            if len(v.args) == 2 and ks[1] is not None:
                return sp.MatMul(rewrite(v.args[0]), m.D(ks[1]))
        if v.args and ops.is_matrix(v):
            args = [rewrite(a) for a in v.args]
            return v.func(*args) if args != list(v.args) else v
        return v

    return rewrite(e)
