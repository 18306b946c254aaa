"""The chain-rule expansion: its shape (Eq. 36–47), the numerator layout, and each factor
against sympy's own derivative of the relation it differentiates."""

from __future__ import annotations

import itertools
import random

import pytest
import sympy as sp
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive import Config, chain, derive, ops
from derive import activations as acts
from derive import model as m


def test_lecture_expansion_shape() -> None:
    """E_3: one term for W_y (Eq. 36), three for W_s and W_x through s̄_3, s̄_2, s̄_1 (Eq. 38–40)."""
    d = derive()
    assert [len(d.expansions[w].terms) for w in m.WEIGHT_NAMES] == [3, 3, 1]
    terms = d.expansions["W_s"].terms
    assert [t.through for t in terms] == [3, 2, 1]
    chains = [[(f.numerator.name, f.denominator.name) for f in t.factors] for t in terms]
    assert chains[2] == [
        ("E_3", "y_3"),
        ("y_3", "s_3"),
        ("s_3", "s_2"),
        ("s_2", "s_1"),
        ("s_1", "W_s"),
    ]
    assert [f.kind for f in terms[2].factors] == ["loss", "output", "state", "state", "weight"]
    assert [
        (f.numerator.name, f.denominator.name) for f in d.expansions["W_y"].terms[0].factors
    ] == [("E_3", "y_3"), ("y_3", "W_y")]


def test_factors_are_in_the_numerator_layout() -> None:
    """∂E_3/∂ȳ_3 = −2(d̄_3 − ȳ_3) (a row), ∂ȳ_3/∂s̄_3 = W_yᵀ, ∂s̄_3/∂s̄_2 = diag(Φ'(z̄_3)) W_sᵀ."""
    loss, output, state, _, weight = derive().expansions["W_s"].terms[2].factors
    assert loss.jacobian == sp.MatMul(-2, m.d(3) - m.y(3))
    assert output.jacobian == m.W_y.T
    assert state.jacobian == sp.MatMul(DiagMatrix(acts.dphi(m.z(3)).T), m.W_s.T)
    assert weight.jacobian is None  # three indices: only its pullback
    u = chain.placeholder(m.n_s)
    assert weight.pullback == sp.MatMul(m.s(0).T, sp.HadamardProduct(u, acts.dphi(m.z(1))))


@pytest.mark.parametrize("output", ["linear", "softmax"])
@pytest.mark.parametrize("loss_steps", ["last", "all"])
def test_every_chain_rule_product_conforms(output: str, loss_steps: str) -> None:
    """Read left to right, the Jacobians of every term multiply as matrices (1×n_y)(n_y×n_s)…,
    and the last factor's pullback gives the weight's shape."""
    d = derive(Config(steps=3, output=output, loss_steps=loss_steps))
    for name, expansion in d.expansions.items():
        for term in expansion.terms:
            rows, cols = sp.Integer(1), sp.Integer(1)
            for f in term.factors[:-1]:
                assert f.jacobian.shape[0] == cols, (name, term.through, f)
                cols = f.jacobian.shape[1]
            assert (rows, cols) == (1, term.factors[-1].numerator.shape[1])
            assert term.evaluate().shape == expansion.weight.shape


@pytest.mark.parametrize("n", [1, 2, 5])
def test_term_counts(n: int) -> None:
    last = derive(Config(steps=n))
    total = derive(Config(steps=n, loss_steps="all"))
    assert len(last.expansions["W_s"].terms) == n  # Eq. 42: Σ_{i=1..N}
    assert len(total.expansions["W_x"].terms) == n * (n + 1) // 2  # Σ_t Σ_{i=1..t}
    assert len(total.expansions["W_y"].terms) == n


def test_unknown_weight_is_rejected() -> None:
    with pytest.raises(ValueError, match="weight: expected one of"):
        chain.paths(m.statement(Config()), sp.MatrixSymbol("W_q", 2, 2))


def _point(symbols: list[sp.Symbol], seed: int) -> dict[sp.Symbol, sp.Float]:
    r = random.Random(seed)
    return {v: sp.Float(sp.Rational(r.randint(-9, 9), 7), 40) for v in symbols}


def _close(a: sp.Matrix, b: sp.Matrix) -> bool:
    return all(abs(sp.N(p - q, 40)) < 1e-30 for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("activation", "output"), list(itertools.product(["tanh", "sigmoid"], ["linear", "softmax"]))
)
def test_each_factor_is_the_derivative_it_names(activation: str, output: str) -> None:
    """Every distinct factor of the expansions at N = 2: its numerator written out with the
    denominator as free symbols (everything else held fixed, the immediate partial), then its
    Jacobian against sympy.diff, J[a, b] = ∂num_a/∂den_b, and its pullback against
    Σ_a U_a ∂num_a."""
    config = Config(steps=2, activation=activation, output=output, scale="1/2")
    stmt, sizes = m.statement(config), (2, 3, 2)
    ex = m.explicit(stmt, sizes)
    ctx = ops.Context(config.act, ex.dims)
    graph = chain.Graph(stmt)
    factors = {f for e in derive(config).expansions.values() for t in e.terms for f in t.factors}
    assert {f.kind for f in factors} == set(chain.KINDS)
    for f in sorted(factors, key=str):
        num, den = f.numerator, f.denominator
        free = m.symbol_matrix("free", *ex.values[den].shape)
        binding = {**ex.values, den: free}
        for hidden, definition in graph.hidden.items():  # z̄, ō read the free denominator too
            binding[hidden] = ops.evaluate(definition, binding, ctx)
        rhs = graph.definitions[num]
        while rhs.atoms(sp.MatrixSymbol) & set(graph.hidden):
            rhs = rhs.xreplace(graph.hidden)
        value = ops.evaluate(rhs, binding, ctx)
        binding[num] = value  # a Jacobian may be written in the numerator (softmax's ȳ)
        pt = _point(sorted(set().union(*(v.free_symbols for v in binding.values())), key=str), 7)
        bound = {k: v.xreplace(pt) for k, v in binding.items()}
        n = value.shape[1]
        if f.jacobian is not None:
            truth = sp.Matrix([[sp.diff(value[a], v) for v in free] for a in range(n)])
            assert _close(ops.evaluate(f.jacobian, bound, ctx), truth.xreplace(pt)), f
        u = m.symbol_matrix("U", 1, n)
        vjp = free.applyfunc(lambda v: sum(u[a] * sp.diff(value[a], v) for a in range(n)))  # noqa: B023
        upt = _point(list(u), 3)
        got = ops.evaluate(f.pullback, {**bound, f.placeholder: u.xreplace(upt)}, ctx)
        assert _close(got, vjp.xreplace(pt).xreplace(upt)), f
