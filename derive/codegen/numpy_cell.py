"""Stage 7 (NumPy backend, gated cells): a :class:`LoopPlan` of a GRU or an LSTM as a module.

Contract: :func:`context` prints every statement of the loop plan where it lives and hands the
lines to ``templates/cell_module.py.jinja``, whose contract is the cells' (a ``params`` dict,
``PARAMS``, ``STATES``, ``init_params``; states as a dict). Storage is plain: each per-step
quantity is an array (T, B, n) made when it is first computed; a state is a (T + 1, B, n) array
whose first row is its initial value, so ``s`` (steps 1…T) and ``s_prev`` (steps 0…T − 1) are
views of it. A statement over every step is one NumPy expression over the (T, B, n) arrays; a
step-by-step statement a line in a loop over ``k``; a sum over steps one product over the
stacked (T·B, n) views (a bias's, a column sum). Nothing here is specific to one cell: the
quantities, parameters and lines are the plan's.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive import model as m
from derive.codegen.describe import ModelText, step_comment
from derive.codegen.numpy_module import wrap
from derive.codegen.plan import Statement
from derive.codegen.plan_loop import LoopPlan
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.printing.numpy import BPTTNumPyPrinter
from derive.printing.text import text as text_of

TEMPLATE = "cell_module.py.jinja"


@dataclass(frozen=True)
class Line:
    """One printed line, under comment lines citing its label and stating it in the notes'
    notation."""

    comments: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class CellContext:
    template: str
    title: str
    description: tuple[str, ...]
    equations: tuple[str, ...]
    config_items: tuple[tuple[str, str], ...]
    params: tuple[tuple[str, tuple[str, ...]], ...]
    states: tuple[str, ...]
    sizes: tuple[tuple[str, int], ...]
    allocate: tuple[str, ...]
    forward_all: tuple[Line, ...]
    forward_steps: tuple[Line, ...]
    outputs: tuple[Line, ...]
    loss: tuple[Line, ...]
    backward: tuple[Line, ...]
    backward_steps: tuple[Line, ...]
    sums: tuple[Line, ...]
    returned: tuple[tuple[str, str], ...]


class _Printer:
    def __init__(self, plan: LoopPlan, printer: BPTTNumPyPrinter) -> None:
        self.plan = plan
        self.printer = printer

    def name(self, symbol: Any, where: str) -> str | None:
        found = self.plan.step_of(symbol)
        if found is None:
            return None
        base, step = found
        shift = sp.simplify(step - (m.N if where == "last" else m.t))
        suffix = {0: "", -1: "_prev"}.get(int(shift)) if shift.is_Integer else None
        if where == "backward" and shift == 1:
            return f"{base}[k + 1]"
        if suffix is None:
            raise GenerationError(f"{symbol} cannot be read {where}")
        if suffix == "_prev" and base not in self.plan.states:
            raise GenerationError(f"{symbol}: only a state is read a step back")
        if where == "all":
            return f"{base}{suffix}"
        if where == "sum":
            return f"{base}{suffix}2"
        if where == "last":
            return f"{base}{suffix}[-1]"
        return f"{base}{suffix}[k]"

    def text(self, expr: Any, where: str) -> str:
        names = {}
        for s in expr.atoms(sp.MatrixSymbol):
            code = self.name(s, where)
            if code is not None:
                names[s] = sp.MatrixSymbol(code, *s.shape)
        return str(self.printer.doprint(_traces(expr.xreplace(names))))

    def line(self, st: Statement, where: str | None = None) -> Line:
        # a loss summed over steps is Σ over every entry of the (T, B, n) arrays
        where = where or ("all" if st.over == "sum" else st.over)
        target = self.name(st.target, where) or str(st.target.name)
        return Line(step_comment(st), f"{target} = {self.text(st.expr, where)}")


def _traces(expr: Any) -> Any:
    """tr(c A Bᵀ) → c Σ A ⊙ B, a loss over a batch of rows without the (T·B)² product."""
    if isinstance(expr, sp.Trace):
        coeff, ms = expr.arg.as_coeff_matrices()
        if len(ms) == 2 and isinstance(ms[1], sp.Transpose):
            return sp.MatMul(coeff, _Total(sp.HadamardProduct(ms[0], ms[1].arg)))
    return expr


class _Total(sp.MatrixExpr):
    """Σ of every entry of an array (a 1×1 result)."""

    shape = (sp.Integer(1), sp.Integer(1))

    def _bptt_numpy(self, printer: Any) -> str:
        return f"np.sum({printer._print(self.args[0])})"


def _sum_lines(p: _Printer, sums: tuple[Statement, ...]) -> tuple[list[Line], set[str]]:
    lines, seen, stacked = [], set(), set()
    for st in sums:
        target = str(st.target.name)
        where = "last" if st.over == "last" else "sum"
        text = p.text(st.expr, where)
        if st.expr.shape[0] == 1:  # a bias: the column sum over the stacked rows
            text = f"np.sum({text}, axis=0)"
        if where == "sum":
            stacked |= {
                code[:-1]
                for s in st.expr.atoms(sp.MatrixSymbol)
                if (code := p.name(s, "sum")) is not None
            }
        op = "+=" if target in seen else "="
        seen.add(target)
        lines.append(Line(step_comment(st), f"{target} {op} {text}"))
    return lines, stacked


def context(
    d: Derivation, plan: LoopPlan, text: ModelText, printer: BPTTNumPyPrinter
) -> CellContext:
    stmt = d.statement
    p = _Printer(plan, printer)
    size = {sym: str(sym) for sym in (m.n_x, m.n_s, m.n_y)}
    looped = [st for st in (*plan.forward, *plan.backward) if st.over in ("forward", "backward")]
    # what forward() computes for every step the loss does not compute again (ȳ_t)
    computed = {
        plan.step_of(st.target)[0]  # type: ignore[index]
        for st in (*plan.forward, *plan.outputs)
        if st.over in ("all", "forward")
    }
    loss = [
        st
        for st in plan.loss
        if plan.step_of(st.target) is None or plan.step_of(st.target)[0] not in computed  # type: ignore[index]
    ]
    lasts = [st for st in (*loss, *plan.backward) if st.over == "last"]
    allocate = []
    done: set[str] = set(plan.states)
    for st in (*looped, *lasts):
        found = plan.step_of(st.target)
        base = found[0] if found is not None else None  # E is no array
        if base is not None and base not in done:
            done.add(base)
            allocate.append(f"{base} = np.empty((T, B, {size[plan.bases[base]]}), dtype=dtype)")
    backward = [p.line(st) for st in plan.backward if st.over in ("once", "all", "last")]
    sums, stacked = _sum_lines(p, plan.gradients)
    stack_lines = [
        Line((), f"{b}2 = {b}.reshape(T * B, {b}.shape[-1])  # steps × batch stacked")
        for b in sorted(stacked)
    ]
    params = tuple((w.name, tuple(str(v) for v in _param_shape(w))) for w in stmt.weights)
    cell = d.config.cell
    title = {"gru": "a GRU", "lstm": "an LSTM"}[cell]
    return CellContext(
        template=TEMPLATE,
        title=f"BPTT gradients of {title} cell for any sequence length T",
        description=wrap(
            f"Configuration: any T, {d.config.describe().split(', ', 1)[1]}.",
            f"Loss: {text.loss}.",
        ),
        equations=tuple(
            line
            for eq in stmt.equations
            for line in textwrap.wrap(
                f"{eq.label:<6}  {text_of(eq.target)} = {text_of(eq.rhs)}",
                width=92,
                subsequent_indent=" " * 12,
            )
        ),
        config_items=(
            ("cell", repr(cell)),
            ("steps", "None"),
            ("output", repr(d.config.output)),
            ("loss", repr(d.config.loss)),
            ("scale", repr(float(d.config.scale))),
            ("loss_steps", repr(d.config.loss_steps)),
            ("truncate", "None"),
            ("backend", repr("numpy")),
        ),
        params=params,
        states=plan.states,
        sizes=tuple(
            (v, k)
            for k, v in enumerate(("n_x", "n_s", "n_y"))
            if v == "n_s" or any(v in line for line in allocate)
        ),
        allocate=tuple(allocate),
        forward_all=tuple(p.line(st) for st in plan.forward if st.over == "all"),
        forward_steps=tuple(p.line(st) for st in plan.forward if st.over == "forward"),
        outputs=tuple(p.line(st) for st in plan.outputs),
        loss=tuple(p.line(st) for st in loss),
        backward=tuple(backward),
        backward_steps=tuple(p.line(st) for st in plan.backward if st.over == "backward"),
        sums=(*stack_lines, *sums),
        returned=tuple((w.name, f"dE_d{w.name}") for w in stmt.weights),
    )


def _param_shape(w: sp.MatrixSymbol) -> tuple[Any, ...]:
    """A parameter's shape in the module: a bias b̄ (1×n_s) is a vector (n_s,)."""
    rows, cols = w.shape
    return (cols,) if rows == 1 else (rows, cols)
