"""Stage 6 (notes, Sections 1 and 3–5): the model and the lecture's chain rule at N = 3.

Contract: from a :class:`~derive.derivation.Derivation` of the lecture's case, the printed
pieces of the notation (symbols for the prose, the notation table, Eq. 33–35 with the named
pre-activations substituted) and of the worked chain rule: each distinct factor with its
Jacobian and pullback, and for W_s and W_x the three terms, their sum and the closed forms
(Eq. 38–41, 43–46).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive import chain, labels
from derive import model as m
from derive.chain import Factor
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.notes.common import (
    _STEP_BASES,
    Display,
    N,
    _at_step,
    _renumber,
    _step_of,
    _step_symbol,
    _tagged,
    i,
    t,
)
from derive.printing.latex import (
    Partial,
    Ref,
    Row,
    aligned,
    inline_equation,
    latex,
    leibniz,
    shape,
)


@dataclass(frozen=True)
class Quantity:
    """A row of the notation table: symbol, shape and what it is."""

    tex: str
    shape: str
    meaning: str


@dataclass(frozen=True)
class WeightSection:
    """∂E_3/∂W for W_s or W_x: terms, their sum, the factors evaluated, the closed form."""

    weight: str
    through: tuple[str, ...]  # s̄_3, s̄_2, s̄_1: the state each term's last factor starts from
    terms: tuple[Display, ...]
    total: Display
    factors: Display
    closed: Display


# ---------------------------------------------------------------------------------------------
# Section 1: the notation and the model.


def _pre_activations(d: Derivation) -> list[tuple[str, sp.MatrixSymbol, Any]]:
    """The definitions that only name an intermediate (z̄_t, ō_t): all but each label's last."""
    last = {label: k for k, (label, _, _) in enumerate(d.forward)}
    return [eq for k, eq in enumerate(d.forward) if last[eq[0]] != k]


def _model(d: Derivation) -> tuple[Display, ...]:
    """Eq. 33–35 as the lecture writes them: the named pre-activations substituted."""
    labels_in_order = dict.fromkeys(label for label, _, _ in d.forward)
    return tuple(_tagged(label, *_model_equation(d, label)) for label in labels_in_order)


def _model_equation(d: Derivation, label: str) -> tuple[Any, Any]:
    """Eq. 33, 34 or 35 at a generic step, the named pre-activations substituted."""
    names = {s: e for _, s, e in _pre_activations(d)}
    _, symbol, expr = [eq for eq in d.forward if eq[0] == label][-1]
    return symbol, expr.xreplace(names)


def _symbols(d: Derivation) -> dict[str, str]:
    """The symbols and small formulas the prose mentions, printed once here, by name."""
    k = sp.Symbol("k", integer=True, positive=True)
    E, U = sp.MatrixSymbol("E", 1, 1), sp.MatrixSymbol("U", 1, m.n_s)
    exprs: dict[str, Any] = {
        f"{base}_{index}": _step_symbol(base, index)
        for base in _STEP_BASES
        for index in ("t", "N", "i", 1, 2, 3)
    }
    exprs.update(
        {
            "s_0": m.s(0),
            "s_i1": _step_symbol("s", i - 1),
            "s_i_next": _step_symbol("s", i + 1),
            "s_k1": _step_symbol("s", k - 1),
            "s_t_next": _step_symbol("s", t + 1),
            "x_k": _step_symbol("x", k),
            "W_x": m.W_x,
            "W_s": m.W_s,
            "W_y": m.W_y,
            "W_s_T": m.W_s.T,
            "delta": sp.MatrixSymbol("delta", 1, m.n_s),
            "U": U,
            "E": E,
            "Phi": m.Phi,
            "dPhi": m.dPhi,
            "dphi_3": m.dphi(m.z(3)),
            "diag_dphi_3": sp.DiagMatrix(m.dphi(m.z(3)).T),
            "hadamard": sp.hadamard_product(m.s(1), m.s(2)),
            "error_t": _step_symbol("d", "t") - _step_symbol("y", "t"),
            "squared_error_t": sp.HadamardPower(_step_symbol("d", "t") - _step_symbol("y", "t"), 2),
            "dE_3_dy_3": Partial(m.E(3), m.y(3)),
            "dE_3_ds_3": Partial(m.E(3), m.s(3)),
            "dy_3_ds_3": Partial(m.y(3), m.s(3)),
            "dy_3_dW_y": Partial(m.y(3), m.W_y),
            "U_W_y_T": U * m.W_y.T,
            "dE_3_dW_x": Partial(m.E(3), m.W_x),
            "dE_3_dW_s": Partial(m.E(3), m.W_s),
            "dE_3_dW_y": Partial(m.E(3), m.W_y),
            "ds_3_dW_s": Partial(m.s(3), m.W_s),
            "ds_k_ds_k1": Partial(_step_symbol("s", k), _step_symbol("s", k - 1)),
            "ds_k_dW_s": Partial(_step_symbol("s", k), m.W_s),
            "ds_k_dW_x": Partial(_step_symbol("s", k), m.W_x),
            "dE_do_t": Partial(E, _o("t")),
            "dE_dz_t": Partial(E, _step_symbol("z", "t")),
            "dy_N_ds_i": Partial(_step_symbol("y", N), _step_symbol("s", i)),
            "ds_i_dW": Partial(_step_symbol("s", i), m.W_s),
            "g_W_y_T": _step_symbol("g", t) * m.W_y.T,
        }
    )
    state = next(f for f in d.expansions["W_s"].terms[-1].factors if f.kind == "state")
    steps = {_step_of(state.numerator): t, _step_of(state.denominator): t - 1}
    exprs["state_jacobian"] = _renumber(state.jacobian, steps)
    exprs["ds_t_ds_prev"] = _renumber(leibniz(state), steps)
    out = {name: latex(e, inline=True) for name, e in exprs.items()}
    definitions = {str(sym.name): (sym, e) for _, sym, e in d.forward}
    out["s_of_z"] = inline_equation(*definitions["s_t"])
    out["y_3_of_s_3"] = inline_equation(*_at_step(_model_equation(d, labels.OUTPUT), 3))
    out["total_rule"] = inline_equation(
        Partial(E, m.W_s), sp.Sum(Partial(_step_symbol("E", t), m.W_s), (t, 1, N))
    )
    out["W_y_shape"] = shape(m.W_y)
    out["steps"] = latex(d.config.steps)
    return out


def _o(index: Any) -> sp.MatrixSymbol:
    return _step_symbol("o", index)


def _quantities(d: Derivation) -> tuple[Quantity, ...]:
    """The notation table of Section 1."""
    rows: list[tuple[sp.MatrixSymbol, str]] = [
        (_step_symbol("x", "t"), "input"),
        (_step_symbol("s", "t"), "state, the network's memory"),
        (_step_symbol("y", "t"), "output"),
        (_step_symbol("d", "t"), "desired output"),
        (m.W_x, "input-to-state weights"),
        (m.W_s, "state-to-state weights"),
        (m.W_y, "state-to-output weights"),
        (_step_symbol("z", "t"), "pre-activation of the state (our name)"),
        (_step_symbol("o", "t"), "pre-activation of the output (our name)"),
    ]
    return tuple(Quantity(latex(s), shape(s), meaning) for s, meaning in rows)


# ---------------------------------------------------------------------------------------------
# Sections 3–5: the lecture's chain rule at N = 3.


def _factor_rows(factors: Sequence[Factor]) -> str:
    """Each distinct factor: its Jacobian (row layout) and what it does to a row gradient U."""
    rows = []
    for f in sorted(dict.fromkeys(factors), key=lambda f: chain.KINDS.index(f.kind)):
        action = (f.placeholder, r"\mapsto", f.pullback)
        if f.jacobian is None:
            rows.append(Row(((Partial(f.numerator, f.denominator), "", None), action)))
        else:
            rows.append(Row(((Partial(f.numerator, f.denominator), "=", f.jacobian), action)))
    return aligned(rows)


def _weight_section(
    d: Derivation,
    weight: str,
    term_labels: Sequence[str],
    sum_label: str,
    only: Sequence[str] = chain.KINDS,
) -> WeightSection:
    """Eq. 38–41 (or 43–46); ``only`` the factors of these kinds are evaluated again."""
    expansion = d.expansions[weight]
    terms = expansion.terms
    if [t.through for t in terms] != [3, 2, 1]:
        raise GenerationError(f"expected the lecture's three terms for {weight}, got {terms}")
    loss = Partial(m.E(3), expansion.weight)
    factors = [f for term in terms for f in term.factors if f.kind in only]
    closed = [
        Row.of(Ref(labels.tag(label)), expr)
        for label, expr in zip(term_labels, d.closed.expanded[weight], strict=True)
    ]
    return WeightSection(
        weight=latex(expansion.weight),
        through=tuple(latex(m.s(term.through)) for term in terms),
        terms=tuple(
            Display(latex(term), rf"\tag{{{labels.tag(label)}}}")
            for label, term in zip(term_labels, terms, strict=True)
        ),
        total=_tagged(sum_label, loss, expansion),
        factors=Display(_factor_rows(factors), ""),
        closed=Display(aligned(closed), ""),
    )
