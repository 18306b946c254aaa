"""Stage 5 (code plan, loop form): any number of steps T, from the derivation's generic step.

Contract: :func:`plan` turns a :class:`~derive.derivation.Derivation` into a :class:`LoopPlan`,
statements over generic step symbols, using only the statement's equations and the generic forms
of :mod:`derive.closed_form` (the lines at t = N and t < N, and ∂E/∂W as sums over steps):

* forward: the equations with the named intermediates substituted; what reads the previous
  step's state runs step by step, and every piece of it that does not (x̄_t W_x) is hoisted out
  to be computed for every step at once; the outputs for every step at once;
* loss: ȳ_t and the residual d̄_t − ȳ_t at the loss's steps, then E (Eq. 35);
* backward: a named adjoint that reads nothing of step t + 1 (g_t) for every step at once; one
  that does (δ_t) step by step from T − 1 down to 1, again with every piece that does not read
  step t + 1 (g_t W_yᵀ, Φ'(z̄_t)) hoisted out; its line at t = N, reusing the hoisted pieces;
* gradients: each sum over steps.

A number times an array computed for every step (g_t = −2 e_t for a linear output) is not
formed: the number moves onto the weight it meets (e_t (−2 W_y)ᵀ) or onto the sum. Storage is
the backend's business; nothing here says how arrays are laid out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import activations as acts
from derive import labels, ops
from derive import model as m
from derive.codegen.plan import Statement, code_equations, loss_at, loss_node, through_outputs
from derive.derivation import Derivation
from derive.errors import GenerationError


@dataclass(frozen=True)
class LoopPlan:
    """What a loop module computes, function by function (see the module docstring)."""

    bases: dict[str, Any]  # every per-step quantity of the plan: name → row length
    states: tuple[str, ...]
    inputs: tuple[str, ...]
    targets: tuple[str, ...]
    weights: tuple[sp.MatrixSymbol, ...]
    loss_steps: str  # "all" or "last"
    outputs_returned: tuple[str, ...]  # what forward() returns besides the states (ȳ)
    forward: tuple[Statement, ...]
    outputs: tuple[Statement, ...]
    loss: tuple[Statement, ...]
    backward: tuple[Statement, ...]
    gradients: tuple[Statement, ...]

    def step_of(self, symbol: Any) -> tuple[str, Any] | None:
        """(base, step) of a per-step symbol of this plan (``delta_t + 1`` → ("delta", t + 1))."""
        base, sep, index = str(getattr(symbol, "name", "")).rpartition("_")
        if not sep or base not in self.bases:
            return None
        return base, sp.sympify(index, locals=m.INDICES)


class _Builder:
    def __init__(self, d: Derivation) -> None:
        self.d = d
        self.stmt = d.statement
        self.bases: dict[str, Any] = {
            q.name: q.size for q in self.stmt.quantities.values() if q.role != "loss"
        }
        self.hoisted: dict[Any, str] = {}  # generic expression at t → base name
        self.hoist_defs: list[Statement] = []

    def at(self, base: str, k: Any) -> sp.MatrixSymbol:
        return sp.MatrixSymbol(f"{base}_{sp.sstr(k)}", 1, self.bases[base])

    def step(self, e: Any) -> Any:
        found = m.step_of(e) if isinstance(e, sp.MatrixSymbol) else None
        if found is None and isinstance(e, sp.MatrixSymbol):
            base, _, index = str(e.name).rpartition("_")
            if base in self.bases:
                return sp.sympify(index, locals=m.INDICES)
        return None if found is None else found[1]

    def instantiate(self, e: Any, values: dict[Any, Any]) -> Any:
        """``e`` with the steps of every per-step symbol substituted (``{t: N}``)."""
        mapping = {}
        for s in e.atoms(sp.MatrixSymbol):
            k = self.step(s)
            if k is not None and (new := k.xreplace(values)) != k:
                mapping[s] = self.at(str(s.name).rpartition("_")[0], new)
        return e.xreplace(mapping)

    def bases_in(self, e: Any) -> set[str]:
        return {
            str(s.name).rpartition("_")[0]
            for s in e.atoms(sp.MatrixSymbol)
            if self.step(s) is not None
        }

    def steps_in(self, e: Any) -> set[Any]:
        return {k for s in e.atoms(sp.MatrixSymbol) if (k := self.step(s)) is not None}

    # -- hoisting: pieces of a step's statement that do not read the neighbouring step --------

    def _name(self, e: Any) -> str:
        if isinstance(e, ElementwiseApplyFunction):
            fn = acts.applied_function(e)
            stem = "dphi" if fn in (acts.dPhi, self.stmt.config.act.dphi_of_output) else "f"
        elif isinstance(e, sp.MatMul):
            ms = e.as_coeff_matrices()[1]
            weight = ms[-1].arg if isinstance(ms[-1], sp.Transpose) else ms[-1]
            row = (
                str(ms[0].name).rpartition("_")[0] if isinstance(ms[0], sp.MatrixSymbol) else "tmp"
            )
            stem = f"{row}{weight}{'T' if isinstance(ms[-1], sp.Transpose) else ''}"
        else:
            stem = "tmp"  # not a quantity's name (h̄ is the LSTM's state)
        name, k = stem, 1
        while name in self.bases:
            k += 1
            name = f"{stem}{k}"
        return name

    def hoist(self, e: Any, reads: Any, label: str, stepwise: frozenset[str] = frozenset()) -> Any:
        """``e`` with every largest piece that reads no step ``reads`` nor a ``stepwise``
        quantity (one computed step by step: a gated cell's δ^z_t reads its δ^s_t) and does
        work (a product or a function) replaced by a per-step array computed for every step
        at once."""
        if not ops.is_matrix(e) or isinstance(e, sp.MatrixSymbol):
            return e
        if (
            reads not in self.steps_in(e)
            and self.steps_in(e) == {m.t}
            and _work(e)
            and not self.bases_in(e) & stepwise
        ):
            if e not in self.hoisted:
                name = self._name(e)
                self.bases[name] = e.shape[1]
                self.hoisted[e] = name
                self.hoist_defs.append(Statement((label,), self.at(name, m.t), e, "all"))
            return self.at(self.hoisted[e], m.t)
        args = [self.hoist(a, reads, label, stepwise) if ops.is_matrix(a) else a for a in e.args]
        return e.func(*args) if args != list(e.args) else e

    def reuse(self, e: Any, k: Any) -> Any:
        """``e`` at step k with every hoisted piece replaced by its array at k."""
        return e.xreplace(
            {self.instantiate(x, {m.t: k}): self.at(n, k) for x, n in self.hoisted.items()}
        )


def _work(e: Any) -> bool:
    return any(
        isinstance(n, sp.MatMul | ElementwiseApplyFunction) for n in sp.preorder_traversal(e)
    )


def _inline_hidden(stmt: m.Statement, keep: set[Any]) -> list[m.Equation]:
    """The forward equations with every named intermediate (z̄_t, ō_t) substituted, except
    those in ``keep`` (what the loss reads: ō_t for cross-entropy) and those read more than
    once (the GRU's ū_t; a gate's pre-activation, which the overflow-safe σ reads twice), which
    are computed once, as statements of their own."""
    equations = code_equations(stmt)
    reads: dict[Any, int] = {}
    for eq in equations:
        for node in sp.preorder_traversal(eq.rhs):
            if isinstance(node, sp.MatrixSymbol):
                reads[node] = reads.get(node, 0) + 1
    for eq in equations:
        for node in sp.preorder_traversal(eq.rhs):
            gate = isinstance(node, ElementwiseApplyFunction) and acts.applied_function(node) in (
                acts.Sigma,
                acts.Tanh,
            )
            if gate and node.expr in reads:
                # a gate's function as code runs it may read its argument more than once (the
                # overflow-safe σ): then the argument counts as read so many times (Φ's
                # argument, the RNN's z̄_t, stays inlined: its loop kernels expect that)
                body = acts.bound(acts.applied_function(node), stmt.config.act, "numeric_phi")
                if isinstance(body, sp.Lambda):
                    (var,) = body.variables
                    uses = sum(1 for n in sp.preorder_traversal(body.expr) if n == var)
                    reads[node.expr] += max(0, uses - 1)
    hidden = {
        eq.target: eq.rhs
        for eq in equations
        if stmt.quantities[m.step_of(eq.target)[0]].role == "hidden"  # type: ignore[index]
        and eq.target not in keep
        and reads.get(eq.target, 0) <= 1
    }
    out = []
    for eq in equations:
        if eq.target not in hidden:
            rhs = eq.rhs
            while rhs.atoms(sp.MatrixSymbol) & set(hidden):
                rhs = rhs.xreplace(hidden)
            out.append(m.Equation(eq.label, eq.target, rhs))
    return out


def _adjoint_label(name: str) -> str:
    return {"g": labels.OUTPUT_GRADIENT, "delta": labels.DELTA}.get(name, labels.DELTA)


def plan(d: Derivation) -> LoopPlan:
    b = _Builder(d)
    stmt, t, N = b.stmt, m.t, m.N
    every = d.config.loss_steps == "all"
    states = stmt.names("state")

    # Forward: what reads the previous step step by step, the rest for every step at once.
    node = loss_node(stmt)
    forward_steps, outputs = [], []
    inlined = _inline_hidden(stmt, node.atoms(sp.MatrixSymbol))
    # Step by step: what depends on step t − 1 (directly or through this step's quantities)
    # and a state of step t needs (the GRU's ū_t; the LSTM's h̄_t reads c̄_t); what depends on
    # it but no state needs (ȳ_t) follows for every step at once.
    base_of = {eq.target: str(eq.target.name).rpartition("_")[0] for eq in inlined}
    later: set[str] = set()
    for eq in inlined:
        if t - 1 in b.steps_in(eq.rhs) or b.bases_in(b.instantiate(eq.rhs, {t: t})) & later:
            later.add(base_of[eq.target])
    needed = set(states)
    for eq in reversed(inlined):
        if base_of[eq.target] in needed:
            needed |= {
                str(s.name).rpartition("_")[0]
                for s in eq.rhs.atoms(sp.MatrixSymbol)
                if b.step(s) == t
            }
    looped = later & needed
    for eq in inlined:
        if str(eq.target.name).rpartition("_")[0] in looped:
            rhs = b.hoist(eq.rhs, t - 1, eq.label, frozenset(looped))
            forward_steps.append(Statement((eq.label,), eq.target, rhs, "forward"))
        else:
            outputs.append(Statement((eq.label,), eq.target, eq.rhs, "all"))
    forward = [*b.hoist_defs, *forward_steps]
    b.hoist_defs = []

    # Loss (Eq. 35) at the loss's steps, from the loss operation's code form: what its value and
    # its pullback share (the residual e = d̄ − ȳ of the squared error), then E = Σ value.
    where, k = ("all", t) if every else ("last", N)
    at_k = loss_at(stmt, k)
    value, errors = at_k.total(None), {}
    if at_k.shared is not None:
        b.bases["e"] = at_k.shared.shape[1]
        value = at_k.total(b.at("e", k))
        errors = {loss_at(stmt, j).shared: b.at("e", j) for j in (t, N)}
    loss = [
        Statement((labels.LOSS,), sp.MatrixSymbol("E", 1, 1), value, "sum" if every else "last")
    ]
    if at_k.shared is not None:
        loss.insert(0, Statement((labels.LOSS,), b.at("e", k), at_k.shared, where))
    reads = {s for st in loss for s in st.expr.atoms(sp.MatrixSymbol)}
    for st in reversed(outputs):  # what the loss reads of the outputs, at the loss's steps
        at_loss = b.instantiate(st.target, {t: k})
        if at_loss in reads:
            loss.insert(0, Statement(st.labels, at_loss, b.instantiate(st.expr, {t: k}), where))
            reads |= b.instantiate(st.expr, {t: k}).atoms(sp.MatrixSymbol)

    def prepared(line: Any) -> Any:
        return through_outputs(line, stmt).xreplace(errors)

    # Backward: the generic step's lines.
    gen = d.closed.generic
    window = d.config.truncate
    if window is None:
        backward_all, backward_last, backward_steps = _full(b, gen, every, prepared)
    else:
        backward_all, backward_last, backward_steps = _windowed(b, gen, every, prepared)
    hoisted = b.hoist_defs

    # Every quantity the backward pass reads but neither the forward pass nor the loss computed
    # (z̄_t when Φ' cannot be written through s̄_t; ȳ_t when the loss read ō_t), from the model.
    kept = {
        st.target
        for st in [*forward, *loss, *backward_all, *hoisted, *backward_steps, *backward_last]
    }
    given = {*states, *stmt.names("input"), *stmt.names("target")}
    recomputed = _recompute(
        b, [*hoisted, *backward_all, *backward_last, *backward_steps], kept, given
    )

    # ∂E/∂W: each sum over steps (or its term at t = N alone). Truncated, δ_t holds every loss
    # step's share at step t (Σ_u δ^(u)_t), so the sums over windows are sums over steps.
    sums = []
    for w in stmt.weights:
        # the lecture's labels (Eq. 37 …) state the RNN's sums; a cell's are R7, W_y's too
        label_pair = (
            labels.SUM_LABELS[w.name] if d.config.cell == "rnn" else (labels.PARAMETER_COLLECTED,)
        )
        parts = gen.sums[w.name] if window is None else gen.lane_sums[w.name]
        for part in parts:
            target = sp.MatrixSymbol(f"dE_d{w.name}", *w.shape)
            over = "last" if part.steps == "last" or (part.steps == "own" and not every) else "sum"
            summand = part.summand
            if over == "last" and window is not None:
                summand = m.instantiate(summand, {t: N})
            sums.append(Statement(label_pair, target, ops.tidy(prepared(summand)), over))

    backward = [
        *_in_order(b, [*recomputed, *backward_all, *hoisted]),
        *backward_last,
        *backward_steps,
    ]
    backward, sums = _fold(b, backward, sums)
    return LoopPlan(
        bases=dict(b.bases),
        states=states,
        inputs=stmt.names("input"),
        targets=stmt.names("target"),
        weights=stmt.weights,
        loss_steps=d.config.loss_steps,
        outputs_returned=stmt.names("output"),
        forward=tuple(forward),
        outputs=tuple(outputs),
        loss=tuple(loss),
        backward=tuple(backward),
        gradients=tuple(sums),
    )


def _full(
    b: _Builder, gen: Any, every: bool, prepared: Any
) -> tuple[list[Statement], list[Statement], list[Statement]]:
    """Full BPTT: an adjoint that reads nothing of step t + 1 (g_t) for every step at once, one
    that does (δ_t) step by step with its other pieces hoisted, its line at t = N reusing them."""
    t, N = m.t, m.N
    step_lines = {line.target: prepared(line.expression) for line in gen.step}
    last_lines = {line.target: prepared(line.expression) for line in gen.last}
    backward_all, backward_steps, backward_last = [], [], []
    # Step by step: what reads step t + 1, and what reads that at step t (a gated cell's δ^z_t
    # reads δ^s_t); the sweep's order is an evaluation order.
    stepwise: set[str] = set()
    for target, expr in step_lines.items():
        if t + 1 in b.steps_in(expr) or b.bases_in(b.instantiate(expr, {t: t})) & stepwise:
            stepwise.add(str(target.name).rpartition("_")[0])
    for target, expr in step_lines.items():
        label = _adjoint_label(str(target.name).rpartition("_")[0])
        at_n = b.instantiate(target, {t: N})
        base = str(target.name).rpartition("_")[0]
        if base not in stepwise:  # reads nothing of step t + 1: every step at once
            if last_lines.get(at_n) != b.instantiate(expr, {t: N}):
                raise GenerationError(f"{target} differs at t = N: {last_lines.get(at_n)}")
            backward_all.append(Statement((label,), target, expr, "all"))
        else:
            hoisted = b.hoist(expr, t + 1, label, frozenset(stepwise))
            backward_steps.append(Statement((label,), target, hoisted, "backward"))
    covered = {b.instantiate(st.target, {t: N}) for st in backward_all}
    for target, expr in last_lines.items():
        if target not in covered:
            label = _adjoint_label(str(target.name).rpartition("_")[0])
            backward_last.append(Statement((label,), target, b.reuse(expr, N), "last"))
    return backward_all, backward_last, backward_steps


def _windowed(
    b: _Builder, gen: Any, every: bool, prepared: Any
) -> tuple[list[Statement], list[Statement], list[Statement]]:
    """Truncated BPTT: each loss step u's adjoints start at t = u from its seed lines and are
    carried back K − 1 steps. The seed lines hold for every loss step at once (``all``, or at
    t = N alone for E_N); the carry lines run over a ``window`` of K steps per loss step (for
    Σ_t E_t, every loss step's window at once); their other pieces are hoisted as before."""
    t, N = m.t, m.N
    carry = [
        Statement(
            (_adjoint_label(str(line.target.name).rpartition("_")[0]),),
            line.target,
            b.hoist(prepared(line.expression), t + 1, labels.DELTA),
            "window",
        )
        for line in gen.carry
    ]
    seeds = []
    for line in gen.seed:
        label = _adjoint_label(str(line.target.name).rpartition("_")[0])
        if every:
            seeds.append(
                Statement((label,), line.target, b.reuse(prepared(line.expression), t), "all")
            )
        else:
            target = m.instantiate(line.target, {t: N})
            expr = b.reuse(prepared(m.instantiate(line.expression, {t: N})), N)
            seeds.append(Statement((label,), target, expr, "last"))
    return (seeds, [], carry) if every else ([], seeds, carry)


def _in_order(b: _Builder, statements: list[Statement]) -> list[Statement]:
    """The statements, each after those whose quantities it reads (stable otherwise)."""
    base = {id(st): str(st.target.name).rpartition("_")[0] for st in statements}
    out: list[Statement] = []
    todo = list(statements)
    while todo:
        for st in todo:
            reads = {str(s.name).rpartition("_")[0] for s in st.expr.atoms(sp.MatrixSymbol)}
            waiting = [o for o in todo if o is not st and base[id(o)] in reads]
            if not waiting:
                out.append(st)
                todo.remove(st)
                break
        else:
            raise GenerationError(f"statements read each other: {todo}")
    return out


def _recompute(
    b: _Builder, statements: list[Statement], kept: set[Any], given: set[str]
) -> list[Statement]:
    """Statements of the quantities ``statements`` read but no earlier statement computes, from
    the model's equations (the forward pass's hoisted pieces reused): for every step at once,
    or at the last step alone for what is read there only."""
    out: list[Statement] = []
    defined = {eq.target: eq for eq in b.stmt.equations}
    every = {found[0] for s in kept if (found := m.step_of(s)) is not None and found[1] == m.t}
    todo = [s for st in statements for s in sorted(st.expr.atoms(sp.MatrixSymbol), key=str)]
    while todo:
        sym = todo.pop()
        found = m.step_of(sym)
        if found is None or found[0] in given or found[0] in every or sym in kept:
            continue
        name, step = found
        eq = defined.get(m.at(name, m.t))
        if eq is None:
            raise GenerationError(f"the backward pass reads {sym}, which nothing computes")
        kept.add(sym)
        if step == m.N:
            target, rhs, over = sym, b.reuse(m.instantiate(eq.rhs, {m.t: m.N}), m.N), "last"
        else:
            target, rhs, over = eq.target, b.reuse(eq.rhs, m.t), "all"
        if any(st.target == target for st in out):
            continue  # u_t for every step covers u_{t+1}
        kept.add(target)
        out.insert(0, Statement((eq.label,), target, rhs, over))
        todo.extend(sorted(rhs.atoms(sp.MatrixSymbol), key=str))
    # what is computed for every step covers its value at the last step
    everywhere = {b.instantiate(st.target, {m.t: m.N}) for st in out if st.over == "all"}
    return [st for st in out if not (st.over == "last" and st.target in everywhere)]


def _fold(
    b: _Builder, backward: list[Statement], sums: list[Statement]
) -> tuple[list[Statement], list[Statement]]:
    """An array for every step that is only a number times another (g_t = c e_t) is not formed:
    its number moves onto the weight it is multiplied with, or in front of the sum."""
    out: list[Statement] = []
    substitute: dict[Any, Any] = {}
    folded_labels: dict[Any, tuple[str, ...]] = {}
    once: list[Statement] = []
    for st in backward:
        folded = [folded_labels[s] for s in st.expr.atoms(sp.MatrixSymbol) if s in folded_labels]
        expr = ops.tidy(st.expr.xreplace(substitute))
        if st.over == "all" and isinstance(expr, sp.MatMul):
            coeff, ms = expr.as_coeff_matrices()
            if coeff != 1 and len(ms) == 1 and isinstance(ms[0], sp.MatrixSymbol):
                substitute[st.target] = expr
                substitute[b.instantiate(st.target, {m.t: m.N})] = b.instantiate(expr, {m.t: m.N})
                folded_labels[st.target] = st.labels
                continue
            weights = [a for a in ms if not b.steps_in(a)]
            if coeff != 1 and weights and ms[-len(weights) :] == weights and len(weights) < len(ms):
                name = "c" + "".join(
                    str((a.arg if isinstance(a, sp.Transpose) else a).name) for a in weights
                )
                scaled = [a.arg if isinstance(a, sp.Transpose) else a for a in weights]
                if len(weights) == 1:
                    w = scaled[0]
                    cw = sp.MatrixSymbol(name, *w.shape)
                    labels_ = folded[0] if folded else st.labels
                    once.append(Statement(labels_, cw, sp.MatMul(coeff, w), "once"))
                    factor = cw.T if isinstance(weights[0], sp.Transpose) else cw
                    expr = ops.mul(*ms[: -len(weights)], factor)
        out.append(replace(st, expr=expr))
    folded_sums = [replace(st, expr=ops.tidy(st.expr.xreplace(substitute))) for st in sums]
    return [*once, *out], folded_sums
