"""Stage 7 (notes): the LaTeX and Markdown notes, rendered from results computed before.

Contract: :func:`notes_files` takes a :class:`NotesInput`, everything the notes report, already
computed by :func:`derive.generate.standard_files` (the derivations of the lecture's case, N = 3
with E_3, and of the total loss Σ_t E_t; their proofs; the gradient check of the generated
modules; the modules' sources), and returns ``notes/bptt.tex`` and ``notes/bptt.md``, rendered
from ``templates/notes.*.jinja`` with one :class:`NotesContext`: a frozen dataclass of strings
printed by :mod:`derive.printing.latex`. The notes derive, prove and run nothing: every formula
comes from the derivations handed in; the general forms for N steps (Eq. 37, 42, 47, R1–R5) are
the derivations' own terms with their step numbers renamed, each checked to reproduce every
concrete term it stands for. Anything that does not hold raises
:class:`~derive.errors.GenerationError`.

The sections are built by stage: :mod:`~derive.notes.common` (shared),
:mod:`~derive.notes.lecture` (Sections 1 and 3–5, the model and the chain rule at N = 3),
:mod:`~derive.notes.figure` (Section 2, the unfolded graph), :mod:`~derive.notes.general`
(Section 6, N steps and the δ recurrence), :mod:`~derive.notes.verification` (Section 7, the
proof and the gradient check, printed) and :mod:`~derive.notes.code_map` (Section 8, labels →
lines of the generated code). This module assembles their pieces into the one context the
templates receive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from derive import labels
from derive import model as m
from derive.check import CheckResult, NormCurve
from derive.derivation import Derivation
from derive.notes import (
    code_map,
    exercises,
    figure,
    general,
    lecture,
    vanishing,
    verification,
    worked,
)
from derive.notes.common import Display, N, at_step, t, tagged
from derive.printing.latex import Partial, Row, aligned
from derive.render import render
from derive.verify import Proof
from derive.worked import WorkedExample

__all__ = ["NotesContext", "NotesInput", "build_context", "notes_files"]


@dataclass(frozen=True)
class NotesInput:
    """What the notes report, computed before they are rendered."""

    lecture: Derivation  # N = 3, the loss E_3
    total: Derivation  # N = 3, the total loss Σ_t E_t
    proofs: tuple[Proof, ...]
    checks: tuple[CheckResult, ...]
    modules: Mapping[str, str]  # generated file name → source
    example: WorkedExample  # the lecture's case with numbers (n = 1)
    example_code: float  # ∂E_3/∂W_s of the example by generated/bptt_e3.py
    curves: tuple[NormCurve, ...]  # R6 measured: ‖∂s̄_T/∂s̄_(T−k)‖₂ (vanishing gradients)
    softmax: Derivation  # softmax output, squared error, Σ_t E_t
    classifier: Derivation  # softmax output, cross-entropy, Σ_t E_t
    half: Derivation  # the lecture's case with the loss scaled by ½
    variants: tuple[str, ...] = ()  # the variant modules' file names, each with a page


@dataclass(frozen=True)
class NotesContext:
    """Everything the notes' templates show, already printed."""

    sym: dict[str, str]  # inline symbols and small formulas for the prose, by name
    activation: str  # the configured Φ, by name
    quantities: tuple[lecture.Quantity, ...]
    model: tuple[Display, ...]  # Eq. 33, 34, 35
    names: Display  # z̄_t and ō_t, the pre-activations
    figure: figure.Figure  # Section 2
    loss_3: Display
    w_y_chain: Display  # Eq. 36
    w_y_factors: Display
    w_y_closed: Display
    w_s: lecture.WeightSection
    w_x: lecture.WeightSection
    general: tuple[Display, ...]  # Eq. 37, 42, 47
    chain_n: Display  # ∂ȳ_N/∂s̄_i written out
    transitions: Display  # R6, ∂s̄_N/∂s̄_(N−k)
    vanishing: vanishing.Vanishing  # R6 measured, the plot
    extras: exercises.Extras  # softmax g_t, the copies W_1, W_2, W_3, the exercises' answers
    total_loss: Display
    total_terms: str
    g: Display  # R1
    delta: Display  # R2
    collected: tuple[Display, ...]  # R3, R4, R5
    training: tuple[Display, ...]  # the update rule, Eq. 61, norm clipping
    variants: tuple[tuple[str, str], ...]  # (module file, notes page) of the variant modules
    worked: worked.WorkedSection
    unrolled: Display  # the lecture's δ_3, δ_2, δ_1
    unrolled_sums: Display
    proof: verification.ProofTable
    check: verification.CheckTable
    modules: tuple[code_map.ModuleCode, ...]


def notes_files(given: NotesInput) -> dict[str, str]:
    """``notes/bptt.tex`` and ``notes/bptt.md``."""
    context = build_context(given)
    return {
        "notes/bptt.tex": render("notes.tex.jinja", context),
        "notes/bptt.md": render("notes.md.jinja", context),
        "notes/vanishing.svg": render("vanishing.svg.jinja", context.vanishing),
    }


def build_context(given: NotesInput) -> NotesContext:
    """The notes' context, printed from what ``given`` holds."""
    lec, total = given.lecture, given.total
    w_y = lec.expansions["W_y"].terms[0]
    return NotesContext(
        sym=lecture.symbols(lec),
        activation=lec.config.activation_name,
        quantities=lecture.quantities(lec),
        model=lecture.model(lec),
        names=Display(
            aligned(Row.of(eq.target, eq.rhs) for eq in lecture.pre_activations(lec)), ""
        ),
        figure=figure.figure(lec),
        loss_3=Display(
            aligned([Row.of(*at_step(lecture.model_equation(lec, labels.LOSS), 3))]), ""
        ),
        w_y_chain=tagged(labels.W_Y_LECTURE, Partial(m.E(3), m.W_y), w_y),
        w_y_factors=Display(lecture.factor_rows(w_y.factors), ""),
        w_y_closed=Display(
            aligned([Row.of(Partial(m.E(3), m.W_y), lec.closed.expanded["W_y"][0])]), ""
        ),
        w_s=lecture.weight_section(lec, "W_s", labels.W_S_TERMS, labels.W_S_SUM),
        w_x=lecture.weight_section(lec, "W_x", labels.W_X_TERMS, labels.W_X_SUM, only=("weight",)),
        general=general.general(lec),
        chain_n=general.chain_n(lec),
        transitions=general.transitions(lec),
        vanishing=vanishing.section(given.curves),
        extras=exercises.extras(
            lec,
            given.softmax,
            given.classifier,
            given.half,
            given.example,
            len(total.expansions["W_s"].terms),
        ),
        total_loss=Display(
            aligned([Row.of(sp.MatrixSymbol("E", 1, 1), sp.Sum(m.at("E", t), (t, 1, N)))]),
            "",
        ),
        total_terms=str(len(total.expansions["W_s"].terms)),
        g=general.output_gradient(total),
        delta=general.recurrence(lec, total),
        collected=general.collected(lec, total),
        training=general.training(),
        variants=tuple((name, name.removesuffix(".py") + ".md") for name in given.variants),
        worked=worked.worked(given.example, given.example_code),
        unrolled=Display(
            aligned(Row.of(d.target, d.expression) for d in lec.closed.recurrence), ""
        ),
        unrolled_sums=Display(
            aligned(
                Row.of(Partial(m.E(3), lec.expansions[w].weight), lec.closed.collected[w])
                for w in m.WEIGHT_NAMES
            ),
            "",
        ),
        proof=verification.proof_table(given.proofs),
        check=verification.check_table(given.checks),
        modules=tuple(
            code_map.module_code(name, source) for name, source in sorted(given.modules.items())
        ),
    )
