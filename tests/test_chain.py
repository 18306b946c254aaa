"""The chain-rule expansion: its shape (Eq. 36–47) and each factor against sympy's own Jacobian."""

from __future__ import annotations

import itertools

import pytest
import sympy as sp

from derive import Config, chain, derive
from derive import model as m
from derive.verify import evaluate


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


@pytest.mark.parametrize("n", [1, 2, 5])
def test_term_counts(n: int) -> None:
    last = derive(Config(steps=n))
    total = derive(Config(steps=n, loss_steps="all"))
    assert len(last.expansions["W_s"].terms) == n  # Eq. 42: Σ_{i=1..N}
    assert len(total.expansions["W_x"].terms) == n * (n + 1) // 2  # Σ_t Σ_{i=1..t}
    assert len(total.expansions["W_y"].terms) == n


def test_unknown_weight_is_rejected() -> None:
    with pytest.raises(ValueError, match="weight: expected one of"):
        chain.paths(Config(), sp.MatrixSymbol("W_q", 2, 2))


def _point(symbols: list[sp.Symbol], seed: int) -> dict[sp.Symbol, sp.Float]:
    import random

    r = random.Random(seed)
    return {v: sp.Float(sp.Rational(r.randint(-9, 9), 7), 40) for v in symbols}


def _close(a: sp.Matrix, b: sp.Matrix) -> bool:
    return all(abs(sp.N(p - q, 40)) < 1e-30 for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("activation", "output"), list(itertools.product(["tanh", "sigmoid"], ["linear", "softmax"]))
)
def test_each_factor_is_the_derivative_it_names(activation: str, output: str) -> None:
    """Every factor's evaluated form against sympy.diff of the one relation it differentiates."""
    config = Config(steps=2, activation=activation, output=output, scale="1/2")
    act, sizes = config.act, (2, 3, 2)
    dims = dict(zip((m.n_x, m.n_s, m.n_y), sizes, strict=True))
    ex = m.explicit(config, sizes)
    prev = m.symbol_matrix("prev", 1, 3)  # the factor's denominator, held as free symbols
    v = dict(ex.values)

    def check(f: chain.Factor, num: sp.Matrix, den: sp.Matrix, binding: dict) -> None:
        free = set().union(
            num.free_symbols, den.free_symbols, *(b.free_symbols for b in binding.values())
        )
        pt = _point(sorted(free, key=str), 7)
        bind = {k: val.xreplace(pt) for k, val in binding.items()}
        if f.jacobian is not None:  # row layout J[a, b] = ∂num_b/∂den_a
            truth = sp.Matrix(den.shape[1], num.shape[1], lambda a, b: sp.diff(num[b], den[a]))
            assert _close(evaluate(f.jacobian, bind, act, dims), truth.xreplace(pt))
        u = m.symbol_matrix("U", 1, num.shape[1])
        vjp = sp.Matrix(
            *den.shape,
            lambda p, q: sum(u[b] * sp.diff(num[b], den[p, q]) for b in range(num.shape[1])),
        )
        upt = _point(list(u), 3)
        got = evaluate(f.pullback, {**bind, f.placeholder: u.xreplace(upt)}, act, dims)
        assert _close(got, vjp.xreplace(pt).xreplace(upt))

    # ∂E_2/∂ȳ_2 with ȳ_2 free
    e2 = sp.Matrix(
        [
            [
                config.scale
                * sum(
                    (dv - pv) ** 2
                    for dv, pv in zip(v[m.d(2)], m.symbol_matrix("prev", 1, 2), strict=True)
                )
            ]
        ]
    )
    check(
        chain.loss_factor(config, 2),
        e2,
        m.symbol_matrix("prev", 1, 2),
        {**v, m.y(2): m.symbol_matrix("prev", 1, 2)},
    )
    # ∂ȳ_2/∂s̄_2 with s̄_2 free, and its own pullback checked again through ∂ȳ_2/∂W_y
    check(
        chain.output_weight_factor(config, 2),
        (prev * v[m.W_y]) if output == "linear" else m.softmax_row(prev * v[m.W_y]),
        v[m.W_y],
        {
            **v,
            m.s(2): prev,
            m.y(2): (prev * v[m.W_y]) if output == "linear" else m.softmax_row(prev * v[m.W_y]),
        },
    )
    o2 = prev * v[m.W_y]
    y2 = o2 if output == "linear" else m.softmax_row(o2)
    check(chain.output_factor(config, 2), y2, prev, {**v, m.s(2): prev, m.y(2): y2})
    # ∂s̄_2/∂s̄_1 with s̄_1 free
    z2 = v[m.x(2)] * v[m.W_x] + prev * v[m.W_s]
    s2 = z2.applyfunc(act.phi)
    check(chain.state_factor(2), s2, prev, {**v, m.s(1): prev, m.z(2): z2})
    # ∂s̄_2/∂W_s and ∂s̄_2/∂W_x, immediate: s̄_1 held fixed as free symbols
    assert chain.state_weight_factor(2, m.W_s) in derive(config).expansions["W_s"].terms[0].factors
    check(chain.state_weight_factor(2, m.W_s), s2, v[m.W_s], {**v, m.s(1): prev, m.z(2): z2})
    check(chain.state_weight_factor(2, m.W_x), s2, v[m.W_x], {**v, m.s(1): prev, m.z(2): z2})
