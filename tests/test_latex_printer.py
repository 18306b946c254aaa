"""The LaTeX printer: the lecture's notation, one rule per node, strictness, and line breaking."""

from __future__ import annotations

import re

import pytest
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import Config, derive, ops
from derive import activations as acts
from derive import model as m
from derive.errors import GenerationError
from derive.printing.latex import (
    WIDTH,
    Chain,
    Dots,
    Note,
    Partial,
    Ref,
    Row,
    aligned,
    derivation_latex,
    equation,
    html,
    latex,
    shape,
    width,
)


class _Unknown(sp.MatrixExpr):
    """A matrix node the printer has no rule for."""

    shape = (m.n_s, m.n_s)


S_PREV = m.s(m.t - 1)
i, N = sp.symbols("i N", integer=True, positive=True)


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        # the notation table: bars on rows, indices as subscripts
        (m.s(3), r"\bar{s}_{3}"),
        (m.x(1), r"\bar{x}_{1}"),
        (m.d(3), r"\bar{d}_{3}"),
        (m.y(3), r"\bar{y}_{3}"),
        (m.z(3), r"\bar{z}_{3}"),
        (m.o(3), r"\bar{v}_{3}"),
        (m.E(3), r"E_{3}"),
        (m.g(3), r"\gamma_{3}"),
        (m.delta(3), r"\delta_{3}"),
        (sp.MatrixSymbol("s_t", 1, m.n_s), r"\bar{s}_{t}"),
        (S_PREV, r"\bar{s}_{t-1}"),
        (sp.MatrixSymbol("s_i - 1", 1, m.n_s), r"\bar{s}_{i-1}"),
        (m.W_x, "W_x"),
        (m.W_s, "W_s"),
        (m.W_y, "W_y"),
        # nodes
        (m.W_s.T, r"W_s^{\top}"),
        (m.s(2).T, r"\bar{s}_{2}^{\top}"),
        (sp.hadamard_product(m.s(1), m.s(2)), r"\bar{s}_{1} \odot \bar{s}_{2}"),
        (acts.phi(m.z(3)), r"\Phi(\bar{z}_{3})"),
        (acts.dphi(m.z(3)), r"\Phi'(\bar{z}_{3})"),
        (ops.Softmax(m.o(3)), r"\operatorname{softmax}(\bar{v}_{3})"),
        (sp.DiagMatrix(acts.dphi(m.z(3)).T), r"\operatorname{diag}(\Phi'(\bar{z}_{3}))"),
        (sp.Identity(m.n_y), r"I_{n_{y}}"),
        (sp.ZeroMatrix(1, m.n_s), "0"),
        (sp.HadamardPower(m.d(3) - m.y(3), 2), r"(\bar{d}_{3} - \bar{y}_{3})^{2}"),
        # products: scalars in front, nested products flattened, sums grouped
        (sp.MatMul(-2, m.d(3) - m.y(3)), r"-2 (\bar{d}_{3} - \bar{y}_{3})"),
        (
            sp.MatMul(m.s(3).T, sp.MatMul(sp.MatMul(-2, m.d(3) - m.y(3)))),
            r"-2 \bar{s}_{3}^{\top} (\bar{d}_{3} - \bar{y}_{3})",
        ),
        (sp.MatMul(sp.Rational(1, 2), m.s(3)), r"\frac{1}{2} \bar{s}_{3}"),
        # sums in the lecture's order, subtractions last, (Aᵀ − Bᵀ) as (A − B)ᵀ
        (
            S_PREV * m.W_s + sp.MatrixSymbol("x_t", 1, m.n_x) * m.W_x,
            r"\bar{x}_{t} W_x + \bar{s}_{t-1} W_s",
        ),
        (m.d(3).T - m.y(3).T, r"(\bar{d}_{3} - \bar{y}_{3})^{\top}"),
        (
            (m.d(3) - m.y(3)) * (m.d(3).T - m.y(3).T),
            r"(\bar{d}_{3} - \bar{y}_{3}) (\bar{d}_{3} - \bar{y}_{3})^{\top}",
        ),
        # parentheses sized by how many pairs they enclose
        (
            sp.HadamardProduct(
                acts.dphi(m.z(3)), sp.MatMul(sp.MatMul(-2, m.d(3) - m.y(3)), m.W_y.T)
            ),
            r"\Phi'(\bar{z}_{3}) \odot \bigl(-2 (\bar{d}_{3} - \bar{y}_{3}) W_y^{\top}\bigr)",
        ),
        # the chain rule the lecture's way
        (Partial(m.E(3), m.y(3)), r"\frac{\partial E_{3}}{\partial \bar{y}_{3}}"),
        (
            Chain(Partial(m.y(3), m.s(3)), Dots(), Partial(m.s(2), m.W_s)),
            r"\frac{\partial \bar{y}_{3}}{\partial \bar{s}_{3}} \,\cdots \,"
            r"\frac{\partial \bar{s}_{2}}{\partial W_s}",
        ),
        (
            sp.Sum(
                sp.MatrixSymbol("s_i - 1", 1, m.n_s).T * sp.MatrixSymbol("delta_i", 1, m.n_s),
                (i, 1, N),
            ),
            r"\sum_{i=1}^{N} \bar{s}_{i-1}^{\top} \delta_{i}",
        ),
        (Ref("38"), r"\text{(38)}"),
        (Note("for ", sp.StrictLessThan(i, N)), r"\text{for } i < N"),
    ],
)
def test_latex_printer(expr: object, text: str) -> None:
    assert latex(expr) == text


def test_inline_partials_use_a_slash() -> None:
    assert latex(Partial(m.E(3), m.W_s), inline=True) == r"\partial E_{3}/\partial W_s"


def test_factors_terms_expansions_and_definitions_print_from_the_derivation() -> None:
    d = derive()
    term = d.expansions["W_s"].terms[1]
    assert latex(term) == (
        r"\frac{\partial E_{3}}{\partial \bar{y}_{3}} "
        r"\,\frac{\partial \bar{y}_{3}}{\partial \bar{s}_{3}} "
        r"\,\frac{\partial \bar{s}_{3}}{\partial \bar{s}_{2}} "
        r"\,\frac{\partial \bar{s}_{2}}{\partial W_s}"
    )
    # the numerator layout: ∂s̄_3/∂s̄_2 = diag(Φ'(z̄_3)) W_sᵀ, and U ↦ U J
    assert latex(term.factors[1].jacobian) == r"W_y^{\top}"
    assert latex(term.factors[2].jacobian) == r"\operatorname{diag}(\Phi'(\bar{z}_{3})) W_s^{\top}"
    assert latex(term.factors[2].pullback) == r"(U \odot \Phi'(\bar{z}_{3})) W_s^{\top}"
    assert latex(d.expansions["W_s"]).count(" + ") == 2
    assert (
        latex(d.closed.recurrence[1])
        == r"\delta_{3} = (\gamma_{3} W_y^{\top}) \odot \Phi'(\bar{z}_{3})"
    )


def test_shapes_and_html_labels() -> None:
    assert shape(m.W_x) == r"n_{x} \times n_{s}"
    assert shape(m.s(1)) == r"1 \times n_{s}"
    assert html(m.s(3)) == "s̄<sub>3</sub>"
    assert html(m.W_y) == "W<sub>y</sub>"


@pytest.mark.parametrize(
    "expr",
    [
        sp.MatrixSymbol("q_3", 1, m.n_s),  # a name the notation table does not know
        _Unknown(m.W_s),  # a node without a rule
        ElementwiseApplyFunction(sp.Lambda(sp.Symbol("u"), sp.tanh(sp.Symbol("u"))), m.z(1)),
        sp.Function("Psi"),
    ],
    ids=["unknown-name", "unknown-node", "concrete-function", "unknown-function"],
)
def test_printer_is_strict(expr: object) -> None:
    with pytest.raises(GenerationError, match=r"no (LaTeX rule|notation)"):
        latex(expr)


def _one_line(block: str) -> str:
    """An aligned block's right-hand side with its line breaks undone."""
    body = block.removeprefix("\\begin{aligned}\n").removesuffix("\n\\end{aligned}")
    body = re.sub(r" \\\\\n&\\qquad\{\} ", " ", body)
    return body.split("&= ", 1)[1]


def test_a_long_closed_form_breaks_across_lines_within_the_width() -> None:
    d = derive()
    through_s1 = d.closed.expanded["W_s"][2]  # nested Hadamard products: the widest term
    one_line = latex(through_s1)
    assert width(one_line) > WIDTH
    block = equation(Partial(m.E(3), m.W_s), through_s1)
    assert block.startswith("\\begin{aligned}\n") and block.endswith("\n\\end{aligned}")
    lines = block.splitlines()[1:-1]
    assert len(lines) >= 2
    assert all(width(line) <= WIDTH for line in lines), [width(x) for x in lines]
    assert _one_line(block) == one_line  # breaking only moves text to the next line


def test_a_line_breaks_before_a_sum_term_rather_than_inside_one() -> None:
    d = derive()
    block = equation(Partial(m.E(3), m.W_s), sp.MatAdd(*d.closed.expanded["W_s"]))
    continued = [line for line in block.splitlines() if line.startswith("&\\qquad{}")]
    assert continued[0].startswith("&\\qquad{} + ")
    assert continued[1].startswith("&\\qquad{} + ")


def test_a_short_equation_stays_on_one_line() -> None:
    assert equation(m.g(3), sp.MatMul(-2, m.d(3) - m.y(3))) == (
        r"\gamma_{3} = -2 (\bar{d}_{3} - \bar{y}_{3})"
    )


def test_side_by_side_columns() -> None:
    row = Row(
        (
            (Partial(m.y(3), m.s(3)), "=", m.W_y),
            (sp.MatrixSymbol("U", 1, m.n_y), r"\mapsto", sp.MatrixSymbol("U", 1, m.n_y) * m.W_y.T),
        )
    )
    assert aligned([row, row]).splitlines()[1] == (
        r"\frac{\partial \bar{y}_{3}}{\partial \bar{s}_{3}} &= W_y "
        r"&\qquad U &\mapsto U W_y^{\top} \\"
    )


@pytest.mark.parametrize(
    "config", [Config(), Config(loss_steps="all", output="softmax", scale="1/2")]
)
def test_a_derivation_shows_itself_in_a_notebook(config: Config) -> None:
    d = derive(config)
    text = d._repr_latex_()
    assert text == derivation_latex(d)
    assert text.startswith("$$\n\\begin{aligned}") and text.endswith("\\end{aligned}\n$$")
    assert r"\frac{\partial" in text and r"\delta_{1}" in text
