"""Stage 7 (notes, the lecture's remaining content and the exercises): printed pieces.

Contract: from derivations handed in (the lecture's case, the softmax output with the squared
error and with the cross-entropy, the loss scaled by ½), the worked example and the total loss's
term count, :func:`extras` prints what the notes show beyond the chain rule itself: the softmax
variant's output gradients, the lecture's "some more math" argument (a copy of W_s per step, the
derivatives summed), and the answers to the exercises. Nothing is derived here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from derive import labels
from derive import model as m
from derive.derivation import Derivation
from derive.notes import general
from derive.notes.common import Display
from derive.notes.worked import worked_terms
from derive.printing.latex import Note, Partial, Ref, Row, aligned, latex
from derive.worked import WorkedExample

# Exercise 3: ρ of W_s = ρ·Q and the size the gradient's factor must fall below.
DECAY_RHO = sp.Rational(1, 2)
DECAY_BELOW = 3  # 10⁻³


@dataclass(frozen=True)
class Extras:
    """The printed pieces (see the module docstring)."""

    softmax_g: Display  # g_t for a softmax output: squared error, cross-entropy
    copies: Display  # ∂E_3/∂W_s as the sum of the derivatives with respect to copies W_1, W_2, W_3
    copies_x: Display  # the same for W_x (exercise 6's answer)
    half_w_y: Display  # exercise 1's answer: ∂E_3/∂W_y with the factor ½
    worked_x: Display  # exercise 2's answer: (43)–(45) with the worked example's numbers
    worked_x_total: str
    decay_rho: str
    decay_below: str
    decay_steps: str  # exercise 3's answer: the first k with ρ^k below 10⁻³
    decay_value: str  # ρ^k there
    total_terms: str  # exercise 5's answer: N(N+1)/2 for N = 3


def _copies(lecture: Derivation, weight: str, term_labels: tuple[str, ...]) -> Display:
    """∂E_3/∂W = Σ_k ∂E_3/∂W_k over copies W_k of W, one per step, and which term each is."""
    w = lecture.expansions[weight].weight
    copies = {k: sp.MatrixSymbol(f"W_{k}", *w.shape) for k in (3, 2, 1)}
    rows = [
        Row.of(
            Partial(m.E(3), w),
            sp.Add(*(Partial(m.E(3), c) for c in copies.values()), evaluate=False),
        )
    ]
    for term, label in zip(lecture.expansions[weight].terms, term_labels, strict=True):
        rows.append(Row.of(Partial(m.E(3), copies[term.through]), Ref(labels.tag(label))))
    return Display(aligned(rows), "")


def extras(
    lecture: Derivation,
    softmax: Derivation,
    classifier: Derivation,
    half: Derivation,
    example: WorkedExample,
    total_terms: int,
) -> Extras:
    rows = [
        Row(((lhs, "=", rhs), (None, "", Note(words))))
        for (lhs, rhs), words in (
            (general.output_gradient_form(softmax), "softmax, squared error"),
            (general.output_gradient_form(classifier), "softmax, cross-entropy"),
        )
    ]
    copies = _copies(lecture, "W_s", labels.W_S_TERMS)
    copies_x = _copies(lecture, "W_x", labels.W_X_TERMS)
    steps = math.ceil(DECAY_BELOW / -math.log10(float(DECAY_RHO)))
    x_rows, x_total = worked_terms(example.terms_x, labels.W_X_TERMS, example.total_x)
    return Extras(
        softmax_g=Display(aligned(rows), ""),
        copies=copies,
        copies_x=copies_x,
        half_w_y=Display(
            aligned([Row.of(Partial(m.E(3), m.W_y), half.closed.expanded["W_y"][0])]), ""
        ),
        worked_x=Display(x_rows, ""),
        worked_x_total=x_total,
        decay_rho=latex(DECAY_RHO, inline=True),
        decay_below=f"10^{{-{DECAY_BELOW}}}",
        decay_steps=str(steps),
        decay_value=latex(sp.Float(float(DECAY_RHO) ** steps, 3), inline=True),
        total_terms=str(total_terms),
    )
