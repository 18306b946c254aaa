"""Stage 7 (notes, Sections 1 and 3–5): the model and the lecture's chain rule at N = 3.

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

from derive import activations as acts
from derive import chain, labels, notation, ops
from derive import model as m
from derive.chain import Factor
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.notes.common import Display, N, at_step, i, step_of, t, tagged, with_diagonals
from derive.printing.latex import (
    Chain,
    Note,
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
    closed_last: str  # the last term's product on one line, (40) = …


# ---------------------------------------------------------------------------------------------
# Section 1: the notation and the model.


def pre_activations(d: Derivation) -> list[m.Equation]:
    """The equations that only name an intermediate (z̄_t, ō_t)."""
    return [
        eq
        for eq in d.statement.equations
        if d.statement.quantities[m.step_of(eq.target)[0]].role == "hidden"  # type: ignore[index]
    ]


def model(d: Derivation) -> tuple[Display, ...]:
    """Eq. 33–35 as the lecture writes them: the named pre-activations substituted."""
    labels_in_order = dict.fromkeys(eq.label for eq in d.statement.equations)
    equations = [model_equation(d, label) for label in labels_in_order]
    return tuple(tagged(eq.label, eq.target, eq.rhs) for eq in equations)


def model_equation(d: Derivation, label: str) -> m.Equation:
    """Eq. 33, 34 or 35 at a generic step, the named pre-activations substituted."""
    names = {eq.target: eq.rhs for eq in pre_activations(d)}
    eq = [eq for eq in d.statement.equations if eq.label == label][-1]
    return m.Equation(label, eq.target, eq.rhs.xreplace(names))


def symbols(d: Derivation) -> dict[str, str]:
    """The symbols and small formulas the prose mentions, printed once here, by name."""
    k = sp.Symbol("k", integer=True, positive=True)
    E, U = sp.MatrixSymbol("E", 1, 1), sp.MatrixSymbol("U", 1, m.n_s)
    exprs: dict[str, Any] = {
        f"{base}_{index}": m.at(base, index)
        for base in ("x", "s", "z", "o", "y", "d", "E", "g", "delta")
        for index in ("t", "N", "i", 1, 2, 3)
    }
    exprs.update(
        {
            "s_0": m.s(0),
            "s_i1": m.at("s", i - 1),
            "s_i_next": m.at("s", i + 1),
            "s_k1": m.at("s", k - 1),
            "s_t_next": m.at("s", t + 1),
            "x_k": m.at("x", k),
            "s_k": m.at("s", k),
            "eta": sp.Symbol("eta"),
            "epsilon": sp.Symbol("epsilon"),
            "W_x": m.W_x,
            "W_s": m.W_s,
            "W_y": m.W_y,
            "W_s_T": m.W_s.T,
            "delta": sp.MatrixSymbol("delta", 1, m.n_s),
            "U": U,
            "E": E,
            "Phi": acts.Phi,
            "dPhi": acts.dPhi,
            "dphi_3": acts.dphi(m.z(3)),
            "diag_dphi_3": sp.DiagMatrix(acts.dphi(m.z(3)).T),
            "diag_dphi_t": sp.DiagMatrix(acts.dphi(m.at("z", t)).T),
            "dphi_t": acts.dphi(m.at("z", t)),
            "D_t": m.D(t),
            "hadamard_D": sp.Eq(
                sp.hadamard_product(U, acts.dphi(m.at("z", t))), U * m.D(t), evaluate=False
            ),
            "state_jacobian_Dk": m.D(t) * m.W_s.T,
            "s_k1_T": m.at("s", k - 1).T,
            "s_Nk": m.at("s", N - k),
            "ds_N_ds_Nk": Partial(m.at("s", N), m.at("s", N - k)),
            "dE_t_do_t": Partial(m.at("E", t), _o("t")),
            "y_softmax": sp.Eq(m.at("y", t), ops.Softmax(m.at("s", t) * m.W_y), evaluate=False),
            "hadamard": sp.hadamard_product(m.s(1), m.s(2)),
            "error_t": m.at("d", "t") - m.at("y", "t"),
            "squared_error_t": sp.HadamardPower(m.at("d", "t") - m.at("y", "t"), 2),
            "dE_3_dy_3": Partial(m.E(3), m.y(3)),
            "dE_3_ds_3": Partial(m.E(3), m.s(3)),
            "dy_3_ds_3": Partial(m.y(3), m.s(3)),
            "dy_3_dW_y": Partial(m.y(3), m.W_y),
            "U_W_y_T": U * m.W_y.T,
            "dE_3_dW_x": Partial(m.E(3), m.W_x),
            "dE_3_dW_s": Partial(m.E(3), m.W_s),
            "dE_dW_s": Partial(E, m.W_s),
            "identity_power": sp.Eq(
                sp.MatPow(m.W_s.T, k),
                Chain(sp.Symbol("rho") ** k, sp.MatPow(sp.MatrixSymbol("Q", m.n_s, m.n_s).T, k)),
                evaluate=False,
            ),
            "dE_3_dW_y": Partial(m.E(3), m.W_y),
            "ds_3_dW_s": Partial(m.s(3), m.W_s),
            "ds_k_ds_k1": Partial(m.at("s", k), m.at("s", k - 1)),
            "ds_k_dW_s": Partial(m.at("s", k), m.W_s),
            "ds_k_dW_x": Partial(m.at("s", k), m.W_x),
            "dE_do_t": Partial(E, _o("t")),
            "dE_dz_t": Partial(E, m.at("z", "t")),
            "dy_N_ds_i": Partial(m.at("y", N), m.at("s", i)),
            "ds_i_dW": Partial(m.at("s", i), m.W_s),
            "g_W_y_T": m.at("g", t) * m.W_y.T,
        }
    )
    state = next(f for f in d.expansions["W_s"].terms[-1].factors if f.kind == "state")
    steps = {step_of(state.numerator): t, step_of(state.denominator): t - 1}
    exprs["state_jacobian"] = with_diagonals(m.renumber(state.jacobian, steps))
    exprs["ds_t_ds_prev"] = m.renumber(leibniz(state), steps)
    out = {name: latex(e, inline=True) for name, e in exprs.items()}
    definitions = {str(eq.target.name): (eq.target, eq.rhs) for eq in d.statement.equations}
    out["s_of_z"] = inline_equation(*definitions["s_t"])
    out["y_3_of_s_3"] = inline_equation(*at_step(model_equation(d, labels.OUTPUT), 3))
    output = next(f for f in d.expansions["W_s"].terms[0].factors if f.kind == "output")
    out["output_jacobian_3"] = latex(output.jacobian, inline=True)
    out["total_rule"] = inline_equation(
        Partial(E, m.W_s), sp.Sum(Partial(m.at("E", t), m.W_s), (t, 1, N))
    )
    out["W_y_shape"] = shape(m.W_y)
    out["steps"] = latex(d.config.steps)
    return out


def _o(index: Any) -> sp.MatrixSymbol:
    return m.at("o", index)


def quantities(d: Derivation) -> tuple[Quantity, ...]:
    """The notation table of Section 1: the statement's quantities and weights, their meanings
    from the one notation table."""
    stmt = d.statement
    roles = ("input", "state", "output", "target")
    rows = [m.at(name, "t") for role in roles for name in stmt.names(role)]
    rows += list(stmt.weights)
    rows += [m.at(name, "t") for name in stmt.names("hidden")]
    return tuple(
        Quantity(latex(s), shape(s), notation.lookup(str(s.name))[0].meaning) for s in rows
    )


# ---------------------------------------------------------------------------------------------
# Sections 3–5: the lecture's chain rule at N = 3.


def product_form(term: chain.Term) -> Any:
    """A term as the lecture writes it, a literal matrix product read left to right: each
    factor's Jacobian (D_k for diag(Φ'(z̄_k))), then the three-index last factor by its action on
    that product. Every step checks that the shapes conform, left to right."""
    product: Any = None
    for f in term.factors:
        if f.jacobian is not None:
            J = with_diagonals(f.jacobian)
            if product is not None and sp.simplify(product.shape[1] - J.shape[0]) != 0:
                raise GenerationError(
                    f"{latex(product)} ({shape_of(product)}) times {latex(J)} ({shape_of(J)}) "
                    "does not conform"
                )
            product = J if product is None else sp.MatMul(product, J).doit(deep=False)
            continue
        row = product if product is not None else sp.Identity(1)
        if any(
            sp.simplify(a - b) != 0 for a, b in zip(row.shape, f.placeholder.shape, strict=True)
        ):
            raise GenerationError(
                f"{latex(row)} ({shape_of(row)}) cannot meet ∂{f.numerator}/∂{f.denominator}"
            )
        return with_diagonals(f.pullback).xreplace({f.placeholder: row})
    raise GenerationError(f"the term {term} does not end with a factor ∂(row)/∂W")


def shape_of(e: Any) -> str:
    return " × ".join(str(n) for n in e.shape)


def factor_rows(factors: Sequence[Factor]) -> str:
    """Each distinct factor: its Jacobian (numerator layout; "—" for a three-index factor) and
    what it does to a row gradient U."""
    rows = []
    for f in sorted(dict.fromkeys(factors), key=lambda f: chain.KINDS.index(f.kind)):
        action = (f.placeholder, r"\mapsto", with_diagonals(f.pullback))
        if f.jacobian is None:
            rows.append(Row(((Partial(f.numerator, f.denominator), "=", Note("—")), action)))
        else:
            J = with_diagonals(f.jacobian)
            rows.append(Row(((Partial(f.numerator, f.denominator), "=", J), action)))
    return aligned(rows)


def weight_section(
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
    loss = Partial(m.E(3), expansion.weight)  # the lecture's E_3
    factors = [f for term in terms for f in term.factors if f.kind in only]
    closed = [
        Row.of(Ref(labels.tag(label)), product_form(term))
        for label, term in zip(term_labels, terms, strict=True)
    ]
    return WeightSection(
        weight=latex(expansion.weight),
        through=tuple(latex(m.s(term.through)) for term in terms),
        terms=tuple(
            Display(latex(term), rf"\tag{{{labels.tag(label)}}}")
            for label, term in zip(term_labels, terms, strict=True)
        ),
        total=tagged(sum_label, loss, expansion),
        factors=Display(factor_rows(factors), ""),
        closed=Display(aligned(closed), ""),
        closed_last=aligned([closed[-1]]),
    )
