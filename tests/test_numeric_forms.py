"""The numeric forms generated code runs, as the NumPy printer prints them: finite and free of
overflow, invalid operations and division by zero in float64 at arguments of magnitude 1000
(underflow to 0 is NumPy's default and harmless)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from derive import Config, ops
from derive import activations as acts
from derive import model as m
from derive.printing.numpy import BPTTNumPyPrinter

ARGUMENTS = np.array([[-1000.0, -30.0, -1.0, 0.0, 0.5, 30.0, 1000.0]])


def _forms() -> list[tuple[str, acts.Activation, object]]:
    out = []
    for name, act in sorted(acts.ACTIVATIONS.items()):
        for form in act.numeric_forms():
            out.append((form.name, act, form))
        # Φ itself as the code runs it (the overflow-safe form where there is one)
        run = acts.elementwise(act.numeric_phi, acts.ARGUMENT)
        phi = acts.NumericForm(f"{name}: Φ as run", run, None, acts.ARGUMENT)
        out.append((phi.name, act, phi))
    stmt = m.statement(Config(output="softmax"))
    for form in stmt.numeric_forms():
        if form.name.startswith("softmax"):
            out.append((form.name, acts.ACTIVATIONS["tanh"], form))
    return out


FORMS = _forms()


@pytest.mark.parametrize(("name", "act", "form"), FORMS, ids=[f[0] for f in FORMS])
def test_numeric_forms_are_finite_at_magnitude_1000(name: str, act: object, form: object) -> None:
    printer = BPTTNumPyPrinter(act)  # type: ignore[arg-type]
    code = printer.doprint(form.numeric)  # type: ignore[attr-defined]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = eval(code, {"np": np, "a": ARGUMENTS.copy()})
    value = np.broadcast_to(value, ARGUMENTS.shape)
    assert np.all(np.isfinite(value)), (name, code, value)
    if name.startswith("softmax"):
        np.testing.assert_allclose(value.sum(axis=-1), 1.0, rtol=1e-15)
        assert value[0, -1] == pytest.approx(1.0) and value[0, 0] == 0.0


def test_sigmoid_as_run_is_the_sigmoid_where_the_naive_form_overflows() -> None:
    printer = BPTTNumPyPrinter(acts.ACTIVATIONS["sigmoid"])
    code = printer.doprint(acts.phi(acts.ARGUMENT))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = eval(code, {"np": np, "a": ARGUMENTS.copy()})
    expected = [1 / (1 + math.exp(-v)) if v > -700 else 0.0 for v in ARGUMENTS[0]]
    np.testing.assert_allclose(value[0], expected, rtol=1e-12, atol=1e-300)


def test_the_finiteness_check_can_fail() -> None:
    """The naive softmax, exp(ō)/Σ exp(ō), overflows at 1000: the same check catches it."""
    naive = ops.elementwise_exp(acts.ARGUMENT)
    code = BPTTNumPyPrinter(acts.ACTIVATIONS["tanh"]).doprint(naive)
    with pytest.raises(FloatingPointError), np.errstate(over="raise"):
        eval(code, {"np": np, "a": ARGUMENTS.copy()})
