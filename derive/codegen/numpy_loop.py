"""Stage 6 (NumPy backend, loop form): a :class:`LoopPlan` printed as NumPy, written for speed.

Contract: :func:`context` decides where each per-step quantity of the plan lives and prints every
statement there. A quantity computed for every step at once, or step by step, gets a buffer of
shape (T, B, n) in a per-thread workspace reused from call to call (fresh large arrays cost page
faults), with ``name2``, the same memory viewed as (T·B, n), for statements over every step:
those become one matrix product or one ufunc over the stacked axis, written in place
(``np.dot(…, out=)``, ``+=``, ufuncs with ``out=``). A statement that reads step t − 1 over every
step splits into the first step (from the initial state) and the rest (the stack shifted by one
step). The recurrences loop over per-step views made once per workspace (a view costs about 50
ns); a transposed weight in the backward recurrence is multiplied as a contiguous copy when the
recurrence is long enough to repay the copy. Sums over steps write into fresh C-ordered arrays,
the results. Quantities of the last step only are locals ``<name>_T``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sympy as sp

from derive import model as m
from derive.codegen.describe import ModelText, step_comment
from derive.codegen.numpy_module import Block, ModuleBase, base
from derive.codegen.plan import Statement
from derive.codegen.plan_loop import LoopPlan
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.printing.numpy import BPTTNumPyPrinter

TEMPLATE = "bptt_loop.py.jinja"
# A size of the model as generated code reads it off the weights.
SIZE_CODE = {"n_x": "W_x.shape[0]", "n_s": "W_s.shape[0]", "n_y": "W_y.shape[1]"}

# A transposed weight in the backward recurrence is copied to contiguous memory when the
# recurrence has at least this many rows to multiply, (T − 1)·B: BLAS is often faster on the copy
# (B = 32, n = 64: 6.3 µs a step, not 8.3), but the transposing copy can cost 2 ns an entry.
COPY_ROWS = 512


@dataclass(frozen=True)
class Loop:
    """``for <names> in <iterable>:`` and its printed body.

    ``cached`` builds the list of per-step views once from the workspace (``arrays``), where
    ``key`` keeps it; ``iterable`` zips the same views of local arrays (forward(), which returns
    its arrays).
    """

    names: str
    iterable: str
    key: str
    cached: str
    comments: tuple[str, ...]
    lines: tuple[str, ...]
    source: str = ""  # what gradients() loops over (the cached views, maybe a part of them)
    before: tuple[str, ...] = ()  # lines before the loop
    after: tuple[str, ...] = ()  # lines after it


@dataclass(frozen=True)
class LoopContext(ModuleBase):
    """The loop module's printed pieces (see bptt_loop.py.jinja for where each goes)."""

    buffers: tuple[tuple[str, str], ...]  # workspace arrays (name, last dimension)
    matrices: tuple[tuple[str, str, str], ...]  # workspace matrices (name, rows, columns)
    state_buffers: tuple[str, ...]  # the buffers the forward recurrence writes
    state_alloc: tuple[str, ...]  # forward() allocates them
    state_locals: tuple[str, ...]
    input_part: tuple[Block, ...]
    state_loop: Loop
    output: tuple[Block, ...]
    output_return: str
    loss_locals: tuple[str, ...]
    loss: tuple[Block, ...]
    gradients_locals: tuple[str, ...]
    backward_head: tuple[Block, ...]
    backward_loop: Loop
    gradient_blocks: tuple[Block, ...]
    results: str
    lanes_dim: str  # truncated BPTT over Σ_t E_t: the lanes' row length, else ""


class _Storage:
    """Where each symbol of the plan lives, for each kind of statement."""

    def __init__(self, plan: LoopPlan) -> None:
        self.plan = plan
        self.given = {*plan.inputs, *plan.targets}
        step_kinds = ("all", "forward", "backward", "window")
        # forward() writes its outputs into fresh arrays, which it returns: no buffers for them.
        kept = [*plan.forward, *plan.loss, *plan.backward, *plan.gradients]
        targets = {self.base(st.target): st.over for st in kept}
        self.buffered = {
            b for st in kept if st.over in step_kinds and (b := self.base(st.target))
        } - self.given
        # A last-step statement writes into the buffer its quantity has anyway.
        self.locals_at_last = {b for b in targets if b and b not in self.buffered}

    def base(self, symbol: Any) -> str | None:
        found = self.plan.step_of(symbol)
        return None if found is None else found[0]

    def name(self, symbol: Any, where: str, part: str = "") -> str | None:
        """The code's name for a per-step symbol in a statement computed ``where``; ``part`` of
        a statement over every step that reads step t − 1: "first" (t = 1) or "rest"."""
        found = self.plan.step_of(symbol)
        if found is None:
            return None
        b, k = found
        t = m.t
        if k == 0:
            return f"{b}_0"
        if where in ("all", "sum"):
            if part == "first":
                return f"{b}_0" if k == t - 1 else f"{b}[0]"
            if k == t - 1:
                return f"{b}2[:-B]"
            return f"{b}2[B:]" if part == "rest" else f"{b}2"
        if where == "last":
            if b in self.locals_at_last:
                return f"{b}_T"
            return f"{b}[T - 1]"
        if where == "forward":
            return f"{b}_prev" if k == t - 1 else f"{b}_t"
        if where in ("backward", "window"):
            return f"{b}_next" if k == t + 1 else f"{b}_t"
        raise GenerationError(f"no storage for {symbol} in a statement computed {where!r}")

    def rename(self, expr: Any, where: str, part: str = "") -> Any:
        mapping = {}
        for s in expr.atoms(sp.MatrixSymbol):
            new = self.name(s, where, part)
            if new is not None:
                mapping[s] = sp.MatrixSymbol(new, *s.shape)
        return expr.xreplace(mapping)


def _all(plan: LoopPlan) -> list[Statement]:
    return [*plan.forward, *plan.outputs, *plan.loss, *plan.backward, *plan.gradients]


def _reads_previous(plan: LoopPlan, expr: Any) -> bool:
    return any(
        (found := plan.step_of(s)) is not None and found[1] == m.t - 1
        for s in expr.atoms(sp.MatrixSymbol)
    )


class _Printer:
    """Statements of the plan as lines of NumPy, in the storage of :class:`_Storage`."""

    def __init__(self, plan: LoopPlan, printer: BPTTNumPyPrinter) -> None:
        self.plan = plan
        self.storage = _Storage(plan)
        self.p = printer
        self.fresh: set[str] = set()

    def comment(self, st: Statement) -> tuple[str, ...]:
        return step_comment(st)

    def lines(self, st: Statement) -> tuple[str, ...]:
        s, ip = self.storage, self.p.inplace
        target = st.target
        if st.over == "once":
            return tuple(ip(str(target.name), st.expr))
        if st.over in ("all", "sum"):
            lagged = _reads_previous(self.plan, st.expr)
            rest = s.rename(st.expr, st.over, "rest" if lagged else "")
            first = s.rename(st.expr, st.over, "first") if lagged else None
            if st.over == "sum" and target.shape == (1, 1):
                return (f"{target.name} = {self.p.doprint(rest)}",)
            if st.over == "sum":
                return self._result(str(target.name), rest, first)
            out = f"{s.base(target)}2"
            if first is None:
                return tuple(ip(out, rest))
            return (*ip(f"{out}[B:]", rest), *ip(f"{s.base(target)}[0]", first))
        expr = s.rename(st.expr, st.over)
        if st.over == "last":
            b = s.base(target)
            if b is None:  # a result of the last step alone (∂E/∂W_y for E_T)
                if target.shape == (1, 1):
                    return (f"{target.name} = {self.p.doprint(expr)}",)
                return self._result(str(target.name), expr, None)
            if b in s.locals_at_last:
                return (f"{b}_T = {self.p.doprint(expr)}",)
            return tuple(ip(f"{b}[T - 1]", expr))
        name = s.name(target, st.over)
        assert name is not None
        return tuple(ip(name, expr))

    def _result(self, name: str, expr: Any, first: Any) -> tuple[str, ...]:
        """A fresh C-ordered array for a returned gradient, written in place (and accumulated
        into when the same result has another part)."""
        weight = name.removeprefix("dE_d")
        if name in self.fresh:
            return (f"{name} += {self.p.doprint(expr)}",)
        self.fresh.add(name)
        lines = [f"{name} = np.empty_like({weight}, order='C')", *self.p.inplace(name, expr)]
        if first is not None:
            lines.append(f"{name} += {self.p.doprint(first)}")
        return tuple(lines)

    def block(self, st: Statement) -> Block:
        return Block(self.comment(st), self.lines(st))


def _loop(
    plan: LoopPlan,
    printer: _Printer,
    statements: Sequence[Statement],
    where: str,
    key: str,
    transposed: dict[str, str],
) -> Loop:
    """A step-by-step recurrence: its per-step views (what it writes first, then what it reads:
    step t + 1's, then step t's) and its in-place body."""
    t = m.t
    views: dict[str, tuple[str, str]] = {}  # loop variable → (array, slice)
    ordered = [
        *(st.target for st in statements),
        *sorted(
            {s for st in statements for s in st.expr.atoms(sp.MatrixSymbol)},
            key=lambda s: (plan.step_of(s) is None or plan.step_of(s)[1] != t + 1, str(s)),  # type: ignore[index]
        ),
    ]
    for s in ordered:
        found = plan.step_of(s)
        if found is None or found[1] == t - 1:
            continue
        b, k = found
        name = printer.storage.name(s, where)
        assert name is not None
        if where == "forward":
            views.setdefault(name, (b, ""))
        else:
            views.setdefault(name, (b, "[:0:-1]" if k == t + 1 else "[-2::-1]"))
    names = list(views)
    local = ", ".join(f"{views[n][0]}{views[n][1]}" for n in names)
    cached = ", ".join(f'arrays["{views[n][0]}"]{views[n][1]}' for n in names)
    comments: list[str] = []
    lines: list[str] = []
    for st in statements:
        comments.extend(printer.comment(st))
        copies = {}
        for w, n in transposed.items():
            rows, cols = _shape(plan, w)
            copies[sp.Transpose(sp.MatrixSymbol(w, rows, cols))] = sp.MatrixSymbol(n, cols, rows)
        expr = st.expr.xreplace(copies)
        lines.extend(printer.lines(Statement(st.labels, st.target, expr, st.over)))
    return Loop(
        ", ".join(names),
        f"zip({local}, strict=True)",
        key,
        f"list(zip({cached}, strict=True))",
        tuple(comments),
        tuple(lines),
        f'w["{key}"]',
    )


def _lanes(
    plan: LoopPlan, printer: _Printer, statements: Sequence[Statement], transposed: dict[str, str]
) -> Loop:
    """Truncated BPTT for Σ_t E_t: at step t, lane a holds δ^(t+a)_t, the share of the loss
    step t + a, for a = 0 … K − 1 (K = min(_WINDOW, T)). Lane 0 is the seed, already in δ_t;
    lanes 1 … K − 1 are lanes 0 … K − 2 of step t + 1 carried back, all in one matrix product
    ((K − 1)·B rows) and one product with step t's factors; δ_t becomes the sum of its lanes, and
    the sums over steps then sum over every window. Two lane stacks alternate."""
    (st,) = statements
    t = m.t
    expr = st.expr
    if not isinstance(expr, sp.HadamardProduct):
        raise GenerationError(f"a windowed recurrence needs a ⊙ of the carried part: {expr}")
    reads = [
        a
        for a in expr.args
        if any(
            (f := plan.step_of(x)) is not None and f[1] == t + 1 for x in a.atoms(sp.MatrixSymbol)
        )
    ]
    if len(reads) != 1:
        raise GenerationError(f"a windowed recurrence needs one carried factor: {expr}")
    carried = reads[0]
    others = [a for a in expr.args if a is not carried]
    copies = {}
    for w, n in transposed.items():
        rows, cols = _shape(plan, w)
        copies[sp.Transpose(sp.MatrixSymbol(w, rows, cols))] = sp.MatrixSymbol(n, cols, rows)
    b = printer.storage.base(st.target)
    lane_names = {}
    for x in carried.atoms(sp.MatrixSymbol):
        found = plan.step_of(x)
        if found is not None and found[1] == t + 1:
            lane_names[x] = sp.MatrixSymbol("lanes_next", *x.shape)
    product = printer.storage.rename(carried.xreplace(copies).xreplace(lane_names), "backward")
    lines = [*printer.p.inplace("lanes_rows", product)]
    factor_views: dict[str, str] = {}
    for f in others:
        renamed = printer.storage.rename(f, "backward")
        for x in f.atoms(sp.MatrixSymbol):
            found = plan.step_of(x)
            if found is not None and found[1] == t:
                factor_views[f"{found[0]}_t"] = found[0]
        lines.append(f"lanes_rest *= {printer.p.doprint(renamed)}")
    lines += [f"np.copyto(lanes_first, {b}_t)", f"{b}_t += lanes_rest.sum(axis=0)"]
    views = ", ".join(f'arrays["{a}"][-2::-1]' for a in factor_views.values())
    names = ", ".join(
        ["lanes_rows", "lanes_next", "lanes_rest", "lanes_first", f"{b}_t", *factor_views]
    )
    cached = (
        f'list(zip(*_lane_views(arrays["lanes"], B, T), arrays["{b}"][-2::-1], {views}, '
        "strict=True))"
    )
    return Loop(
        names,
        "",
        "window_steps",
        cached,
        (*printer.comment(st), f"# {st.labels[0]}: every loss step's window at once, in lanes"),
        tuple(lines),
        'w["window_steps"]',
        (
            'lanes = w["lanes"]',
            f"np.copyto(lanes[1][0], {b}[T - 1])  # the last step: its own seed only",
            "lanes[1][1:] = 0",
        ),
    )


def _shape(plan: LoopPlan, weight: str) -> tuple[Any, Any]:
    return next(w.shape for w in plan.weights if w.name == weight)


_NAME = re.compile(r"\b[A-Za-z_]\w*\b")


def _locals(
    lines: Sequence[str], buffers: Sequence[str], matrices: Sequence[str]
) -> tuple[str, ...]:
    """Definitions of the names the printed lines use: sizes, stacked views, workspace arrays
    (only those used, so generated code has no unused variables)."""
    known = [
        ("T", "x.shape[0]"),
        ("B", "x.shape[1]"),
        ("x2", "x.reshape(T * B, -1)"),
        ("d2", "d.reshape(T * B, -1)"),
        *((n, f'w["{n}"]') for b in buffers for n in (b, f"{b}2")),
        *((n, f'w["{n}"]') for n in matrices),
    ]
    used = {w for ln in lines for w in _NAME.findall(ln)}
    for name, definition in reversed(known):  # a definition's own names are needed too
        if name in used:
            used |= set(_NAME.findall(definition))
    return tuple(f"{name} = {definition}" for name, definition in known if name in used)


def context(
    d: Derivation, plan: LoopPlan, text_: ModelText, printer: BPTTNumPyPrinter, name: str
) -> LoopContext:
    pr = _Printer(plan, printer)
    s = pr.storage
    state_statements = [st for st in plan.forward if st.over == "forward"]
    input_part = tuple(pr.block(st) for st in plan.forward if st.over != "forward")
    state_loop = _loop(plan, pr, state_statements, "forward", "state_steps", {})
    output = tuple(
        Block(
            pr.comment(st), (f"{s.base(st.target)}2 = {printer.doprint(s.rename(st.expr, 'all'))}",)
        )
        for st in plan.outputs
    )
    loss = tuple(pr.block(st) for st in plan.loss)
    head = [pr.block(st) for st in plan.backward if st.over not in ("backward", "window")]
    steps = [st for st in plan.backward if st.over in ("backward", "window")]
    transposed: dict[str, str] = {}
    for st in steps:
        for node in sp.preorder_traversal(st.expr):
            if isinstance(node, sp.Transpose) and node.arg in plan.weights:
                transposed[str(node.arg.name)] = f"{node.arg.name}T"
    for w, wt in transposed.items():
        head.append(
            Block(
                (
                    f"# {steps[0].labels[0]}: {w}ᵀ of the recurrence below, as a contiguous copy "
                    f"when (T − 1)·B ≥ {COPY_ROWS}",
                    "# (BLAS is often faster on the copy, but the transposing copy can cost 2 ns "
                    "an entry)",
                ),
                (
                    f"{wt} = {w}.T",
                    f"if (T - 1) * B >= {COPY_ROWS}:",
                    f"    np.copyto({wt}_copy, {w}.T)",
                    f"    {wt} = {wt}_copy",
                ),
            )
        )
    windowed = [st for st in steps if st.over == "window"]
    if not windowed:
        backward_loop = _loop(plan, pr, steps, "backward", "delta_steps", transposed)
    elif plan.loss_steps == "last":  # E_T alone: the recurrence stops K − 1 steps back
        loop = _loop(plan, pr, steps, "backward", "delta_steps", transposed)
        target = s.base(steps[0].target)
        backward_loop = replace(
            loop,
            source=f'w["{loop.key}"][: _WINDOW - 1]',
            after=(f"{target}[: max(T - _WINDOW, 0)] = 0  # beyond E_T's window",),
        )
    else:
        backward_loop = _lanes(plan, pr, steps, transposed)
    gradient_blocks = tuple(pr.block(st) for st in plan.gradients)

    dims = {b: str(size) for b, size in plan.bases.items()}
    buffers = tuple((b, dims[b]) for b in plan.bases if b in s.buffered)
    once = [st.target for st in plan.backward if st.over == "once"]
    matrices: list[tuple[str, str, str]] = [
        (str(t.name), str(t.shape[0]), str(t.shape[1])) for t in once
    ]
    for w, wt in transposed.items():
        rows, cols = _shape(plan, w)
        matrices.append((f"{wt}_copy", str(cols), str(rows)))
    buffer_names = [b for b, _ in buffers]
    matrix_names = [m_ for m_, _, _ in matrices]
    loss_lines = [ln for b in loss for ln in b.lines]
    gradient_lines = [
        *loss_lines,
        *(ln for b in (*head, *gradient_blocks) for ln in b.lines),
        *backward_loop.lines,
    ]
    state_buffers = tuple(
        b
        for b in plan.bases
        if b in s.buffered and any(s.base(st.target) == b for st in plan.forward)
    )
    state_lines = [ln for b in input_part for ln in b.lines]
    fields = base(
        d,
        text_,
        _all(plan),
        printer,
        name=name,
        template=TEMPLATE,
        title="BPTT gradients of the lecture's RNN for any sequence length T",
        loop=True,
        about="Written for speed: what does not depend on the previous step (x̄_t W_x, the "
        "outputs, g_t W_yᵀ, Φ') for all steps in one matrix product or ufunc, the recurrences "
        "step by step and in place, each weight gradient one matrix product over the stacked "
        "time×batch axis. loss() and gradients() keep their large scratch arrays (a few T×B×n "
        "arrays) per thread for the last sizes used, so repeated calls allocate little beyond "
        "the gradients they return.",
    )
    (state,) = plan.states
    return LoopContext(
        **fields,
        buffers=buffers,
        matrices=tuple(matrices),
        state_buffers=state_buffers,
        state_alloc=tuple(
            f"{b} = np.empty((T, B, {SIZE_CODE[dims[b]]}), dtype=x.dtype)" for b in state_buffers
        ),
        state_locals=tuple(
            f"{b}2 = {b}.reshape(T * B, -1)"
            for b in ("x", *state_buffers)
            if any(re.search(rf"\b{b}2\b", ln) for ln in state_lines)
        ),
        input_part=input_part,
        state_loop=state_loop,
        output=output,
        output_return=", ".join(
            (
                state,
                *(
                    f"{s.base(st.target)}2.reshape(T, B, -1)"
                    for st in plan.outputs
                    if s.base(st.target) in plan.outputs_returned
                ),
            )
        ),
        loss_locals=_locals(loss_lines, buffer_names, matrix_names),
        loss=loss,
        gradients_locals=_locals(gradient_lines, buffer_names, matrix_names),
        backward_head=tuple(head),
        backward_loop=backward_loop,
        gradient_blocks=gradient_blocks,
        results=", ".join(("E", *(f"dE_d{w.name}" for w in plan.weights))),
        lanes_dim=(
            dims[s.base(steps[0].target)]  # type: ignore[index]
            if backward_loop.key == "window_steps"
            else ""
        ),
    )
