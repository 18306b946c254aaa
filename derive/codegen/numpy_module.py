"""Stage 6 (NumPy backend, shared): what every NumPy gradient module's template receives.

Contract: :class:`ModuleBase`, the printed parts every module has (docstring lines from the
statement, ``CONFIG``, the helper functions its statements call, e.g. ``_softmax`` printed from
the proven stable form of :class:`~derive.ops.Softmax`), and :class:`Block`, printed lines under
comment lines. Arrays in generated code are row-stacked: a step's rows are the batch, so the
lecture's row-vector formulas apply to a whole batch unchanged.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import labels, ops
from derive import model as m
from derive.codegen.describe import ModelText
from derive.codegen.plan import Statement, matrix_cse, rename, through_outputs
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.printing.numpy import BPTTNumPyPrinter
from derive.printing.text import text


@dataclass(frozen=True)
class Block:
    """Printed lines under comment lines; the first comment cites an equation label."""

    comments: tuple[str, ...]
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Helper:
    """A function of the module's own, printed from a proven numeric form."""

    name: str
    argument: str
    doc: str
    lines: tuple[str, ...]
    result: str


@dataclass(frozen=True)
class Transition:
    """J_t = ∂s̄_t/∂s̄_(t−1) as code: ``def _transition(arguments): return expr``, called as
    ``call`` inside state_jacobian_norms' loop (step index t, previous state s_prev)."""

    comment: str
    arguments: tuple[str, ...]
    expr: str
    call: str


@dataclass(frozen=True)
class ModuleBase:
    """What every module template needs, already printed."""

    name: str
    template: str
    title: str
    description: tuple[str, ...]
    model: tuple[str, ...]
    arguments: tuple[tuple[str, str, str], ...]
    config_items: tuple[tuple[str, str], ...]
    steps: int | None
    window: int | None  # truncated BPTT's K
    loss_doc: str
    helpers: tuple[Helper, ...]
    transition: Transition


def wrap(*paragraphs: str) -> tuple[str, ...]:
    """Docstring paragraphs wrapped to the line length, a blank line between them."""
    out: list[str] = []
    for para in paragraphs:
        if out:
            out.append("")
        out.extend(textwrap.wrap(para, width=96))
    return tuple(out)


def config_items(d: Derivation, loop: bool) -> tuple[tuple[str, str], ...]:
    c = d.config
    return (
        ("steps", "None" if loop else str(c.steps)),
        ("activation", repr(c.activation_name)),
        ("output", repr(c.output)),
        ("loss", repr(c.loss)),
        ("scale", repr(float(c.scale))),
        ("loss_steps", repr(c.loss_steps)),
        ("truncate", repr(c.truncate)),
        ("backend", repr("numpy")),
    )


def helpers(statements: Iterable[Statement], printer: BPTTNumPyPrinter) -> tuple[Helper, ...]:
    """The helper functions the statements' nodes call (softmax's stable form)."""
    nodes = {type(n) for st in statements for n in sp.preorder_traversal(st.expr)}
    o = sp.MatrixSymbol("o", 1, sp.Symbol("n"))
    known = (
        (ops.Softmax, "_softmax", "softmax", ops.Softmax.stable(o)),
        (ops.LogSoftmax, "_log_softmax", "log softmax", ops.LogSoftmax.stable(o)),
    )
    out = []
    for node, name, what, stable in known:
        if node in nodes:
            defs, (result,) = matrix_cse([stable])
            out.append(
                Helper(
                    name,
                    "o",
                    f"{what} along the last axis, the row maximum subtracted first (exp cannot "
                    "overflow;\n    the form the proof checks)",
                    tuple(f"{t} = {printer.doprint(e)}" for t, e in defs),
                    printer.doprint(result),
                )
            )
    return tuple(out)


# Where state_jacobian_norms finds what J_t reads: its code name and the expression it calls with.
_TRANSITION_ARGS = {
    m.x(m.t): ("x_t", "a.x[t]"),
    m.s(m.t): ("s_t", "s[t]"),
    m.s(m.t - 1): ("s_prev", "s[t - 1] if t > 0 else a.s_0"),
    m.W_x: ("W_x", "a.W_x"),
    m.W_s: ("W_s", "a.W_s"),
}


def transition(d: Derivation, printer: BPTTNumPyPrinter) -> Transition:
    """The derivation's factor ∂s̄_t/∂s̄_(t−1) (numerator layout), printed for a stack of rows:
    Φ' through Φ's output where the activation has that form, else through z̄_t's definition."""
    if len(d.transitions) != 1:
        raise GenerationError(f"expected one state transition, got {len(d.transitions)}")
    (f,) = d.transitions
    # Φ'(z̄_tᵀ) inside diag(…) is the transpose of the row Φ'(z̄_t), the form the rewrites know
    jacobian = f.jacobian.replace(
        lambda e: isinstance(e, ElementwiseApplyFunction) and isinstance(e.expr, sp.Transpose),
        lambda e: sp.Transpose(ElementwiseApplyFunction(e.function, e.expr.arg)),
    )
    expr = through_outputs(jacobian, d.statement)
    hidden = {
        eq.target: eq.rhs
        for eq in d.statement.equations
        if d.statement.quantities[m.step_of(eq.target)[0]].role == "hidden"  # type: ignore[index]
    }
    while expr.atoms(sp.MatrixSymbol) & hidden.keys():
        expr = expr.xreplace(hidden)
    unknown = expr.atoms(sp.MatrixSymbol) - _TRANSITION_ARGS.keys()
    if unknown:
        raise GenerationError(f"∂s̄_t/∂s̄_(t−1) reads {sorted(map(str, unknown))}: not in code")
    used = [k for k in _TRANSITION_ARGS if k in expr.atoms(sp.MatrixSymbol)]
    names = {k: _TRANSITION_ARGS[k][0] for k in used}
    printed = printer.doprint(rename(expr, names))
    return Transition(
        f"{labels.TRANSITION}: ∂{text(f.numerator)}/∂{text(f.denominator)} = {text(jacobian)}",
        tuple(names.values()),
        printed,
        f"_transition({', '.join(_TRANSITION_ARGS[k][1] for k in used)})",
    )


def base(
    d: Derivation,
    text: ModelText,
    statements: Iterable[Statement],
    printer: BPTTNumPyPrinter,
    *,
    name: str,
    template: str,
    title: str,
    loop: bool,
    about: str,
) -> dict[str, Any]:
    """The fields of :class:`ModuleBase` for one module."""
    loss = text.loss if loop else text.loss_fixed
    what = "any T" if loop else f"exactly T = {d.config.steps}"
    return {
        "name": name,
        "template": template,
        "title": title,
        "description": wrap(
            f"Configuration: {what}, {d.config.describe().split(', ', 1)[1]}.",
            f"Loss: {loss}.",
            about,
        ),
        "model": text.equations,
        "arguments": text.arguments,
        "config_items": config_items(d, loop),
        "steps": None if loop else d.config.steps,
        "window": d.config.truncate if loop else None,
        "loss_doc": loss,
        "helpers": helpers(statements, printer),
        "transition": transition(d, printer),
    }
