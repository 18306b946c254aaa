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

The sections are built by stage: :mod:`~derive.notes.common` (step renaming and its check,
shared by all), :mod:`~derive.notes.lecture` (Sections 1 and 3–5, the model and the chain rule
at N = 3), :mod:`~derive.notes.figure` (Section 2, the unfolded graph),
:mod:`~derive.notes.general` (Section 6, N steps and the δ recurrence),
:mod:`~derive.notes.verification` (Section 7, proof and gradient check) and
:mod:`~derive.notes.code_map` (Section 8, labels → lines of the generated code). This module
assembles their pieces into the one context the templates receive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from derive import labels
from derive import model as m
from derive.derivation import Derivation, derive
from derive.notes.code_map import (
    ModuleCode,
    _module_code,
    code_spans,
    label_mismatch,
    tags_in,
)
from derive.notes.common import (
    Display,
    N,
    _at_step,
    _check,
    _instantiate,
    _renumber,
    _step_symbol,
    _tagged,
    i,
    t,
)
from derive.notes.figure import Edge, Node, _figure
from derive.notes.general import _chain_n, _collected, _general, _output_gradient, _recurrence
from derive.notes.lecture import (
    Quantity,
    WeightSection,
    _factor_rows,
    _model,
    _model_equation,
    _pre_activations,
    _quantities,
    _symbols,
    _weight_section,
)
from derive.notes.verification import (
    CHECK_LIMIT,
    CheckTable,
    ProofTable,
    _check_rows,
    _check_table,
    _proof,
    load_module,
    power_of_ten_bound,
    relative_errors,
)
from derive.printing.latex import Partial, Row, aligned
from derive.render import render

__all__ = [
    "CHECK_LIMIT",
    "LECTURE",
    "TOTAL",
    "N",
    "NotesContext",
    "_check",
    "_check_rows",
    "_instantiate",
    "_renumber",
    "_step_symbol",
    "build_context",
    "code_spans",
    "i",
    "label_mismatch",
    "load_module",
    "notes_files",
    "power_of_ten_bound",
    "relative_errors",
    "t",
    "tags_in",
]

LECTURE = m.Config()  # N = 3, tanh, linear output, c = 1, the loss E_3
TOTAL = m.Config(loss_steps="all")  # the same model with the total loss Σ_t E_t


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
