"""Stage 7 (notes, Section 6): N steps back, the δ recurrence and the total loss.

Contract: the general forms Eq. 37, 42, 47 and R1–R5 as printed displays, each found by renaming
the step numbers of a concrete derivation's own terms (the lecture's E_3 and the total loss
Σ_t E_t at N = 3) and checked with :func:`~derive.notes.common.general_form`
to reproduce every concrete term it stands for; anything else raises
:class:`~derive.errors.GenerationError`.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from derive import labels
from derive import model as m
from derive.chain import Term
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.notes.common import Display, N, general_form, i, t, tagged, with_diagonals
from derive.printing.latex import Chain, Dots, Note, Partial, Row, aligned


def training() -> tuple[Display, ...]:
    """The update rule, the mini-batch mean (Eq. 61, in the lecture's δ_ij for ∂E/∂w_ij) and
    norm clipping (Pascanu et al., with the 1e-6 the code adds as torch does)."""
    eta, M, k, theta = sp.symbols("eta M k theta", positive=True)
    W, E = sp.MatrixSymbol("W", 1, 1), sp.MatrixSymbol("E", 1, 1)
    g, norm = sp.Symbol("g"), sp.Symbol(r"\lVert g \rVert", positive=True)
    epsilon = sp.Symbol("epsilon", positive=True)  # 10⁻⁶, said in the text
    w = sp.Symbol("W")
    update = Row.of(w, sp.Add(w, sp.Mul(-eta, Partial(E, W))), relation=r"\leftarrow")
    mean = sp.Eq(
        sp.Symbol("delta_ij"),
        Chain(sp.UnevaluatedExpr(1 / M), sp.Sum(sp.Symbol("delta_ij,k"), (k, 1, M))),
    )
    clip = Row.of(g, Chain(sp.Min(1, theta / (norm + epsilon)), g), relation=r"\leftarrow")
    return (
        Display(aligned([update]), ""),
        Display(aligned([Row.of(mean.lhs, mean.rhs)]), rf"\tag{{{labels.tag(labels.MINI_BATCH)}}}"),
        Display(aligned([clip]), ""),
    )


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


def general(d: Derivation) -> tuple[Display, ...]:
    """Eq. 37, 42, 47: the lecture's terms for E_3 with 3 written N and the path's state i."""
    out = []
    w_y = _collapse(d.expansions["W_y"].terms[0])
    pattern = general_form([w_y], m.renumber(w_y, {3: N}), [{N: 3}])
    out.append(tagged(labels.W_Y_GENERAL, Partial(m.at("E", N), m.W_y), pattern))
    for weight, label in (("W_s", labels.W_S_GENERAL), ("W_x", labels.W_X_GENERAL)):
        terms = d.expansions[weight].terms
        chains = [_collapse(term) for term in terms]
        through_2 = chains[[term.through for term in terms].index(2)]
        pattern = general_form(
            chains,
            m.renumber(through_2, {3: N, 2: i}),
            [{N: 3, i: term.through} for term in terms],
        )
        lhs = Partial(m.at("E", N), d.expansions[weight].weight)
        out.append(tagged(label, lhs, sp.Sum(pattern, (i, 1, N))))
    return tuple(out)


def chain_n(d: Derivation) -> Display:
    """∂ȳ_N/∂s̄_i of Eq. 42 and 47 written out, from the lecture's path through s̄_1: its
    output factor at N, its first step back from N, and its last step back, to i."""
    term = next(term for term in d.expansions["W_s"].terms if term.through == 1)
    output, *back = term.factors[1:-1]  # ∂ȳ_3/∂s̄_3, ∂s̄_3/∂s̄_2, ∂s̄_2/∂s̄_1
    n = d.config.steps
    first = m.renumber(Partial(output.numerator, output.denominator), {n: N})
    second = m.renumber(Partial(back[0].numerator, back[0].denominator), {n: N, n - 1: N - 1})
    last = m.renumber(Partial(back[-1].numerator, back[-1].denominator), {2: i + 1, 1: i})
    lhs = Partial(m.at("y", N), m.at("s", i))
    return Display(aligned([Row.of(lhs, Chain(first, second, Dots(), last))]), "")


def output_gradient(total: Derivation) -> Display:
    """R1: g_t, from the total loss's g_1, g_2, g_3 with the step written t."""
    target, expr = output_gradient_form(total)
    return Display(
        aligned([Row.of(target, expr)]), rf"\tag{{{labels.tag(labels.OUTPUT_GRADIENT)}}}"
    )


def output_gradient_form(total: Derivation) -> Any:
    """(g_t, its expression) at a generic step t, checked to give every step's g_k."""
    lines = [line for line in total.closed.recurrence if str(line.target.name).startswith("g_")]
    pairs = [(line.target, line.expression) for line in lines]
    steps = [int(str(line.target.name).rpartition("_")[2]) for line in lines]
    pattern = general_form(
        [sp.Tuple(*p) for p in pairs],
        m.renumber(sp.Tuple(*pairs[-1]), {steps[-1]: t}),
        [{t: k} for k in steps],
    )
    return pattern[0], pattern[1]


def _delta_lines(d: Derivation) -> tuple[Any, Any]:
    """δ_N and δ_t (t < N) of a derivation with N = 3, checked against δ_3, δ_2, δ_1."""
    lines = {
        int(str(line.target.name).rpartition("_")[2]): sp.Tuple(line.target, line.expression)
        for line in d.closed.recurrence
        if str(line.target.name).startswith("delta_")
    }
    last = general_form([lines[3]], m.renumber(lines[3], {3: N}), [{N: 3}])
    step = general_form(
        [lines[2], lines[1]], m.renumber(lines[2], {1: t - 1, 2: t, 3: t + 1}), [{t: 2}, {t: 1}]
    )
    return last, step


def recurrence(lecture: Derivation, total: Derivation) -> Display:
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
                (None, "", Note("for ", before_n, ", loss ", m.at("E", N))),
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
    pattern = m.renumber(middle, {1: index - 1, 2: index, 3: index + 1})
    by_top = sorted(terms, key=top)
    general_form(by_top, pattern, [{index: top(term)} for term in by_top])
    return sp.Sum(pattern, (index, 1, N))


def collected(lecture: Derivation, total: Derivation) -> tuple[Display, ...]:
    """R3–R5: ∂E/∂W as sums over steps of (row)ᵀ · (named gradient)."""
    n = lecture.config.steps
    e_n, e = m.at("E", N), sp.MatrixSymbol("E", 1, 1)
    w_y_last = general_form(
        [lecture.closed.collected["W_y"]],
        m.renumber(lecture.closed.collected["W_y"], {3: N}),
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
        out.append(tagged(label, Partial(e, w), lecture_sum))
    return tuple(out)


def transitions(d: Derivation) -> Display:
    """R6: ∂s̄_N/∂s̄_(N−k), the product of k factors ∂s̄_t/∂s̄_(t−1) = D_t W_sᵀ (the derivation's
    generic transition, D_t for diag(Φ'(z̄_t))), written out as its first, second and last."""
    (f,) = d.transitions
    k = sp.Symbol("k", integer=True, positive=True)
    factors = [with_diagonals(m.instantiate(f.jacobian, {t: step})) for step in (N, N - 1)]
    factors += [Dots(), with_diagonals(m.instantiate(f.jacobian, {t: N - k + 1}))]
    lhs = Partial(m.at("s", N), m.at("s", N - k))
    return Display(
        aligned([Row.of(lhs, Chain(*factors))]), rf"\tag{{{labels.tag(labels.TRANSITION)}}}"
    )
