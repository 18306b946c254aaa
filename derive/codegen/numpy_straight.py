"""Stage 6 (NumPy backend, straight-line form): a :class:`StraightPlan` printed as NumPy.

Contract: :func:`context` prints each statement of the plan as one line of NumPy, under a
comment citing its equation label (a block of chain-rule statements under the block's comments),
and takes the rows x̄_k, d̄_k each function reads out of the stacked inputs. The template
``bptt_straight.py.jinja`` arranges the lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from derive.codegen.describe import ModelText, comment
from derive.codegen.numpy_module import Block, ModuleBase, base
from derive.codegen.plan import Statement
from derive.codegen.plan_straight import StraightPlan
from derive.derivation import Derivation
from derive.printing.numpy import BPTTNumPyPrinter

TEMPLATE = "bptt_straight.py.jinja"


@dataclass(frozen=True)
class StraightContext(ModuleBase):
    """The straight-line module: per function, the rows taken out of x and d, then blocks."""

    forward_inputs: tuple[str, ...]
    loss_inputs: tuple[str, ...]
    gradient_inputs: tuple[str, ...]
    forward_blocks: tuple[Block, ...]
    forward_return: str
    loss_blocks: tuple[Block, ...]
    gradient_blocks: tuple[Block, ...]
    results: str


def _line(st: Statement, printer: BPTTNumPyPrinter) -> str:
    return f"{st.target.name} = {printer.doprint(st.expr)}"


def _each(statements: Sequence[Statement], printer: BPTTNumPyPrinter) -> tuple[Block, ...]:
    """One block per statement, its comment the statement in the lecture's notation."""
    return tuple(Block((f"# {comment(st)}",), (_line(st, printer),)) for st in statements)


def _inputs(blocks: Sequence[Block], bases: Sequence[str]) -> tuple[str, ...]:
    """``x_1 = x[0]``, ``d_3 = d[2]`` … for the rows the blocks read."""
    pattern = re.compile(rf"\b({'|'.join(bases)})_(\d+)\b")
    used = {
        found
        for b in blocks
        for line in b.lines
        for found in pattern.findall(line.split(" = ", 1)[1])
    }
    order = {name: k for k, name in enumerate(bases)}
    return tuple(
        f"{v}_{k} = {v}[{int(k) - 1}]"
        for v, k in sorted(used, key=lambda p: (order[p[0]], int(p[1])))
    )


def _stack(names: Sequence[str]) -> str:
    items = ", ".join(names)
    return f"np.stack(({items},))" if len(names) == 1 else f"np.stack(({items}))"


def context(
    d: Derivation, plan: StraightPlan, text: ModelText, printer: BPTTNumPyPrinter, name: str
) -> StraightContext:
    forward = _each(plan.forward, printer)
    loss = _each(plan.loss, printer)
    gradients: list[Block] = []
    for block in plan.gradients:
        if block.comments:
            lines = tuple(_line(st, printer) for st in block.statements)
            gradients.append(Block(tuple(f"# {c}" for c in block.comments), lines))
        else:
            gradients.extend(_each(block.statements, printer))
    bases = [*d.statement.names("input"), *d.statement.names("target")]
    every = [st for block in plan.gradients for st in block.statements]
    fields = base(
        d,
        text,
        [*plan.forward, *plan.loss, *every],
        printer,
        name=name,
        template=TEMPLATE,
        title=f"BPTT gradients of the lecture's RNN, straight-line for exactly T = {plan.steps} "
        "steps",
        loop=False,
        about="Each gradient is the transcription of the expanded closed form: one statement "
        "per chain-rule term, shared factors computed once (_t0, _t1, ...).",
    )
    return StraightContext(
        **fields,
        forward_inputs=_inputs(forward, bases),
        loss_inputs=_inputs(loss, bases),
        gradient_inputs=_inputs(gradients, bases),
        forward_blocks=forward,
        forward_return=", ".join(_stack(names) for names in plan.forward_returns),
        loss_blocks=loss,
        gradient_blocks=tuple(gradients),
        results=", ".join(("E", *plan.results)),
    )
