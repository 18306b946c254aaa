"""Stage 6 (notes): the LaTeX and Markdown notes, assembled from the derivation.

Contract: :func:`notes_files` takes the generated gradient modules (file name → source text) and
returns ``notes/bptt.tex`` and ``notes/bptt.md``, rendered from ``templates/notes.*.jinja`` with
one :class:`NotesContext`: a frozen dataclass of strings already printed by
:mod:`derive.printing.latex`. Every formula comes from :func:`derive.derive` for the lecture's
case (N = 3, E_3) and for the total loss Σ_t E_t; the general forms for N steps (Eq. 37, 42, 47,
R1–R5) are the derivation's own terms with their step numbers renamed, and each is checked to
reproduce every concrete term it stands for. Section 7's numbers are computed here: the proof of
:mod:`derive.verify` and central differences on the generated modules, seeded and rounded up to
a power of ten so that the notes are byte-identical on every run and machine. Anything that does
not hold raises :class:`~derive.errors.GenerationError`.
"""

from __future__ import annotations

import ast
import math
import re
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from derive import chain, labels, verify
from derive import model as m
from derive.chain import Factor, Term
from derive.derivation import Derivation, derive
from derive.errors import GenerationError
from derive.printing.latex import (
    Chain,
    Dots,
    Note,
    Partial,
    Ref,
    Row,
    aligned,
    html,
    inline_equation,
    latex,
    leibniz,
    shape,
)
from derive.render import render

LECTURE = m.Config()  # N = 3, tanh, linear output, c = 1, the loss E_3
TOTAL = m.Config(loss_steps="all")  # the same model with the total loss Σ_t E_t
PROOF_SIZES = (3, 3, 3)
PROOF_POINTS = 3

# Step indices of the general forms.
t, N, i = sp.symbols("t N i", integer=True, positive=True)


@dataclass(frozen=True)
class Display:
    """A displayed equation: its LaTeX body and its tag (``\\tag{38}``, or empty)."""

    body: str
    tag: str


@dataclass(frozen=True)
class Quantity:
    """A row of the notation table: symbol, shape and what it is."""

    tex: str
    shape: str
    meaning: str


@dataclass(frozen=True)
class Node:
    """A vertex of the unfolded graph, with its place in the TikZ picture (cm)."""

    id: str
    tex: str
    html: str
    x: str
    y: str
    style: str  # "given" (x̄_t, d̄_t, s̄_0), "state", "output" or "loss"


@dataclass(frozen=True)
class Edge:
    """A dependency ``source → target``, labelled with the weight it multiplies (or not)."""

    source: str
    target: str
    tex: str
    side: str  # where TikZ puts the label: "above" or "right"
    mermaid: str  # the edge as a line of a Mermaid flowchart


@dataclass(frozen=True)
class WeightSection:
    """∂E_3/∂W for W_s or W_x: terms, their sum, the factors evaluated, the closed form."""

    weight: str
    through: tuple[str, ...]  # s̄_3, s̄_2, s̄_1: the state each term's last factor starts from
    terms: tuple[Display, ...]
    total: Display
    factors: Display
    closed: Display


@dataclass(frozen=True)
class ProofRow:
    loss: str
    symbol: str  # the candidate's symbol, if it has one (δ for the recurrence)
    candidate: str
    verdicts: tuple[str, ...]  # per weight, in the order W_x, W_s, W_y


@dataclass(frozen=True)
class CheckRow:
    module: str
    module_tex: str
    steps: str
    batch: str
    errors: tuple[str, ...]  # LaTeX bounds per weight, in the order W_x, W_s, W_y


@dataclass(frozen=True)
class ProofTable:
    """What :func:`derive.verify.prove` established, per loss and candidate."""

    sizes: str
    points: str
    digits: str
    tolerance: str
    rows: tuple[ProofRow, ...]


@dataclass(frozen=True)
class CheckTable:
    """Central differences on the generated modules."""

    sizes: str
    h: str
    floor: str
    seed: str
    rows: tuple[CheckRow, ...]


@dataclass(frozen=True)
class Lines:
    """A range of lines of a generated module."""

    text: str  # "87–95" (Markdown)
    tex: str  # "87--95"
    href: str  # "../bptt_e3.py#L87-L95", relative to the notes


@dataclass(frozen=True)
class Span:
    """The lines of one function of a generated module that implement an equation."""

    function: str
    function_tex: str
    lines: tuple[Lines, ...]


@dataclass(frozen=True)
class CodeRow:
    label: str  # "Eq. 38", as the code cites it
    ref: str  # "(38)", as the notes number it
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class ModuleCode:
    path: str
    path_tex: str
    href: str
    summary: str
    summary_tex: str
    rows: tuple[CodeRow, ...]


@dataclass(frozen=True)
class NotesContext:
    """Everything the notes' templates show, already printed."""

    sym: dict[str, str]  # inline symbols and small formulas for the prose, by name
    activation: str  # the configured Φ, by name
    quantities: tuple[Quantity, ...]
    model: tuple[Display, ...]  # Eq. 33, 34, 35
    names: Display  # z̄_t and ō_t, the pre-activations
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    loss_3: Display
    w_y_chain: Display  # Eq. 36
    w_y_factors: Display
    w_y_closed: Display
    w_s: WeightSection
    w_x: WeightSection
    general: tuple[Display, ...]  # Eq. 37, 42, 47
    chain_n: Display  # ∂ȳ_N/∂s̄_i written out
    total_loss: Display
    total_terms: str
    g: Display  # R1
    delta: Display  # R2
    collected: tuple[Display, ...]  # R3, R4, R5
    unrolled: Display  # the lecture's δ_3, δ_2, δ_1
    unrolled_sums: Display
    proof: ProofTable
    check: CheckTable
    modules: tuple[ModuleCode, ...]


def notes_files(modules: Mapping[str, str]) -> dict[str, str]:
    """``notes/bptt.tex`` and ``notes/bptt.md`` for the generated modules (name → source)."""
    context = build_context(derive(LECTURE), derive(TOTAL), modules)
    return {
        "notes/bptt.tex": render("notes.tex.jinja", context),
        "notes/bptt.md": render("notes.md.jinja", context),
    }


def build_context(
    lecture: Derivation, total: Derivation, modules: Mapping[str, str], *, prove: bool = True
) -> NotesContext:
    """The notes' context; ``prove=False`` skips the 5-second proof (for quick tests only)."""
    w_y = lecture.expansions["W_y"].terms[0]
    return NotesContext(
        sym=_symbols(lecture),
        activation=lecture.config.activation_name,
        quantities=_quantities(lecture),
        model=_model(lecture),
        names=Display(aligned(Row.of(s, e) for _, s, e in _pre_activations(lecture)), ""),
        nodes=_figure(lecture)[0],
        edges=_figure(lecture)[1],
        loss_3=Display(aligned([Row.of(*_at_step(_model_equation(lecture, labels.LOSS), 3))]), ""),
        w_y_chain=_tagged(labels.W_Y_LECTURE, Partial(m.E(3), m.W_y), w_y),
        w_y_factors=Display(_factor_rows(w_y.factors), ""),
        w_y_closed=Display(
            aligned([Row.of(Partial(m.E(3), m.W_y), lecture.closed.expanded["W_y"][0])]), ""
        ),
        w_s=_weight_section(lecture, "W_s", labels.W_S_TERMS, labels.W_S_SUM),
        w_x=_weight_section(lecture, "W_x", labels.W_X_TERMS, labels.W_X_SUM, only=("weight",)),
        general=_general(lecture),
        chain_n=_chain_n(),
        total_loss=Display(
            aligned([Row.of(sp.MatrixSymbol("E", 1, 1), sp.Sum(_step_symbol("E", t), (t, 1, N)))]),
            "",
        ),
        total_terms=str(len(total.expansions["W_s"].terms)),
        g=_output_gradient(total),
        delta=_recurrence(lecture, total),
        collected=_collected(lecture, total),
        unrolled=Display(
            aligned(Row.of(d.target, d.expression) for d in lecture.closed.recurrence), ""
        ),
        unrolled_sums=Display(
            aligned(
                Row.of(Partial(m.E(3), lecture.expansions[w].weight), lecture.closed.collected[w])
                for w in m.WEIGHT_NAMES
            ),
            "",
        ),
        proof=_proof((lecture, total) if prove else ()),
        check=_check_table(modules),
        modules=tuple(_module_code(name, source) for name, source in sorted(modules.items())),
    )


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


# ---------------------------------------------------------------------------------------------
# Sections 1–2: the model and its unfolded graph.


def _tagged(label: str, lhs: Any, rhs: Any) -> Display:
    return Display(aligned([Row.of(lhs, rhs)]), rf"\tag{{{labels.tag(label)}}}")


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


_STEP = 2.4  # cm between time steps in the figure
_STYLES = {"x": "given", "d": "given", "s": "state", "y": "output", "E": "loss"}


def _figure(d: Derivation) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    """The unfolded model as the chain rule walks it: every factor of every term is an edge."""
    edges: dict[tuple[sp.MatrixSymbol, sp.MatrixSymbol], sp.MatrixSymbol | None] = {}
    for expansion in d.expansions.values():
        for term in expansion.terms:
            for f in term.factors:
                for source, target, weight in _edges(f):
                    edges[(source, target)] = weight
    symbols = sorted({s for pair in edges for s in pair}, key=_place)
    nodes = tuple(
        Node(
            _node_id(s),
            latex(s),
            html(s),
            f"{_place(s)[1]:.2f}",
            f"{_place(s)[2]:.2f}",
            _STYLES[str(s.name).rpartition("_")[0]] if s != m.s(0) else "given",
        )
        for s in symbols
    )
    out = []
    for (source, target), weight in sorted(
        edges.items(), key=lambda e: (_place(e[0][1]), _place(e[0][0]))
    ):
        a, b = _node_id(source), _node_id(target)
        label = "" if weight is None else latex(weight)
        arrow = "-->" if weight is None else f'-- "{html(weight)}" -->'
        side = "right" if _place(source)[1] == _place(target)[1] else "above"
        out.append(Edge(a, b, label, side, f"{a} {arrow} {b}"))
    return nodes, tuple(out)


def _edges(f: Factor) -> list[tuple[sp.MatrixSymbol, sp.MatrixSymbol, sp.MatrixSymbol | None]]:
    """The dependencies a factor differentiates along, with the weight each multiplies."""
    if f.kind == "weight":  # ∂ū/∂W: ū depends on W through the row r̄ in the pullback r̄ᵀ(…)
        row = next(a.arg for a in f.pullback.args if isinstance(a, sp.Transpose))
        return [(row, f.numerator, f.denominator)]
    assert f.jacobian is not None
    found = f.jacobian.atoms(sp.MatrixSymbol)
    weights = [w for w in m.WEIGHTS if w in found]
    if f.kind == "loss":  # E_t = c (d̄_t − ȳ_t)(…)ᵀ: ȳ_t and the desired output d̄_t
        others = sorted(found - {f.denominator}, key=str)
        return [(f.denominator, f.numerator, None)] + [(o, f.numerator, None) for o in others]
    return [(f.denominator, f.numerator, weights[0] if weights else None)]


def _place(symbol: sp.MatrixSymbol) -> tuple[int, float, float]:
    """(drawing order, x, y) of a vertex: states in a row, inputs below, the loss on top."""
    base, _, index = str(symbol.name).rpartition("_")
    k = int(index)
    rows = {"x": (0, -1.6), "s": (1, 0.0), "y": (2, 1.6), "E": (3, 3.2), "d": (4, 3.2)}
    order, y = rows[base]
    x = _STEP * (k + 1) if base == "d" else _STEP * k
    return (order, x, y)


def _node_id(symbol: sp.MatrixSymbol) -> str:
    return str(symbol.name).replace("_", "")


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


# ---------------------------------------------------------------------------------------------
# Section 6: N steps back, the δ recurrence, the total loss.


def _collapse(term: Term) -> Chain:
    """A term with its middle chain named as one factor: ∂E/∂ȳ · ∂ȳ/∂s̄_i · ∂s̄_i/∂W (Eq. 42)."""
    first, *middle, last = term.factors
    if not middle:
        return Chain(
            Partial(first.numerator, first.denominator), Partial(last.numerator, last.denominator)
        )
    return Chain(
        Partial(first.numerator, first.denominator),
        Partial(middle[0].numerator, middle[-1].denominator),
        Partial(last.numerator, last.denominator),
    )


def _general(d: Derivation) -> tuple[Display, ...]:
    """Eq. 37, 42, 47: the lecture's terms for E_3 with 3 written N and the path's state i."""
    out = []
    w_y = _collapse(d.expansions["W_y"].terms[0])
    pattern = _check([w_y], _renumber(w_y, {3: N}), [{N: 3}])
    out.append(_tagged(labels.W_Y_GENERAL, Partial(_step_symbol("E", N), m.W_y), pattern))
    for weight, label in (("W_s", labels.W_S_GENERAL), ("W_x", labels.W_X_GENERAL)):
        terms = d.expansions[weight].terms
        chains = [_collapse(term) for term in terms]
        through_2 = chains[[term.through for term in terms].index(2)]
        pattern = _check(
            chains,
            _renumber(through_2, {3: N, 2: i}),
            [{N: 3, i: term.through} for term in terms],
        )
        lhs = Partial(_step_symbol("E", N), d.expansions[weight].weight)
        out.append(_tagged(label, lhs, sp.Sum(pattern, (i, 1, N))))
    return tuple(out)


def _chain_n() -> Display:
    """∂ȳ_N/∂s̄_i of Eq. 42 and 47 written out: the path through s̄_1 of N = 4, renamed."""
    d4 = derive(m.Config(steps=4))
    term = next(term for term in d4.expansions["W_s"].terms if term.through == 1)
    links = term.factors[1:-1]  # ∂ȳ_4/∂s̄_4, ∂s̄_4/∂s̄_3, ∂s̄_3/∂s̄_2, ∂s̄_2/∂s̄_1
    steps = {4: N, 3: N - 1, 2: i + 1, 1: i}
    first, second, *_, last = (_renumber(Partial(f.numerator, f.denominator), steps) for f in links)
    lhs = _renumber(Partial(links[0].numerator, links[-1].denominator), steps)
    return Display(aligned([Row.of(lhs, Chain(first, second, Dots(), last))]), "")


def _output_gradient(total: Derivation) -> Display:
    """R1: g_t, from the total loss's g_1, g_2, g_3 with the step written t."""
    lines = [line for line in total.closed.recurrence if str(line.target.name).startswith("g_")]
    pairs = [(line.target, line.expression) for line in lines]
    steps = [int(str(line.target.name).rpartition("_")[2]) for line in lines]
    pattern = _check(
        [sp.Tuple(*p) for p in pairs],
        _renumber(sp.Tuple(*pairs[-1]), {steps[-1]: t}),
        [{t: k} for k in steps],
    )
    return Display(
        aligned([Row.of(pattern[0], pattern[1])]), rf"\tag{{{labels.tag(labels.OUTPUT_GRADIENT)}}}"
    )


def _delta_lines(d: Derivation) -> tuple[Any, Any]:
    """δ_N and δ_t (t < N) of a derivation with N = 3, checked against δ_3, δ_2, δ_1."""
    lines = {
        int(str(line.target.name).rpartition("_")[2]): sp.Tuple(line.target, line.expression)
        for line in d.closed.recurrence
        if str(line.target.name).startswith("delta_")
    }
    last = _check([lines[3]], _renumber(lines[3], {3: N}), [{N: 3}])
    step = _check(
        [lines[2], lines[1]], _renumber(lines[2], {1: t - 1, 2: t, 3: t + 1}), [{t: 2}, {t: 1}]
    )
    return last, step


def _recurrence(lecture: Derivation, total: Derivation) -> Display:
    """R2: the δ recurrence for E_N (the lecture's loss) and for Σ_t E_t."""
    last, step_total = _delta_lines(total)
    last_lecture, step_lecture = _delta_lines(lecture)
    if last != last_lecture:
        raise GenerationError(f"δ_N differs between the two losses: {last} and {last_lecture}")
    before_n = sp.StrictLessThan(t, N)
    rows = [
        Row.of(last[0], last[1]),
        Row(
            (
                (step_lecture[0], "=", step_lecture[1]),
                (None, "", Note("for ", before_n, ", loss ", _step_symbol("E", N))),
            )
        ),
        Row(
            (
                (step_total[0], "=", step_total[1]),
                (None, "", Note("for ", before_n, ", loss ", sp.MatrixSymbol("E", 1, 1))),
            )
        ),
    ]
    return Display(aligned(rows), rf"\tag{{{labels.tag(labels.DELTA)}}}")


def _sum_pattern(expr: Any, index: sp.Symbol, steps: int) -> Any:
    """Σ_{index=1}^{N} of a collected sum's terms, found from its step-2 term and checked."""
    terms = list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]
    if len(terms) != steps:
        raise GenerationError(f"expected {steps} terms in {expr}, got {len(terms)}")

    def top(term: Any) -> int:
        return max(
            int(str(s.name).rpartition("_")[2])
            for s in term.atoms(sp.MatrixSymbol)
            if str(s.name).rpartition("_")[2].isdigit()
        )

    middle = next(term for term in terms if top(term) == 2)
    pattern = _renumber(middle, {1: index - 1, 2: index, 3: index + 1})
    by_top = sorted(terms, key=top)
    _check(by_top, pattern, [{index: top(term)} for term in by_top])
    return sp.Sum(pattern, (index, 1, N))


def _collected(lecture: Derivation, total: Derivation) -> tuple[Display, ...]:
    """R3–R5: ∂E/∂W as sums over steps of (row)ᵀ · (named gradient)."""
    n = lecture.config.steps
    e_n, e = _step_symbol("E", N), sp.MatrixSymbol("E", 1, 1)
    w_y_last = _check(
        [lecture.closed.collected["W_y"]],
        _renumber(lecture.closed.collected["W_y"], {3: N}),
        [{N: 3}],
    )
    w_y = aligned(
        [
            Row.of(Partial(e_n, m.W_y), w_y_last),
            Row.of(Partial(e, m.W_y), _sum_pattern(total.closed.collected["W_y"], t, n)),
        ]
    )
    out = [Display(w_y, rf"\tag{{{labels.tag(labels.W_Y_COLLECTED)}}}")]
    for weight, label in (("W_s", labels.W_S_COLLECTED), ("W_x", labels.W_X_COLLECTED)):
        lecture_sum = _sum_pattern(lecture.closed.collected[weight], i, n)
        if lecture_sum != _sum_pattern(total.closed.collected[weight], i, n):
            raise GenerationError(f"the collected {weight} differs between the two losses")
        w = lecture.expansions[weight].weight
        out.append(_tagged(label, Partial(e, w), lecture_sum))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Section 7: what was proven, and the gradient check of the generated modules.

_CANDIDATE_WORDS = {
    "chain-rule expansion": (None, "chain rule, factor by factor"),
    "expanded closed form": (None, "closed forms, term by term"),
    "collected closed form (δ recurrence)": (sp.MatrixSymbol("delta", 1, 1), "recurrence"),
}


def _proof(derivations: Sequence[Derivation]) -> ProofTable:
    """One row per loss and candidate: 'equal' for each weight, or generation fails."""
    rows = []
    for d in derivations:
        proof = verify.prove(d, PROOF_SIZES, points=PROOF_POINTS)
        proof.raise_if_failed()
        loss = m.E(d.config.steps) if d.config.loss_steps == "last" else sp.MatrixSymbol("E", 1, 1)
        for candidate in verify.CANDIDATES:
            verdicts = tuple(
                "equal"
                for w in m.WEIGHT_NAMES
                for c in proof.comparisons
                if c.candidate == candidate and c.weight == w and c.ok
            )
            symbol, words = _CANDIDATE_WORDS[candidate]
            symbol_tex = "" if symbol is None else latex(symbol)
            rows.append(ProofRow(latex(loss), symbol_tex, words, verdicts))
    return ProofTable(
        _sizes(PROOF_SIZES),
        str(PROOF_POINTS),
        str(verify.DIGITS),
        _power_of_ten(float(verify.TOLERANCE)),
        tuple(rows),
    )


def _sizes(sizes: tuple[int, int, int]) -> str:
    return ",\\ ".join(
        f"{latex(n)} = {v}" for n, v in zip((m.n_x, m.n_s, m.n_y), sizes, strict=True)
    )


# The gradient check: fixed sizes with n_x ≠ n_s ≠ n_y (a transposed weight cannot hide), a fixed
# seed, and a step h whose truncation error (of order h²) dominates the rounding error (of order
# 10⁻¹⁶/h): the errors are then the same on every machine to many digits, and their upper bound
# by a power of ten is the same text everywhere.
CHECK_SIZES = (3, 4, 2)
CHECK_H = 1e-4
CHECK_SEED = 20240917
CHECK_LIMIT = 1e-6  # a wrong gradient is off by order 1; central differences by order h²
# Below this the rounding error of the differences (of order 10⁻¹⁶/h relative) decides the digits,
# which differ between machines: smaller errors are all reported as this bound.
CHECK_FLOOR = 1e-9
CHECK_STEPS = (1, 3, 5)
CHECK_BATCH = 4


def load_module(name: str, source: str) -> types.ModuleType:
    """Execute generated source in a fresh module (registered only while it runs)."""
    module = types.ModuleType(f"_notes_{name}")
    sys.modules[module.__name__] = module
    try:
        exec(compile(source, f"generated/{name}.py", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module


def relative_errors(
    module: Any, steps: int, batch: int | None, seed: int = CHECK_SEED, h: float = CHECK_H
) -> tuple[float, ...]:
    """max |∂E/∂w − central difference| / max |central difference|, per weight W_x, W_s, W_y."""
    rng = np.random.default_rng([seed, steps, batch or 0])
    n_x, n_s, n_y = CHECK_SIZES
    lead = (steps,) if batch is None else (steps, batch)
    x = rng.standard_normal((*lead, n_x))
    d = rng.standard_normal((*lead, n_y))
    s0 = 0.5 * rng.standard_normal((n_s,) if batch is None else (batch, n_s))
    weights = [0.5 * rng.standard_normal(s) for s in ((n_x, n_s), (n_s, n_s), (n_s, n_y))]
    grads = module.gradients(x, d, *weights, s0)
    errors = []
    for k, name in enumerate(m.WEIGHT_NAMES):
        numeric = np.zeros_like(weights[k])
        for idx in np.ndindex(weights[k].shape):
            plus = [w.copy() for w in weights]
            minus = [w.copy() for w in weights]
            plus[k][idx] += h
            minus[k][idx] -= h
            numeric[idx] = (module.loss(x, d, *plus, s0) - module.loss(x, d, *minus, s0)) / (2 * h)
        diff = np.max(np.abs(np.asarray(getattr(grads, name)) - numeric))
        errors.append(float(diff / np.max(np.abs(numeric))))
    return tuple(errors)


def power_of_ten_bound(error: float) -> str:
    """The smallest power of ten ≥ ``error`` (and ≥ the floor), in LaTeX: ``\\le 10^{-8}``."""
    if not math.isfinite(error) or error < 0:
        raise GenerationError(f"a relative error must be finite and ≥ 0, got {error}")
    return rf"\le {_power_of_ten(10.0 ** math.ceil(math.log10(max(error, CHECK_FLOOR))))}"


def check_cases(fixed_steps: int | None) -> list[tuple[int, int | None]]:
    """(T, batch) cases: a straight-line module's own T; a loop module's T = 1, 3, 5."""
    steps = CHECK_STEPS if fixed_steps is None else (fixed_steps,)
    return [(T, None) for T in steps] + [(steps[-1], CHECK_BATCH)]


def _check_rows(modules: Mapping[str, str]) -> tuple[CheckRow, ...]:
    rows = []
    for path, source in sorted(modules.items()):
        module = load_module(path.removesuffix(".py"), source)
        for steps, batch in check_cases(module.CONFIG["steps"]):
            errors = relative_errors(module, steps, batch)
            if max(errors) > CHECK_LIMIT:
                raise GenerationError(
                    f"the gradient check of generated/{path} failed at T = {steps}, "
                    f"batch {batch}: relative errors {errors}"
                )
            rows.append(
                CheckRow(
                    f"generated/{path}",
                    _tex_text(f"generated/{path}"),
                    str(steps),
                    "none" if batch is None else str(batch),
                    tuple(power_of_ten_bound(e) for e in errors),
                )
            )
    return tuple(rows)


def _check_table(modules: Mapping[str, str]) -> CheckTable:
    return CheckTable(
        _sizes(CHECK_SIZES),
        _power_of_ten(CHECK_H),
        _power_of_ten(CHECK_FLOOR),
        str(CHECK_SEED),
        _check_rows(modules),
    )


def _power_of_ten(value: float) -> str:
    """A power of ten in LaTeX, ``10^{-4}``."""
    return f"10^{{{round(math.log10(value))}}}"


# ---------------------------------------------------------------------------------------------
# Section 8: where each label is implemented in the generated code.


def code_spans(source: str) -> dict[str, list[tuple[str, int, int]]]:
    """label → (function, first line, last line) for each block the label heads in ``source``.

    A block runs from its label comment (and the comment lines right after it) over the
    statements that follow in the same statement list, up to the next label comment or the end
    of that list (a final ``return`` excluded); adjacent blocks of one label are merged.
    """
    lines = source.splitlines()
    cited = labels.cited_in_code(source)
    starts = sorted(line for line, _ in cited)
    functions = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    # Every statement with the statement list it belongs to (a body, an else branch …).
    siblings: dict[int, list[ast.stmt]] = {}
    for fn in functions:
        for node in ast.walk(fn):
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    for stmt in block:
                        if isinstance(stmt, ast.stmt):
                            siblings[stmt.lineno] = block
    out: dict[str, list[tuple[str, int, int]]] = {}
    for line, label in cited:
        fn = min(
            (f for f in functions if f.lineno <= line <= (f.end_lineno or f.lineno)),
            key=lambda f: (f.end_lineno or f.lineno) - f.lineno,
        )
        first = line
        while first < len(lines) and lines[first].lstrip().startswith("#"):
            first += 1  # the 0-based index `first` is the 1-based line after the comments
        first += 1
        stop = min([s for s in starts if s > first] + [(fn.end_lineno or line) + 1]) - 1
        block = [
            st
            for st in siblings.get(first, [])
            if first <= st.lineno <= stop and not (isinstance(st, ast.Return) and st.lineno > first)
        ]
        ends = [st.end_lineno or st.lineno for st in block]
        last = min(max(ends), stop) if ends else line
        spans = out.setdefault(label, [])
        if spans and spans[-1][0] == fn.name and spans[-1][2] + 1 >= line:
            spans[-1] = (fn.name, spans[-1][1], max(spans[-1][2], last))
        else:
            spans.append((fn.name, line, last))
    return out


def _label_key(label: str) -> tuple[int, int]:
    number = int(re.sub(r"\D", "", label))
    return (0, number) if label.startswith("Eq.") else (1, number)


def _module_code(path: str, source: str) -> ModuleCode:
    summary = (ast.get_docstring(ast.parse(source)) or "").splitlines()[0]
    rows = []
    for label, found in sorted(code_spans(source).items(), key=lambda kv: _label_key(kv[0])):
        by_function: dict[str, list[Lines]] = {}
        for fn, a, b in found:
            by_function.setdefault(fn, []).append(
                Lines(
                    f"{a}–{b}" if a != b else str(a),
                    f"{a}--{b}" if a != b else str(a),
                    f"../{path}#L{a}-L{b}" if a != b else f"../{path}#L{a}",
                )
            )
        spans = tuple(Span(fn, _tex_text(fn), tuple(lines)) for fn, lines in by_function.items())
        rows.append(CodeRow(label, f"({labels.tag(label)})", spans))
    where = f"generated/{path}"
    return ModuleCode(
        where, _tex_text(where), f"../{path}", summary, _tex_text(summary), tuple(rows)
    )


def _tex_text(text: str) -> str:
    """Plain text for LaTeX: the underscores of file and function names escaped."""
    return text.replace("_", r"\_")


def tags_in(notes: str) -> set[str]:
    """The labels a notes file defines, from its ``\\tag{…}``s (``38`` → ``Eq. 38``)."""
    return {
        f"Eq. {tag}" if tag.isdigit() else tag for tag in re.findall(r"\\tag\{([^}]*)\}", notes)
    }


def label_mismatch(modules: Mapping[str, str], notes: str) -> list[str]:
    """Why the labels cited in the code and defined in the notes disagree (empty if they agree).

    Every label cited in a module must be defined in the notes; every derived result the notes
    define (Eq. 36 onwards and R1–R5) must be cited in some module. The model's Eq. 33–35 may be
    defined without being cited.
    """
    cited = {label for source in modules.values() for _, label in labels.cited_in_code(source)}
    defined = tags_in(notes)
    model = {labels.STATE, labels.OUTPUT, labels.LOSS}
    problems = [
        f"{label} is cited in the code but not defined in the notes"
        for label in sorted(cited - defined)
    ]
    problems += [
        f"{label} is defined in the notes but cited in no generated module"
        for label in sorted(defined - cited - model)
    ]
    return problems
