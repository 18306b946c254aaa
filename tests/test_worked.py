"""The worked example (n = 1, N = 3) and the notes' chain-rule products in the D_t notation.

Every product the notes print for Eq. 38–40 and 43–45 is a literal matrix product read left to
right: built with SymPy's MatMul, whose shape check is shown to reject a non-conforming one, it
has its weight's shape and equals the derivation's closed form at a random point.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import sympy as sp

from derive import Config, derive, ops
from derive import activations as acts
from derive import model as m
from derive.errors import GenerationError
from derive.notes.lecture import product_form
from derive.worked import worked_example
from generated import bptt_e3


@pytest.fixture(scope="module")
def lecture() -> Any:
    return derive(Config())


def test_example_sums_its_terms_and_matches_the_generated_module(lecture: Any) -> None:
    ex = worked_example(lecture)
    assert len(ex.terms) == 3 and all(t.value != 0 for t in ex.terms)
    assert sum(ex.term_values.values()) == pytest.approx(ex.dE_dW_s, rel=1e-15)
    grads = bptt_e3.gradients(ex.x, ex.d, ex.W_x, ex.W_s, ex.W_y, s0=ex.s0)
    assert grads.W_s[0, 0] == pytest.approx(ex.dE_dW_s, rel=1e-12)
    # each term is the product of its factors' values
    for term in ex.terms:
        assert float(term.value) == pytest.approx(
            float(np.prod([float(v) for *_, v in term.factors]))
        )
    assert "0.20446" in ex._repr_latex_()


def test_example_refuses_other_configurations() -> None:
    with pytest.raises(GenerationError, match="lecture's case"):
        worked_example(derive(Config(loss_steps="all")))


@pytest.mark.parametrize("config", [Config(), Config(loss_steps="all"), Config(activation="relu")])
def test_products_conform_and_equal_the_closed_forms(config: Config) -> None:
    d = derive(config)
    dims = {m.n_x: 2, m.n_s: 3, m.n_y: 4}  # distinct: a transposed factor cannot conform
    ex = m.explicit(d.statement, (2, 3, 4))
    rng = random.Random(1)
    point = {s: sp.Float(rng.randint(-9, 9) / 7, 30) for s in ex.input_symbols}
    binding = {k: v.xreplace(point) for k, v in ex.values.items()}
    ctx = ops.Context(config.act, dims)
    for k in range(1, config.steps + 1):
        dphi = ops.evaluate(acts.dphi(m.z(k)), binding, ctx)
        binding[m.D(k)] = sp.diag(*dphi)
    for name, expansion in d.expansions.items():
        if name == "W_y":
            continue
        for term, closed in zip(expansion.terms, d.closed.expanded[name], strict=True):
            product = product_form(term)
            assert product.shape == expansion.weight.shape
            got = ops.evaluate(product, binding, ctx)
            want = ops.evaluate(closed, binding, ctx)
            diff = (got - want).evalf(30)
            assert max(abs(v) for v in diff) < 1e-25 * (1 + max(abs(v) for v in want.evalf(30)))


def test_a_non_conforming_product_is_rejected(lecture: Any) -> None:
    """A factor in the other layout (∂ȳ_3/∂s̄_3 = W_y instead of W_yᵀ) does not conform."""
    term = lecture.expansions["W_s"].terms[1]
    wrong = [replace(f, jacobian=m.W_y) if f.kind == "output" else f for f in term.factors]
    with pytest.raises(GenerationError, match="does not conform"):
        product_form(replace(term, factors=tuple(wrong)))


def test_generation_refuses_a_module_that_disagrees_with_the_example(lecture: Any) -> None:
    """check.worked_value, which generation runs, fails on a module with a wrong ∂E_3/∂W_x."""
    from pathlib import Path

    from derive import check

    ex = worked_example(lecture)
    source = (Path(bptt_e3.__file__)).read_text()
    expected = {"W_s": ex.dE_dW_s, "W_x": float(ex.total_x)}
    assert check.worked_value(source, ex.arrays(), expected) == pytest.approx(ex.dE_dW_s)
    wrong = source.replace(
        "return Gradients(float(E), dE_dW_x,", "return Gradients(float(E), 2 * dE_dW_x,"
    )
    assert wrong != source
    with pytest.raises(GenerationError, match="∂E_3/∂W_x"):
        check.worked_value(wrong, ex.arrays(), expected)
