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

from derive import ops
from derive.codegen.describe import ModelText
from derive.codegen.plan import Statement, matrix_cse
from derive.derivation import Derivation
from derive.printing.numpy import BPTTNumPyPrinter


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
    }
