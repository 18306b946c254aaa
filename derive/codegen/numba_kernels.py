"""Stage 6 (Numba backend): a loop plan's statements as ``@njit`` kernels of explicit loops.

Contract: :func:`kernels` takes a :class:`~derive.codegen.plan_loop.LoopPlan` and a
:class:`~derive.printing.numba.BPTTNumbaPrinter` and returns three :class:`Kernel` s (forward,
loss, gradients), each the printed body of one function over arrays (T, B, n). Every statement
of the plan becomes loops over time (as the statement's ``over`` says), over the batch and over
the units; each matrix expression is taken apart into loops whose bodies are scalars:

* a product with a weight, ā W or ā Wᵀ, is a loop of ``axpy`` rows into a row (a transposed
  weight is first copied to contiguous memory, once per call, so the inner loop runs along
  memory and vectorises without reassociating sums);
* ā b̄ᵀ and tr(ā b̄ᵀ) are dot products; a row maximum or sum (softmax's stable form, which
  :class:`~derive.ops.Softmax` states and the proof checks) a scalar;
* everything else (sums, Hadamard products, Φ, Φ', a number times a row) is entry by entry;
* a weight gradient Σ_t c āᵀ b̄ is a sum of outer products into the weight's shape.

The states are stored with one row of steps more, (T + 1, B, n_s), row 0 holding s̄_0, so that
s̄_(t−1) at t = 1 needs no special case. Truncated plans (windows of lanes) are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import activations as acts
from derive import model as m
from derive import ops
from derive.codegen.describe import step_comment
from derive.codegen.plan import OVER, Statement
from derive.codegen.plan_loop import LoopPlan
from derive.errors import GenerationError
from derive.printing.numba import BPTTNumbaPrinter

__all__ = ["Kernel", "kernels"]

_T, _B = sp.Symbol("T"), sp.Symbol("B")
_TIME = sp.Symbol("t")  # the kernel's time index: step t is row t − 1, step N row T − 1

# How a statement's time loop runs, by its ``over``; None: no loop (one step, or no steps).
_TIME_LOOPS = {
    "all": "for t in range(T):",
    "forward": "for t in range(T):",
    "sum": "for t in range(T):",
    "backward": "for t in range(T - 2, -1, -1):",
    "last": None,
    "once": None,
}


# The whole-call kernels test their inputs for NaN and infinity first, in the order of the
# module's own check (_prepare) and naming each argument as the caller does.
_CHECK_ORDER = ("x", "W_x", "W_s", "W_y", "d", "s_0")
_CALLED = {"s_0": "s0"}


@dataclass(frozen=True)
class Kernel:
    """One kernel: its name, arguments, printed body lines (unindented) and what it returns."""

    name: str
    arguments: tuple[str, ...]
    lines: tuple[str, ...]
    result: str


@dataclass(frozen=True)
class Kernels:
    forward: Kernel
    loss: Kernel
    gradients: Kernel
    # The recurrences alone, for the NumPy code's arrays (its products left to BLAS).
    state_steps: Kernel
    delta_steps: Kernel


class _Emitter:
    """Printed lines of one kernel, and the temporaries its statements need."""

    def __init__(self, plan: LoopPlan, printer: BPTTNumbaPrinter, *, steps: bool = False) -> None:
        self.plan = plan
        self.pr = printer
        # A step kernel: the arrays are the NumPy code's, (T, B, n) with s̄_0 apart; a state at
        # t − 1 is read through s_prev, which is s_0 at t = 0.
        self.steps = steps
        self.read: set[str] = set()  # per-step bases and weights the statements read or write
        self.lines: list[str] = []
        self.depth = 0
        self.counter = 0
        self.rows: dict[str, str] = {}  # temporary row → its length
        self.transposed: dict[str, str] = {}  # weight → its contiguous transposed copy
        self.allocated: set[str] = set()
        self.memo: dict[Any, Any] = {}
        # Lines to run first inside the loop over a unit index, by index (entry-wise locals).
        self.inner: dict[str, list[str]] = {}

    # -- text ----------------------------------------------------------------------------------

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    @contextmanager
    def block(self, header: str | None) -> Iterator[None]:
        if header is None:
            yield
            return
        self.emit(header)
        self.depth += 1
        loop = re.match(r"for (\w+) in ", header)
        for line in self.inner.pop(loop.group(1), []) if loop else []:
            self.emit(line)
        try:
            yield
        finally:
            self.depth -= 1

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def code(self, e: Any) -> str:
        return str(self.pr.doprint(e))

    # -- leaves --------------------------------------------------------------------------------

    def row_index(self, sym: sp.MatrixSymbol) -> str | None:
        """``s[t + 1, b`` for a per-step symbol (without the unit index), or None."""
        found = self.plan.step_of(sym)
        if found is None:
            return None
        base, step = found
        self.read.add(base)
        if self.steps and base in self.plan.states and step == m.t - 1:
            return f"{base}_prev[b"
        offset = 1 if base in self.plan.states and not self.steps else 0
        index = (step - 1).xreplace({m.t: _TIME + 1, m.N: _T}) + offset
        return f"{base}[{sp.sstr(index)}, b"

    def entry(self, sym: sp.MatrixSymbol, j: str) -> sp.Symbol:
        row = self.row_index(sym)
        if row is not None:
            return sp.Symbol(f"{row}, {j}]")
        if str(sym.name) in self.rows:
            return sp.Symbol(f"{sym.name}[{j}]")
        raise GenerationError(f"the Numba kernels cannot index {sym} as a row")

    def is_leaf(self, e: Any) -> bool:
        return isinstance(e, sp.MatrixSymbol) and (
            self.plan.step_of(e) is not None or str(e.name) in self.rows
        )

    def new_row(self, size: Any) -> sp.MatrixSymbol:
        name = self.fresh("_r")
        self.rows[name] = str(size)
        return sp.MatrixSymbol(name, 1, size)

    # -- rows, entry by entry ------------------------------------------------------------------

    def scalar_at(self, e: Any, j: str) -> Any:
        """Entry j of the row ``e`` as a scalar expression; lines that ``e`` needs computed first
        (products with weights, reductions) are emitted before the caller's loop over j."""
        if isinstance(e, sp.MatrixSymbol):
            return self.entry(e, j)
        if isinstance(e, sp.MatAdd):
            return sp.Add(*(self.scalar_at(a, j) for a in e.args))
        if isinstance(e, sp.HadamardProduct):
            return sp.Mul(*(self.scalar_at(a, j) for a in e.args))
        if isinstance(e, sp.HadamardPower):
            return sp.Pow(self.scalar_at(e.base, j), e.exp)
        if isinstance(e, ElementwiseApplyFunction):
            fn = self.pr.scalar_function(acts.applied_function(e))
            arg = self.scalar_at(e.expr, j)
            if not isinstance(arg, sp.Symbol) and fn.expr.count(fn.variables[0]) > 1:
                u = self.fresh("_u")  # an argument the body reads more than once, computed once
                self.inner.setdefault(j, []).append(f"{u} = {self.code(arg)}")
                arg = sp.Symbol(u)
            body = self.pr.scalar_body(fn, arg)
            names = (sp.Symbol(self.fresh("_u")) for _ in iter(int, 1))
            shared, (body,) = sp.cse([body], symbols=names)
            for name, value in shared:  # what the body computes twice (expm1(−2u)), once
                self.inner.setdefault(j, []).append(f"{name} = {self.code(value)}")
            return body
        if isinstance(e, ops.RowMax | ops.RowSum):
            return self.reduction(e)
        if isinstance(e, ops.Softmax | ops.LogSoftmax):
            return self.scalar_at(type(e).stable(e.arg), j)
        if isinstance(e, sp.MatMul):
            coeff, factor, row = self.product(e)
            return coeff * factor * (1 if row is None else self.scalar_at(row, j))
        raise GenerationError(f"the Numba kernels cannot compute {e} ({type(e).__name__})")

    def materialize(self, e: Any) -> sp.MatrixSymbol:
        """A row symbol holding ``e``: ``e`` itself when it is stored, else a temporary row."""
        if self.is_leaf(e):
            return e
        if e in self.memo:
            return self.memo[e]
        row = self.new_row(e.shape[1])
        j = self.fresh("_j")
        value = self.scalar_at(e, j)
        with self.block(f"for {j} in range({e.shape[1]}):"):
            self.emit(f"{row.name}[{j}] = {self.code(value)}")
        self.memo[e] = row
        return row

    def reduction(self, e: Any) -> sp.Symbol:
        """A row's maximum or sum, once per row."""
        if e in self.memo:
            return self.memo[e]
        q, k = self.fresh("_q"), self.fresh("_k")
        value = self.code(self.scalar_at(e.args[0], k))
        size = e.args[0].shape[1]
        if isinstance(e, ops.RowMax):
            self.emit(f"{q} = -math.inf")
            with self.block(f"for {k} in range({size}):"):
                self.emit(f"{q} = max({q}, {value})")
        else:
            self.emit(f"{q} = 0.0")
            with self.block(f"for {k} in range({size}):"):
                self.emit(f"{q} += {value}")
        self.memo[e] = sp.Symbol(q)
        return self.memo[e]

    def dot(self, a: Any, b: Any) -> sp.Symbol:
        """ā b̄ᵀ of two rows, a scalar."""
        key = ("dot", a, b)
        if key in self.memo:
            return self.memo[key]
        q, k = self.fresh("_q"), self.fresh("_k")
        value = self.code(self.scalar_at(a, k) * self.scalar_at(b, k))
        self.emit(f"{q} = 0.0")
        with self.block(f"for {k} in range({a.shape[1]}):"):
            self.emit(f"{q} += {value}")
        self.memo[key] = sp.Symbol(q)
        return self.memo[key]

    def weight(self, w: Any) -> str:
        """The array that holds the weight factor ``w`` row by row (Wᵀ: a contiguous copy)."""
        self.read.add(str((w.arg if isinstance(w, sp.Transpose) else w).name))
        if isinstance(w, sp.Transpose):
            name = str(w.arg.name)
            if name not in self.transposed:
                raise GenerationError(f"{w} is used before its copy is made")
            return self.transposed[name]
        return str(w.name)

    def axpy_rows(self, row: Any, w: Any, dest: str, coeff: Any = 1) -> None:
        """dest[j] = coeff · (ā W)_j for the leaf row ``row`` (``dest`` holds ``{j}``)."""
        j, k, a = self.fresh("_j"), self.fresh("_k"), self.fresh("_a")
        cols = w.shape[1]
        weight = self.weight(w)
        with self.block(f"for {j} in range({cols}):"):
            self.emit(f"{dest.format(j=j)} = 0.0")
        with self.block(f"for {k} in range({row.shape[1]}):"):
            self.emit(f"{a} = {self.code(coeff * self.entry(row, k))}")
            with self.block(f"for {j} in range({cols}):"):
                self.emit(f"{dest.format(j=j)} += {a} * {weight}[{k}, {j}]")

    def product(self, e: sp.MatMul) -> tuple[Any, Any, Any]:
        """A product of rows, row transposes and weights, as (number, scalar factor, row or None
        when the product is 1×1): row · weight is a new row, row · rowᵀ a scalar."""
        coeff, ms = e.as_coeff_matrices()
        factor: Any = sp.Integer(1)
        cur: Any = ms[0]
        i = 1
        while i < len(ms):
            f = ms[i]
            if isinstance(f, sp.Transpose) and f.shape[1] == 1:  # ā b̄ᵀ
                factor *= self.dot(cur, f.arg)
                cur = ms[i + 1] if i + 1 < len(ms) else None
                i += 2
                continue
            key = ("product", cur, f)
            if key not in self.memo:
                src = self.materialize(cur)
                out = self.new_row(f.shape[1])
                self.axpy_rows(src, f, f"{out.name}[{{j}}]")
                self.memo[key] = out
            cur = self.memo[key]
            i += 1
        return coeff, factor, cur

    # -- statements ----------------------------------------------------------------------------

    def prepare_transposes(self, e: Any) -> None:
        """Contiguous copies of the transposed weights ``e`` multiplies rows with, made once."""
        for node in sp.preorder_traversal(e):
            if isinstance(node, sp.MatMul):
                for f in node.as_coeff_matrices()[1][1:]:
                    if isinstance(f, sp.Transpose) and 1 not in f.shape:
                        name = str(f.arg.name)
                        if name not in self.transposed:
                            self.transposed[name] = f"{name}T"
                            self.emit(f"{name}T = np.ascontiguousarray({name}.T)")

    def statement(self, st: Statement) -> None:
        if st.over not in _TIME_LOOPS:
            raise GenerationError(
                f"the Numba backend does not generate statements computed {OVER[st.over]} "
                f"({st.target} = {st.expr}); truncated BPTT has the NumPy backend only"
            )
        self.prepare_transposes(st.expr)
        for line in step_comment(st):
            self.emit(line)
        name = str(st.target.name)
        if self.plan.step_of(st.target) is not None:
            self.allocate(name, self.plan.bases[name.rpartition("_")[0]])
        elif name == "E":
            if name not in self.allocated:
                self.emit("E = 0.0")
                self.allocated.add(name)
        elif name not in self.allocated:
            rows, cols = st.target.shape
            zero = "zeros" if st.over in ("sum", "last") else "empty"
            self.emit(f"{name} = np.{zero}(({rows}, {cols}), x.dtype)")
            self.allocated.add(name)
        self.loops(st)

    def loops(self, st: Statement) -> None:
        name = str(st.target.name)
        with self.block(_TIME_LOOPS[st.over]):
            if self.steps and st.over == "forward":
                for state in self.plan.states:
                    self.emit(f"{state}_prev = {state}_0 if t == 0 else {state}[t - 1]")
            if st.over == "once":
                self.weight_statement(st)
                return
            with self.block("for b in range(B):"):
                self.memo = {}
                if self.plan.step_of(st.target) is not None:
                    self.row_statement(st)
                elif name == "E":
                    self.emit(f"E += {self.code(self.scalar(st.expr))}")
                else:
                    self.gradient_statement(st)

    def allocate(self, name: str, size: Any) -> None:
        base = name.rpartition("_")[0]
        if self.steps:
            self.read.add(base)
            return
        if base in self.allocated or base in self.plan.inputs or base in self.plan.targets:
            return
        self.allocated.add(base)
        if base in self.plan.states:
            self.emit(f"{base} = np.empty((T + 1, B, {size}), x.dtype)")
            self.emit(f"{base}[0] = {base}_0")
        else:
            self.emit(f"{base} = np.empty((T, B, {size}), x.dtype)")

    def row_statement(self, st: Statement) -> None:
        row = self.row_index(st.target)
        dest = f"{row}, {{j}}]"
        e = st.expr
        if isinstance(e, sp.MatMul):
            coeff, ms = e.as_coeff_matrices()
            if len(ms) == 2 and 1 not in ms[1].shape:  # ā W, written straight into the target
                self.axpy_rows(self.materialize(ms[0]), ms[1], dest, coeff)
                return
        j = self.fresh("_j")
        value = self.code(self.scalar_at(e, j))
        with self.block(f"for {j} in range({st.target.shape[1]}):"):
            self.emit(f"{dest.format(j=j)} = {value}")

    def scalar(self, e: Any) -> Any:
        """A 1×1 quantity (the loss) as a scalar expression."""
        if isinstance(e, sp.Trace):
            coeff, factor, row = self.product(e.arg)
            if row is not None:
                raise GenerationError(f"the trace of a non-scalar product: {e}")
            return coeff * factor
        if isinstance(e, sp.MatMul) and e.shape == (1, 1):
            coeff, factor, row = self.product(e)
            return coeff * factor
        if isinstance(e, sp.Mul | sp.Add):
            return e.func(*(self.scalar(a) for a in e.args))
        if e.is_number:
            return e
        raise GenerationError(f"the Numba kernels cannot compute the scalar {e}")

    def gradient_statement(self, st: Statement) -> None:
        """target += c āᵀ b̄ at every (t, b) of the statement's steps."""
        coeff, ms = st.expr.as_coeff_matrices()
        if len(ms) != 2 or not isinstance(ms[0], sp.Transpose):
            raise GenerationError(f"expected a sum of outer products c āᵀ b̄, got {st.expr}")
        a, b_ = self.materialize(ms[0].arg), self.materialize(ms[1])
        i, j, ai = self.fresh("_i"), self.fresh("_j"), self.fresh("_a")
        name = str(st.target.name)
        with self.block(f"for {i} in range({a.shape[1]}):"):
            self.emit(f"{ai} = {self.code(coeff * self.entry(a, i))}")
            with self.block(f"for {j} in range({b_.shape[1]}):"):
                self.emit(f"{name}[{i}, {j}] += {ai} * {self.code(self.entry(b_, j))}")

    def weight_statement(self, st: Statement) -> None:
        """A weight-shaped quantity computed once per call, entry by entry (c W)."""
        coeff, ms = st.expr.as_coeff_matrices() if isinstance(st.expr, sp.MatMul) else (1, [])
        if len(ms) != 1 or not isinstance(ms[0], sp.MatrixSymbol):
            raise GenerationError(f"expected a number times a weight, got {st.expr}")
        rows, cols = st.target.shape
        i, j = self.fresh("_i"), self.fresh("_j")
        with self.block(f"for {i} in range({rows}):"):
            with self.block(f"for {j} in range({cols}):"):
                value = self.code(coeff * sp.Symbol(f"{ms[0].name}[{i}, {j}]"))
                self.emit(f"{st.target.name}[{i}, {j}] = {value}")


def _kernel(
    plan: LoopPlan,
    printer: BPTTNumbaPrinter,
    name: str,
    arguments: tuple[str, ...],
    statements: list[Statement],
    result: str,
) -> Kernel:
    em = _Emitter(plan, printer)
    for st in statements:
        em.statement(st)
    sizes = {str(w.shape[0]): f"{w.name}.shape[0]" for w in plan.weights}
    sizes.update({str(w.shape[1]): f"{w.name}.shape[1]" for w in plan.weights})
    head = []
    for arg in _CHECK_ORDER:  # the module's input check, in its order and with its words
        if arg in arguments:
            said = _CALLED.get(arg, arg)
            head += [
                f"if not np.isfinite({arg}).all():",
                f'    raise ValueError("{said}: expected finite values, got NaN or infinity")',
            ]
    head += ["T, B = x.shape[0], x.shape[1]"]
    head += [f"{n} = {code}" for n, code in sorted(sizes.items())]
    head += [f"{r} = np.empty({size}, x.dtype)" for r, size in em.rows.items()]
    return Kernel(name, arguments, tuple(head + em.lines), result)


def _step_kernel(
    plan: LoopPlan, printer: BPTTNumbaPrinter, name: str, statements: list[Statement]
) -> Kernel:
    """A kernel of one recurrence's step-by-step statements over the NumPy code's arrays, which
    it takes by name (the per-step arrays, the weights, s_0 when it reads s̄_(t-1))."""
    em = _Emitter(plan, printer, steps=True)
    for st in statements:
        em.statement(st)
    target = str(statements[0].target.name).rpartition("_")[0]
    weights = [w for w in plan.weights if str(w.name) in em.read]
    bases = sorted(b for b in em.read if b in plan.bases)
    reads_prev = any(ln.strip().startswith(f"{s}_prev =") for s in plan.states for ln in em.lines)
    arguments = (
        *bases,
        *(f"{s}_0" for s in plan.states if reads_prev),
        *(str(w.name) for w in weights),
    )
    sizes = {str(plan.bases[b]): f"{b}.shape[2]" for b in reversed(bases)}
    for w in weights:
        sizes.setdefault(str(w.shape[0]), f"{w.name}.shape[0]")
        sizes.setdefault(str(w.shape[1]), f"{w.name}.shape[1]")
    head = [f"T, B = {target}.shape[0], {target}.shape[1]"]
    head += [f"{n} = {code}" for n, code in sorted(sizes.items())]
    head += [f"{r} = np.empty({size}, {target}.dtype)" for r, size in em.rows.items()]
    return Kernel(name, arguments, tuple(head + em.lines), "None")


def kernels(plan: LoopPlan, printer: BPTTNumbaPrinter) -> Kernels:
    """The forward, loss and gradients kernels of ``plan``."""
    weights = tuple(str(w.name) for w in plan.weights)
    (state,) = plan.states
    states = f"{state}[1:]"
    outputs = [
        st for st in plan.outputs if str(st.target.name).rpartition("_")[0] in plan.outputs_returned
    ]
    needed = {
        s
        for st in outputs
        for s in st.expr.atoms(sp.MatrixSymbol)
        if plan.step_of(s) and str(s.name).rpartition("_")[0] not in plan.states
    }
    before = [st for st in plan.outputs if st.target in needed]
    forward = _kernel(
        plan,
        printer,
        "_forward_kernel",
        ("x", *weights, f"{state}_0"),
        [*plan.forward, *before, *outputs],
        ", ".join((states, *plan.outputs_returned)),
    )
    loss = _kernel(
        plan,
        printer,
        "_loss_kernel",
        ("x", "d", *weights, f"{state}_0"),
        [*plan.forward, *plan.loss],
        "E",
    )
    gradients = _kernel(
        plan,
        printer,
        "_gradients_kernel",
        ("x", "d", *weights, f"{state}_0"),
        [*plan.forward, *plan.loss, *plan.backward, *plan.gradients],
        ", ".join(("E", *(f"dE_d{w}" for w in weights))),
    )
    state_steps = _step_kernel(
        plan, printer, "_state_steps", [st for st in plan.forward if st.over == "forward"]
    )
    delta_steps = _step_kernel(
        plan, printer, "_delta_steps", [st for st in plan.backward if st.over == "backward"]
    )
    return Kernels(forward, loss, gradients, state_steps, delta_steps)
