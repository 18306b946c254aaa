"""Configuration and model: validation of every field, and Eq. 33–35 at concrete sizes."""

from __future__ import annotations

import pytest
import sympy as sp

from derive import Config
from derive import model as m
from derive.activations import ACTIVATIONS


def test_defaults_are_the_lecture_case() -> None:
    c = Config()
    assert (c.steps, c.activation_name, c.output, c.scale, c.loss_steps) == (
        3,
        "tanh",
        "linear",
        1,
        "last",
    )
    assert c.loss_terms == (3,)
    assert Config(loss_steps="all").loss_terms == (1, 2, 3)


@pytest.mark.parametrize(
    ("fields", "exc", "words"),
    [
        ({"steps": 0}, ValueError, "steps: expected an int ≥ 1, got 0"),
        ({"steps": -2}, ValueError, "steps"),
        ({"steps": 2.0}, TypeError, "steps: expected an int ≥ 1, got float"),
        ({"steps": True}, TypeError, "steps"),
        ({"activation": "swish"}, ValueError, "activation: expected one of"),
        ({"activation": 3}, TypeError, "activation"),
        ({"output": "sigmoid"}, ValueError, "output: expected one of ['linear', 'softmax']"),
        ({"loss_steps": "first"}, ValueError, "loss_steps: expected one of ['last', 'all']"),
        ({"scale": 0}, ValueError, "scale: expected a positive number"),
        ({"scale": -0.5}, ValueError, "scale"),
        ({"scale": "abc"}, ValueError, "scale"),
        ({"scale": float("nan")}, ValueError, "scale"),
        ({"scale": None}, TypeError, "scale"),
    ],
)
def test_bad_configuration_names_the_field(fields: dict, exc: type, words: str) -> None:
    with pytest.raises(exc) as info:
        Config(**fields)
    assert words in str(info.value)


def test_activation_lambda_must_be_univariate() -> None:
    u, v = sp.symbols("u v")
    with pytest.raises(ValueError, match=r"univariate.*2 variables"):
        Config(activation=sp.Lambda((u, v), u * v))
    with pytest.raises(ValueError, match="also depends on v"):
        Config(activation=sp.Lambda(u, u * v))
    act = Config(activation=sp.Lambda(v, sp.sin(v))).act
    assert sp.simplify(act.dphi(sp.Symbol("q")) - sp.cos(sp.Symbol("q"))) == 0


@pytest.mark.parametrize("scale", [1, "1/2", 0.5, sp.Rational(1, 2)])
def test_scale_is_exact(scale: object) -> None:
    c = Config(scale=scale)
    assert c.scale in (sp.Integer(1), sp.Rational(1, 2))
    assert isinstance(c.scale, sp.Rational)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivatives(name: str) -> None:
    """Φ' is the derivative of Φ, and Φ'(z) written in Φ(z) agrees with it."""
    act = ACTIVATIONS[name]
    for value in (sp.Rational(-3, 7), sp.Rational(5, 4)):
        expected = sp.diff(act.phi.expr, act.phi.variables[0]).subs(act.phi.variables[0], value)
        assert abs(sp.N(act.dphi(value) - expected, 30)) < 1e-25
        assert act.dphi_of_output is not None
        assert abs(sp.N(act.dphi_of_output(act.phi(value)) - expected, 30)) < 1e-25


def test_explicit_model_follows_eq_33_to_35() -> None:
    ex = m.explicit(m.statement(Config(steps=2, activation="identity")), (1, 1, 1))
    wx, ws, wy = (ex.values[w][0, 0] for w in m.WEIGHTS)
    x1, x2, s0 = ex.values[m.x(1)][0], ex.values[m.x(2)][0], ex.values[m.s(0)][0]
    d2 = ex.values[m.d(2)][0]
    s1 = x1 * wx + s0 * ws
    s2 = x2 * wx + s1 * ws
    assert sp.expand(ex.loss - (d2 - s2 * wy) ** 2) == 0


@pytest.mark.parametrize("sizes", [(0, 1, 1), (1, 1), (1, 2.0, 1), "3,3,3"])
def test_explicit_rejects_bad_sizes(sizes: object) -> None:
    with pytest.raises(ValueError, match="sizes"):
        m.explicit(m.statement(Config()), sizes)  # type: ignore[arg-type]


def test_the_model_is_stated_once_as_equations_of_one_step() -> None:
    """Eq. 33–35 at the generic step t, in the lecture's order, each under its label."""
    stmt = m.statement(Config())
    assert [(e.label, str(e.target.name)) for e in stmt.equations] == [
        ("Eq. 33", "z_t"),
        ("Eq. 33", "s_t"),
        ("Eq. 34", "o_t"),
        ("Eq. 34", "y_t"),
        ("Eq. 35", "E_t"),
    ]
    z = stmt.equations[0].rhs
    assert z == m.x(m.t) * m.W_x + m.s(m.t - 1) * m.W_s
    at_2 = stmt.equations_at(2)[0]
    assert (at_2.target, at_2.rhs) == (m.z(2), m.x(2) * m.W_x + m.s(1) * m.W_s)
    softmax = m.statement(Config(output="softmax")).equations[3].rhs
    assert str(softmax) == "Softmax(o_t)"


def test_step_symbols_are_renamed_by_their_steps() -> None:
    assert m.step_of(m.s(m.t - 1)) == ("s", m.t - 1)
    assert m.step_of(m.W_s) is None
    assert m.instantiate(m.s(m.t - 1) * m.W_s, {m.t: 3}) == m.s(2) * m.W_s
    assert m.renumber(m.delta(2), {2: m.t}) == m.delta(m.t)


def test_the_explicit_model_comes_from_the_same_statement() -> None:
    """Changing one equation of the statement changes the ground truth with it."""
    stmt = m.statement(Config(steps=1, activation="identity"))
    ex = m.explicit(stmt, (1, 1, 1))
    wx, ws, wy = (ex.values[w][0, 0] for w in m.WEIGHTS)
    x1, s0, d1 = ex.values[m.x(1)][0], ex.values[m.s(0)][0], ex.values[m.d(1)][0]
    assert sp.expand(ex.loss - (d1 - (x1 * wx + s0 * ws) * wy) ** 2) == 0
    other = m.Statement(
        stmt.config,
        stmt.quantities,
        stmt.weights,
        (m.Equation("Eq. 33", m.z(m.t), m.x(m.t) * m.W_x), *stmt.equations[1:]),
    )
    changed = m.explicit(other, (1, 1, 1))
    assert sp.expand(changed.loss - (d1 - x1 * wx * wy) ** 2) == 0
