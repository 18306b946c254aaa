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
    half_w_y: Display  # exercise 1's answer: ∂E_3/∂W_y with the factor ½
    worked_x: Display  # exercise 2's answer: (43)–(45) with the worked example's numbers
    worked_x_total: str
    decay_rho: str
    decay_below: str
    decay_steps: str  # exercise 3's answer: the first k with ρ^k below 10⁻³
    decay_value: str  # ρ^k there
    total_terms: str  # exercise 5's answer: N(N+1)/2 for N = 3


def _g(d: Derivation) -> tuple[object, object]:
    general.output_gradient(d)  # raises unless the form at t reproduces every step's g_t
    line = next(
        line for line in reversed(d.closed.recurrence) if str(line.target.name).startswith("g_")
    )
    step = int(str(line.target.name).rpartition("_")[2])
    return m.renumber(line.target, {step: m.t}), m.renumber(line.expression, {step: m.t})


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
            (_g(softmax), "softmax, squared error"),
            (_g(classifier), "softmax, cross-entropy"),
        )
    ]
    copies = [sp.MatrixSymbol(f"W_{k}", m.n_s, m.n_s) for k in (1, 2, 3)]
    through = {
        term.through: label
        for term, label in zip(lecture.expansions["W_s"].terms, labels.W_S_TERMS, strict=True)
    }
    copy_rows = [
        Row.of(
            Partial(m.E(3), m.W_s),
            sp.Add(*(Partial(m.E(3), w) for w in reversed(copies)), evaluate=False),
        )
    ]
    copy_rows += [
        Row.of(Partial(m.E(3), w), Ref(labels.tag(through[k])))
        for k, w in zip((3, 2, 1), reversed(copies), strict=True)
    ]
    steps = math.ceil(DECAY_BELOW / -math.log10(float(DECAY_RHO)))
    x_rows, x_total = worked_terms(example.terms_x, labels.W_X_TERMS, example.total_x)
    return Extras(
        softmax_g=Display(aligned(rows), ""),
        copies=Display(aligned(copy_rows), ""),
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
