"""Stage 6 (notes, shared): step numbers, displayed equations and plain text for LaTeX.

Contract: the step indices t, N, i of the general forms; :class:`Display`, the printed equation
every section returns, and :func:`_tagged`, one tagged with its label; :func:`_renumber` and
:func:`_instantiate`, which rename the model's step symbols (s_2 ↔ s_t) in either direction;
:func:`_check`, which returns a general form only after it has reproduced every concrete term it
stands for (else :class:`~derive.errors.GenerationError`); :func:`_at_step`, a generic-step
equation at a concrete step; :func:`_tex_text`, file and function names as LaTeX text. No
section's content lives here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive import labels
from derive import model as m
from derive.errors import GenerationError
from derive.printing.latex import Row, aligned

# Step indices of the general forms.
t, N, i = sp.symbols("t N i", integer=True, positive=True)


@dataclass(frozen=True)
class Display:
    """A displayed equation: its LaTeX body and its tag (``\\tag{38}``, or empty)."""

    body: str
    tag: str


def _tagged(label: str, lhs: Any, rhs: Any) -> Display:
    return Display(aligned([Row.of(lhs, rhs)]), rf"\tag{{{labels.tag(label)}}}")


# ---------------------------------------------------------------------------------------------
# Step numbers: the general forms are the derivation's terms with their steps renamed.

_STEP_BASES = ("x", "s", "z", "o", "y", "d", "E", "g", "delta")


def _step_symbol(base: str, index: Any) -> sp.MatrixSymbol:
    """The model's quantity ``base`` at step ``index`` (an int or an expression in t, N, i)."""
    rows, cols = {
        "x": (1, m.n_x),
        "s": (1, m.n_s),
        "z": (1, m.n_s),
        "delta": (1, m.n_s),
        "o": (1, m.n_y),
        "y": (1, m.n_y),
        "d": (1, m.n_y),
        "g": (1, m.n_y),
        "E": (1, 1),
    }[base]
    return sp.MatrixSymbol(f"{base}_{index}", rows, cols)


def _step_of(symbol: sp.MatrixSymbol) -> int:
    """The step of a model symbol: 3 for s_3."""
    return int(str(symbol.name).rpartition("_")[2])


def _renumber(expr: Any, steps: Mapping[int, Any]) -> Any:
    """Rename the model's step symbols: ``_renumber(s_2, {2: t})`` is s_t."""
    mapping = {}
    for symbol in expr.atoms(sp.MatrixSymbol):
        base, _, index = str(symbol.name).rpartition("_")
        if base in _STEP_BASES and index.isdigit() and int(index) in steps:
            mapping[symbol] = _step_symbol(base, steps[int(index)])
    return expr.xreplace(mapping)


def _instantiate(expr: Any, values: Mapping[sp.Symbol, int]) -> Any:
    """The inverse of :func:`_renumber`: ``_instantiate(s_t, {t: 2})`` is s_2."""
    names = {str(k): k for k in (t, N, i)}
    mapping = {}
    for symbol in expr.atoms(sp.MatrixSymbol):
        base, _, index = str(symbol.name).rpartition("_")
        if base in _STEP_BASES and not index.isdigit():
            step = sp.sympify(index, locals=names).xreplace(
                {k: sp.Integer(v) for k, v in values.items()}
            )
            if step.is_Integer:
                mapping[symbol] = _step_symbol(base, int(step))
    return expr.xreplace(mapping)


def _check(concrete: Sequence[Any], pattern: Any, values: Sequence[Mapping[sp.Symbol, int]]) -> Any:
    """``pattern`` after checking that it reproduces each ``concrete[k]`` at ``values[k]``."""
    for expected, at in zip(concrete, values, strict=True):
        got = _instantiate(pattern, at)
        if got != expected:
            raise GenerationError(
                f"the general form {pattern} does not give {expected} at {at}: got {got}"
            )
    return pattern


def _at_step(pair: tuple[Any, Any], step: int) -> tuple[Any, Any]:
    """A generic-step equation of :func:`model.forward_equations` at ``step`` (s̄_{t-1} too)."""
    names = {"s_prev_t": m.s(step - 1)}
    mapping = {}
    for expr in pair:
        for symbol in expr.atoms(sp.MatrixSymbol):
            name = str(symbol.name)
            if name in names:
                mapping[symbol] = names[name]
            elif name.endswith("_t"):
                mapping[symbol] = _step_symbol(name[:-2], step)
    return (pair[0].xreplace(mapping), pair[1].xreplace(mapping))


def _tex_text(text: str) -> str:
    """Plain text for LaTeX: the underscores of file and function names escaped."""
    return text.replace("_", r"\_")
