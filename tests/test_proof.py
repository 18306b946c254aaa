"""Proof: the expansion and both closed forms equal sympy.diff of the explicit loss, entry by entry.

The grid covers N ∈ {1, 2, 3, 4}, sizes (1,1,1), (2,3,2), (3,2,4), every Φ, both outputs, both
loss_steps and c ∈ {1, ½}; and the same proof code is shown to reject broken derivations.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import Config, chain, closed_form, derive, ops, prove
from derive import activations as acts
from derive import model as m
from derive.errors import ProofError
from derive.verify import CANDIDATES

SIZES = [(1, 1, 1), (2, 3, 2), (3, 2, 4)]
_u = sp.Symbol("u")
USER_PHI = sp.Lambda(_u, _u**3 / 3 + sp.sin(_u))
ACTIVATIONS = ["tanh", "sigmoid", "relu", "identity", USER_PHI]


def _assert_proven(config: Config, sizes: tuple[int, int, int]) -> None:
    proof = prove(derive(config), sizes, points=2)
    assert proof.ok, "\n".join(proof.lines())
    assert len(proof.comparisons) == 12  # 4 candidates × 3 weights


@pytest.mark.parametrize(("steps", "sizes"), list(itertools.product([1, 2, 3, 4], SIZES)))
def test_lecture_model_over_steps_and_sizes(steps: int, sizes: tuple[int, int, int]) -> None:
    _assert_proven(Config(steps=steps), sizes)


@pytest.mark.parametrize(
    ("activation", "output", "loss_steps", "scale"),
    list(itertools.product(ACTIVATIONS, ["linear", "softmax"], ["last", "all"], [1, "1/2"])),
    ids=lambda v: "user" if isinstance(v, sp.Lambda) else str(v),
)
def test_every_variant(activation: object, output: str, loss_steps: str, scale: object) -> None:
    config = Config(
        steps=2, activation=activation, output=output, loss_steps=loss_steps, scale=scale
    )
    _assert_proven(config, (2, 3, 2))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("steps", "activation", "sizes"),
    [(3, "sigmoid", (3, 2, 4)), (4, "tanh", (3, 2, 4)), (3, "relu", (2, 3, 2))],
)
def test_longer_softmax_total_loss(
    steps: int, activation: str, sizes: tuple[int, int, int]
) -> None:
    config = Config(steps=steps, activation=activation, output="softmax", loss_steps="all")
    _assert_proven(config, sizes)


def test_polynomial_model_is_compared_exactly() -> None:
    proof = prove(derive(Config(activation="identity", loss_steps="all")), (2, 3, 2))
    assert proof.ok
    assert {c.method for c in proof.comparisons} == {"exact"}


# --- the checker must be able to fail --------------------------------------------------------


def _without_first_term(d):  # type: ignore[no-untyped-def]
    broken = {
        name: chain.Expansion(e.weight, tuple(t for t in e.terms if t.through != 1))
        for name, e in d.expansions.items()
        if name != "W_y"
    }
    return dataclasses.replace(d, expansions={**d.expansions, **broken})


def _with_untransposed_ws(d):  # type: ignore[no-untyped-def]
    rec = tuple(
        closed_form.Definition(line.target, line.expression.xreplace({m.W_s.T: m.W_s}))
        for line in d.closed.recurrence
    )
    assert rec != d.closed.recurrence
    return dataclasses.replace(d, closed=dataclasses.replace(d.closed, recurrence=rec))


def _expanded_without_first_term(d):  # type: ignore[no-untyped-def]
    exp = {k: v[:-1] if k != "W_y" else v for k, v in d.closed.expanded.items()}
    return dataclasses.replace(d, closed=dataclasses.replace(d.closed, expanded=exp))


def _wrong_output_gradient(d):  # type: ignore[no-untyped-def]
    rec = tuple(
        closed_form.Definition(line.target, 2 * line.expression) if line.target == m.g(3) else line
        for line in d.closed.recurrence
    )
    return dataclasses.replace(d, closed=dataclasses.replace(d.closed, recurrence=rec))


@pytest.mark.parametrize(
    ("mutate", "candidate", "weights"),
    [
        (_without_first_term, "chain-rule expansion", {"W_x", "W_s"}),
        (_with_untransposed_ws, "collected closed form (δ recurrence)", {"W_x", "W_s"}),
        (_expanded_without_first_term, "expanded closed form", {"W_x", "W_s"}),
        (_wrong_output_gradient, "collected closed form (δ recurrence)", {"W_x", "W_s", "W_y"}),
    ],
)
@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_proof_rejects_a_broken_derivation(mutate, candidate, weights, activation) -> None:  # type: ignore[no-untyped-def]
    d = derive(Config(activation=activation))
    proof = prove(mutate(d), (2, 3, 2), points=2)
    assert not proof.ok
    assert {(c.candidate, c.weight) for c in proof.failures()} == {(candidate, w) for w in weights}
    with pytest.raises(ProofError, match="differ"):
        proof.raise_if_failed()
    assert "NOT EQUAL" in "\n".join(proof.lines())
    prove(d, (2, 3, 2), points=2).raise_if_failed()  # the unbroken one passes the same check


def test_prove_rejects_bad_arguments() -> None:
    d = derive()
    with pytest.raises(ValueError, match="points: expected an int ≥ 1"):
        prove(d, (1, 1, 1), points=0)
    with pytest.raises(ValueError, match="candidates: expected names"):
        prove(d, (1, 1, 1), candidates=["nope"])
    with pytest.raises(TypeError, match=r"config: expected a derive\.Config"):
        derive("tanh")  # type: ignore[arg-type]


# --- a wrong local rule, a wrong numeric form: the same proof rejects them ------------------


def test_proof_rejects_a_wrong_pullback_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Φ's pullback written U ⊙ Φ(z) instead of U ⊙ Φ'(z): every candidate fails (the chain rule
    too: its three-index factors ∂s̄_i/∂W act by their pullbacks)."""
    rule = ops.OPERATIONS[ElementwiseApplyFunction]

    def wrong(e, k, u, out):  # type: ignore[no-untyped-def]
        return sp.HadamardProduct(u, e)

    monkeypatch.setattr(rule, "pullback", wrong)
    proof = prove(derive(Config(steps=2)), (2, 3, 2), points=1)
    failed = {c.candidate for c in proof.failures()}
    assert failed == set(CANDIDATES)


def test_proof_rejects_a_wrong_jacobian_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's Jacobian as W instead of Wᵀ (the other layout): the chain rule fails."""
    rule = ops.OPERATIONS[sp.MatMul]
    right = rule.jacobian

    def wrong(e, k, out):  # type: ignore[no-untyped-def]
        j = right(e, k, out)
        return None if j is None else j.xreplace({m.W_s.T: m.W_s})

    monkeypatch.setattr(rule, "jacobian", wrong)
    proof = prove(derive(Config(steps=2)), (2, 3, 2), points=1)
    assert {c.candidate for c in proof.failures()} == {"chain-rule expansion"}


def test_proof_rejects_a_wrong_generic_step() -> None:
    """The loop module's δ_t with δ_{t+1} W_s instead of δ_{t+1} W_sᵀ."""
    d = derive(Config(steps=3, loss_steps="all"))
    gen = d.closed.generic
    step = tuple(
        closed_form.Definition(line.target, line.expression.xreplace({m.W_s.T: m.W_s}))
        for line in gen.step
    )
    broken = dataclasses.replace(
        d, closed=dataclasses.replace(d.closed, generic=dataclasses.replace(gen, step=step))
    )
    proof = prove(broken, (2, 3, 2), points=1)
    assert {(c.candidate, c.weight) for c in proof.failures()} == {
        ("generic step (any N)", "W_x"),
        ("generic step (any N)", "W_s"),
    }


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_proof_rejects_a_wrong_numeric_form(
    activation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stable Φ or a Φ' from the output that generated code would run, made wrong."""
    act = acts.ACTIVATIONS[activation]
    u = act.phi.variables[0]
    if act.stable_phi is not None:
        wrong = dataclasses.replace(act, stable_phi=sp.Lambda(u, (1 + sp.tanh(u)) / 2))
    else:
        wrong = dataclasses.replace(act, dphi_of_output=sp.Lambda(u, 1 - u))
    monkeypatch.setitem(acts.ACTIVATIONS, activation, wrong)
    proof = prove(derive(Config(steps=1, activation=activation)), (1, 2, 1), points=1)
    assert not proof.ok
    assert proof.comparisons and all(c.ok for c in proof.comparisons)
    assert not all(f.ok for f in proof.forms)
    assert "NOT EQUAL" in "\n".join(proof.lines())
    with pytest.raises(ProofError):
        proof.raise_if_failed()


def test_proof_rejects_a_wrong_stable_softmax(monkeypatch: pytest.MonkeyPatch) -> None:
    """softmax's overflow-safe form with the maximum subtracted in the numerator only."""

    def wrong(o):  # type: ignore[no-untyped-def]
        shifted = ops.elementwise_exp(sp.MatAdd(o, sp.MatMul(-1, ops.RowMax(o))))
        return sp.HadamardProduct(shifted, sp.HadamardPower(ops.RowSum(ops.elementwise_exp(o)), -1))

    monkeypatch.setattr(ops.Softmax, "stable", staticmethod(wrong))
    proof = prove(derive(Config(steps=1, output="softmax")), (1, 2, 2), points=1)
    assert [f.name for f in proof.forms if not f.ok] == ["softmax: row maximum subtracted"]


def test_the_numeric_forms_are_proven_for_what_the_code_runs() -> None:
    proof = prove(derive(Config(steps=1, activation="sigmoid", output="softmax")), (1, 2, 2))
    assert [f.name for f in proof.forms] == [
        "sigmoid: the overflow-safe form",
        "sigmoid: the derivative from the output",
        "softmax: row maximum subtracted",
    ]
    assert all(f.ok for f in proof.forms)
