"""Text tier: the NumPy printer, the matrix cse, and modules generated for other configurations."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import sympy as sp
from gradcheck import directional_error, gradient_errors, random_problem
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive import Config, generate, ops
from derive import activations as acts
from derive.codegen.plan import matrix_cse
from derive.printing.numpy import BPTTNumPyPrinter

TANH = acts.ACTIVATIONS["tanh"]

n = sp.Symbol("n", integer=True, positive=True)
A, B, C = (sp.MatrixSymbol(c, 1, n) for c in "ABC")
W = sp.MatrixSymbol("W", n, n)
d, y, u, z = (sp.MatrixSymbol(c, 1, n) for c in ("d", "y", "u", "z"))

PRINTED = [
    (A * W, "A @ W"),
    (A * W * W.T, "A @ W @ W.T"),
    (sp.MatMul(-2, d - y), "-2 * (d - y)"),
    (sp.MatMul(sp.Rational(-1, 2), d - y), "-1/2 * (d - y)"),
    (-(d - y), "y - d"),
    (d - y, "d - y"),
    (sp.hadamard_product(A, B * W), "(B @ W) * A"),
    (sp.HadamardProduct(A, sp.HadamardPower(B, -1)), "A / B"),
    (ops.RowMax(A), "np.max(A, axis=-1, keepdims=True)"),
    (
        ops.Softmax.stable(A),
        "np.exp(A - np.max(A, axis=-1, keepdims=True)) / "
        "np.sum(np.exp(A - np.max(A, axis=-1, keepdims=True)), axis=-1, keepdims=True)",
    ),
    (sp.hadamard_product(A, B) * W, "(A * B) @ W"),
    (sp.Transpose(A * W), "(A @ W).T"),
    (sp.HadamardPower(A - B, 2), "(A - B) ** 2"),
    (acts.phi(z), "np.tanh(z)"),
    (acts.phi(A * W + B), "np.tanh(A @ W + B)"),
    (acts.dphi(z), "1 - np.tanh(z)**2"),
    (sp.hadamard_product(acts.dphi(z), u * W.T), "(u @ W.T) * (1 - np.tanh(z)**2)"),
    (u * y.T * y, "np.sum(u * y, axis=-1, keepdims=True) * y"),
    (sp.MatMul(2, u, y.T), "2 * np.sum(u * y, axis=-1, keepdims=True)"),
    (sp.Trace(A * A.T), "np.vdot(A, A)"),
    (ops.Softmax(A * W), "_softmax(A @ W)"),
]


@pytest.mark.parametrize(("expr", "text"), PRINTED, ids=[t for _, t in PRINTED])
def test_numpy_printer(expr: sp.MatrixExpr, text: str) -> None:
    assert BPTTNumPyPrinter(TANH).doprint(expr) == text


INPLACE = [
    (A * W, ["np.dot(A, W, out=o)"]),
    (sp.MatMul(-2, A.T, B), ["np.dot(A.T, B, out=o)", "o *= -2"]),
    (sp.MatMul(-2, W.T), ["np.multiply(W.T, -2, out=o)"]),
    (W.T, ["np.copyto(o, W.T)"]),
    (A * W + B, ["np.dot(A, W, out=o)", "o += B"]),
    (d - y, ["np.subtract(d, y, out=o)"]),
    (sp.hadamard_product(A, B * W), ["np.dot(B, W, out=o)", "o *= A"]),
    (acts.phi(z), ["np.tanh(z, out=o)"]),
    (A * W * W.T, ["o[...] = A @ W @ W.T"]),
]


@pytest.mark.parametrize(("expr", "lines"), INPLACE, ids=[" | ".join(t) for _, t in INPLACE])
def test_numpy_printer_in_place(expr: sp.MatrixExpr, lines: list[str]) -> None:
    """Statements writing into the existing array o: no temporaries where NumPy allows it."""
    assert BPTTNumPyPrinter(TANH).inplace("o", expr) == lines


@pytest.mark.parametrize(
    ("activation", "phi_text", "dphi_text"),
    [
        ("relu", "np.maximum(z, 0)", "np.heaviside(z, 0)"),
        ("identity", "z", "1"),
        ("sigmoid", "np.exp(np.minimum(z, 0))/(1 + np.exp(-abs(z)))", None),
    ],
)
def test_activations_print(activation: str, phi_text: str, dphi_text: str | None) -> None:
    printer = BPTTNumPyPrinter(acts.ACTIVATIONS[activation])
    assert printer.doprint(acts.phi(z)).replace(" ", "") == phi_text.replace(" ", "")
    if dphi_text is not None:
        assert printer.doprint(acts.dphi(z)) == dphi_text


def test_sigmoid_code_form_is_the_sigmoid() -> None:
    """e^{min(u, 0)} / (1 + e^{−|u|}) is 1/(1 + e^{−u}) on either side of 0."""
    act = acts.ACTIVATIONS["sigmoid"]
    assert act.stable_phi is not None
    for v in (sp.Symbol("p", positive=True), sp.Symbol("n", negative=True)):
        assert sp.simplify(act.stable_phi(v) - act.phi(v)) == 0


# the last: a bare MatrixExpr, a node no printer knows
@pytest.mark.parametrize("node", [sp.Identity(n), DiagMatrix(A.T), sp.MatrixExpr(A)])
def test_printer_refuses_what_it_cannot_print(node: sp.MatrixExpr) -> None:
    with pytest.raises(
        (TypeError, NotImplementedError, sp.printing.codeprinter.PrintMethodNotImplementedError)
    ):
        BPTTNumPyPrinter(TANH).doprint(node)


def test_matrix_cse_names_and_shares() -> None:
    shared = sp.hadamard_product(acts.dphi(z), u * W.T)
    e1 = A.T * shared
    e2 = B.T * shared
    defs, reduced = matrix_cse([e1, e2])
    assert [name for name, _ in defs] == ["_t0"]
    assert defs[0][1] == shared
    t0 = sp.MatrixSymbol("_t0", 1, n)
    assert reduced == [A.T * t0, B.T * t0]


def test_cse_never_names_a_temporary_like_an_input() -> None:
    source = generate.module_sources()["bptt_e3.py"]
    assert "_t0 = " in source
    assert " x0 " not in source and "x0 =" not in source


def test_lecture_module_shows_the_three_terms() -> None:
    source = generate.module_sources()["bptt_e3.py"]
    for label, target in [
        ("Eq. 36", "dE_dW_y = "),
        ("Eq. 38", "dE_dW_s_3 = "),
        ("Eq. 39", "dE_dW_s_2 = "),
        ("Eq. 40", "dE_dW_s_1 = "),
        ("Eq. 41", "dE_dW_s = dE_dW_s_3 + dE_dW_s_2 + dE_dW_s_1"),
        ("Eq. 43", "dE_dW_x_3 = "),
        ("Eq. 46", "dE_dW_x = dE_dW_x_3 + dE_dW_x_2 + dE_dW_x_1"),
    ]:
        block = source.split(f"# {label}:", 1)[1]
        assert target in block.split("# Eq.", 1)[0], label
    body = source.split("def _gradients", 1)[1].split("\n# ---", 1)[0]
    assert "for " not in body  # straight-line: no loop over time
    # each shared factor is computed once
    assert body.count("_t0 = ") == 1 and body.count("s_2.T @ _t0") == 1


def _load(tmp_path: Path, name: str, source: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_u = sp.Symbol("u")
OTHER_CONFIGS = [
    (Config(activation="sigmoid", output="softmax", scale="1/2"), True),
    (Config(activation="sigmoid", output="softmax", scale="1/2", loss_steps="all"), True),
    (Config(activation="relu", loss_steps="last"), True),
    (Config(activation="identity", output="softmax", loss_steps="all", steps=2), False),
    (Config(activation=sp.Lambda(_u, _u**3 / 3 + sp.sin(_u)), loss_steps="all"), True),
    (Config(activation=sp.Lambda(_u, _u**3 / 3 + sp.sin(_u)), steps=4), False),
    (Config(steps=1), False),
    (Config(steps=5, loss_steps="all", output="softmax"), False),
]


@pytest.mark.parametrize(("config", "loop"), OTHER_CONFIGS, ids=lambda v: str(v)[:60])
def test_any_configuration_generates_a_correct_module(
    tmp_path: Path, config: Config, loop: bool
) -> None:
    ((fname, source),) = generate.module_files(config, loop=loop).items()
    mod = _load(tmp_path, fname[:-3], source)
    assert mod.CONFIG["steps"] == (None if loop else config.steps)
    assert mod.CONFIG["loss_steps"] == config.loss_steps
    for T, batch in [(1, None), (4, 3)] if loop else [(config.steps, None), (config.steps, 2)]:
        rng = np.random.default_rng(T)
        x, dd, weights, s0 = random_problem(rng, T, (2, 3, 2), batch, True)
        errors = gradient_errors(mod, x, dd, weights, s0)
        assert max(errors.values()) <= 1e-6, errors
        assert directional_error(mod, x, dd, weights, s0, rng) <= 1e-6
