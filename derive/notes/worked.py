"""Stage 7 (notes, the worked example): the lecture's case with numbers, printed.

Contract: :func:`worked` turns a :class:`~derive.worked.WorkedExample` (computed and checked
against the generated code before the notes run) into displays: the inputs, the forward values,
the derivatives D_t, and each term of Eq. 38–40 as its factors, their values and their product,
then the sum (Eq. 41) beside what the generated module returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive import labels
from derive import model as m
from derive.notes.common import Display
from derive.printing.latex import Numbers, Partial, Ref, Row, aligned, latex
from derive.worked import Term, WorkedExample

SHOWN = 5  # significant digits printed


@dataclass(frozen=True)
class WorkedSection:
    """The worked example's displays and numbers, printed."""

    inputs: str  # inline: W_x = 0.5, …
    forward: Display
    derivatives: Display
    terms: Display
    total: Display
    code_value: str  # what generated/bptt_e3.py returns for ∂E_3/∂W_s
    difference: str  # |code − sum| / |sum|, as a power of ten


def _n(value: sp.Float) -> sp.Float:
    return sp.Float(value, SHOWN)


def _input(v: sp.Rational) -> sp.Expr:
    """An input as it is best read: 2, or 0.5 for 1/2."""
    return v if v.is_Integer else _n(sp.Float(v))


def worked_terms(
    terms: tuple[Term, ...], term_labels: tuple[str, ...], total: sp.Float
) -> tuple[str, str]:
    """Each term as its factors, their values and their product; and the sum, printed."""
    rows = []
    for term, label in zip(terms, term_labels, strict=True):
        chain = sp.Mul(*(Partial(a, b) for a, b, _ in term.factors), evaluate=False)
        numbers = Numbers(*(_n(v) for _, _, v in term.factors))
        rows.append(Row.of(Ref(labels.tag(label)), chain))
        rows.append(Row(((None, "=", numbers), (None, "=", _n(term.value)))))
    return aligned(rows), latex(_n(total), inline=True)


def worked(ex: WorkedExample, code_value: float) -> WorkedSection:
    terms, _ = worked_terms(ex.terms, labels.W_S_TERMS, ex.total)
    relative = abs(code_value - float(ex.total)) / abs(float(ex.total))
    exponent = -16 if relative == 0 else int(sp.ceiling(sp.log(relative, 10)))
    return WorkedSection(
        inputs=", ".join(
            f"{latex(s, inline=True)} = {latex(_input(v), inline=True)}" for s, v in ex.inputs
        ),
        forward=Display(aligned(Row.of(q, _n(v)) for q, v in ex.forward), ""),
        derivatives=Display(aligned(Row.of(q, _n(v)) for q, v in ex.derivatives), ""),
        terms=Display(terms, ""),
        total=Display(
            aligned(
                [
                    Row(
                        (
                            (
                                Partial(m.E(3), m.W_s),
                                "=",
                                sp.Add(
                                    *(Ref(labels.tag(lab)) for lab in labels.W_S_TERMS),
                                    evaluate=False,
                                ),
                            ),
                            (None, "=", _n(ex.total)),
                        )
                    )
                ]
            ),
            "",
        ),
        code_value=latex(sp.Float(code_value, 12), inline=True),
        difference=f"10^{{{exponent}}}" if relative else "0",
    )
