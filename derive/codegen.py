"""Stage 5→6: from closed forms to the printed statements of a NumPy gradient module.

Contract: :func:`module_source` turns a configuration into the formatted source of a module with
the interface ``forward``, ``loss``, ``gradients``, ``Gradients``, ``CONFIG`` (see the templates).
Two forms:

* straight-line (``loop=False``): exactly N steps, no loop over time; the forward pass of
  Eq. 33–35 step by step and the *expanded* closed forms, one statement per chain-rule term
  (Eq. 38–40, 43–45 for the lecture's case) and their sums, shared factors computed once
  (common subexpressions named ``_t0, _t1, …``);
* loop (``loop=True``): any T; x̄_t W_x for all steps in one matrix product, the recurrence of
  Eq. 33, the δ recurrence (R2) and each weight gradient as one matrix product over the stacked
  time×batch axis (R3–R5).

Every expression is printed by :class:`~derive.printing.numpy.BPTTNumPyPrinter` from the
derivation; the decisions about *which* expression goes where (hoisting, the stacked sums,
Φ' written through s̄_t) are made here in Python, and the templates only arrange the lines.
Arrays in generated code are row-stacked: a step's rows are the batch, so the lecture's row
vector formulas apply to a whole batch unchanged.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import labels
from derive import model as m
from derive.derivation import Derivation, derive
from derive.printing.numpy import BPTTNumPyPrinter
from derive.printing.text import text
from derive.render import format_python, render

Expr: TypeAlias = sp.MatrixExpr


@dataclass(frozen=True)
class Statement:
    """``target = expression`` as printed text."""

    target: str
    expression: str


@dataclass(frozen=True)
class Block:
    """Statements under comment lines; the first comment line cites an equation label."""

    comments: tuple[str, ...]
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class ModuleContext:
    """Everything a module template needs, already printed."""

    name: str
    template: str
    title: str
    description: tuple[str, ...]
    config_items: tuple[tuple[str, str], ...]
    steps: int | None
    loss_doc: str
    helpers: tuple[str, ...]
    # straight-line form: the steps' rows taken out of x and d, per function
    forward_inputs: tuple[Statement, ...]
    loss_inputs: tuple[Statement, ...]
    gradient_inputs: tuple[Statement, ...]
    forward_blocks: tuple[Block, ...]
    forward_return: str
    loss_blocks: tuple[Block, ...]
    loss_target: str
    gradient_blocks: tuple[Block, ...]
    # loop form
    loop_forward: tuple[Block, ...]
    loop_state: tuple[str, ...]
    loop_output: tuple[Block, ...]
    loop_loss: tuple[Block, ...]
    loop_backward_head: tuple[Block, ...]
    loop_backward_step: tuple[str, ...]
    loop_gradients: tuple[Block, ...]


# ---------------------------------------------------------------------------------------------
# Small tools on matrix expressions.


def rename(expr: Expr, names: dict[sp.MatrixSymbol, str]) -> Expr:
    """Replace model symbols by symbols named after the code that holds them."""
    return expr.xreplace({k: sp.MatrixSymbol(v, *k.shape) for k, v in names.items()})


def dphi_through_states(expr: Expr, act: m.Activation, steps: Iterable[int]) -> Expr:
    """Φ'(z̄_t) → Φ'(s̄_t) written in the output, where the activation allows (1 − s̄_t² for tanh).

    Generated code then needs neither z̄_t nor a second evaluation of Φ.
    """
    if act.dphi_of_output is None:
        return expr
    return expr.xreplace(
        {m.dphi(m.z(t)): ElementwiseApplyFunction(act.dphi_of_output, m.s(t)) for t in steps}
    )


def _is_matrix(e: object) -> bool:
    return bool(getattr(e, "is_Matrix", False))


def _is_leaf(e: Expr) -> bool:
    return isinstance(e, sp.MatrixSymbol) or (
        isinstance(e, sp.Transpose) and isinstance(e.arg, sp.MatrixSymbol)
    )


def matrix_cse(
    exprs: Sequence[Expr], prefix: str = "_t"
) -> tuple[list[tuple[str, Expr]], list[Expr]]:
    """Common matrix subexpressions named ``_t0, _t1, …`` (SymPy's ``cse`` rebuilds the Lambda
    inside elementwise nodes and fails on them, and would name temporaries ``x0``, which collide
    with the inputs x̄_1, x̄_2).

    Returns (definitions in evaluation order, reduced expressions).
    """
    counts: Counter[Expr] = Counter()

    def count(e: Expr) -> None:
        if _is_leaf(e):
            return
        counts[e] += 1
        if counts[e] > 1:
            return
        for a in e.args:
            if _is_matrix(a):
                count(a)

    for e in exprs:
        count(e)
    repeated = {e for e, c in counts.items() if c > 1}
    names: dict[Expr, sp.MatrixSymbol] = {}
    defs: list[tuple[str, Expr]] = []

    def rebuild(e: Expr) -> Expr:
        if _is_leaf(e):
            return e
        if e in names:
            return names[e]
        args = [rebuild(a) if _is_matrix(a) else a for a in e.args]
        new = e.func(*args) if args != list(e.args) else e
        if e in repeated:
            name = f"{prefix}{len(defs)}"
            defs.append((name, new))
            names[e] = sp.MatrixSymbol(name, *e.shape)
            return names[e]
        return new

    reduced = [rebuild(e) for e in exprs]
    return defs, reduced


def _free_matrix_symbols(e: Expr) -> set[str]:
    return {s.name for s in e.atoms(sp.MatrixSymbol)}


# ---------------------------------------------------------------------------------------------


def module_name(config: m.Config, *, loop: bool) -> str:
    """A file name for a configuration: ``bptt_<activation>_<output>_<loss>_<c>_<steps>``."""
    act = re.sub(r"\W+", "", config.activation_name.lower())[:24] or "user"
    scale = str(config.scale).replace("/", "over")
    steps = "any" if loop else str(config.steps)
    return f"bptt_{act}_{config.output}_{config.loss_steps}_c{scale}_T{steps}"


def package_init(module_files: Sequence[str]) -> str:
    mods = [f[:-3] for f in module_files]
    return format_python(render("__init__.py.jinja", {"modules": mods}), "__init__.py")


def _config_items(config: m.Config, loop: bool) -> tuple[tuple[str, str], ...]:
    return (
        ("steps", "None" if loop else str(config.steps)),
        ("activation", repr(config.activation_name)),
        ("output", repr(config.output)),
        ("scale", repr(float(config.scale))),
        ("loss_steps", repr(config.loss_steps)),
    )


def _helpers(config: m.Config) -> tuple[str, ...]:
    return ("softmax",) if config.output == "softmax" else ()


def _loss_doc(config: m.Config, loop: bool) -> str:
    c = "" if config.scale == 1 else f"{config.scale} · "
    if config.loss_steps == "last":
        last = "T" if loop else str(config.steps)
        return f"E_{last} = {c}(d̄_{last} − ȳ_{last})², summed over the batch"
    return f"E = Σ_t E_t, E_t = {c}(d̄_t − ȳ_t)², summed over the batch"


def module_source(config: m.Config, *, loop: bool, name: str) -> str:
    derivation = derive(config if not loop else _loop_config(config))
    printer = BPTTNumPyPrinter(config.act)
    if loop:
        ctx = _loop_context(derivation, printer, name)
    else:
        ctx = _straight_context(derivation, printer, name)
    return format_python(render(ctx.template, ctx), f"{name}.py")


def _loop_config(config: m.Config) -> m.Config:
    """The loop form is printed from a 3-step derivation: step 3 is the last, step 2 a middle."""
    return m.Config(
        steps=3,
        activation=config.activation,
        output=config.output,
        scale=config.scale,
        loss_steps=config.loss_steps,
    )


def _empty_straight() -> dict[str, object]:
    return {
        "forward_inputs": (),
        "loss_inputs": (),
        "gradient_inputs": (),
        "forward_blocks": (),
        "forward_return": "",
        "loss_blocks": (),
        "loss_target": "",
        "gradient_blocks": (),
    }


def _empty_loop() -> dict[str, object]:
    return {
        "loop_forward": (),
        "loop_state": (),
        "loop_output": (),
        "loop_loss": (),
        "loop_backward_head": (),
        "loop_backward_step": (),
        "loop_gradients": (),
    }


# ---------------------------------------------------------------------------------------------
# The straight-line form.


def _forward_statements(d: Derivation, steps: int) -> list[tuple[str, sp.MatrixSymbol, Expr]]:
    """Eq. 33–34 at t = 1..N, renamed from the model's generic step (label, target, definition)."""
    generic = {sym.name: (label, sym, expr) for label, sym, expr in d.forward}
    out = []
    for t in range(1, steps + 1):
        names = {
            "x_t": m.x(t),
            "s_prev_t": m.s(t - 1),
            "z_t": m.z(t),
            "s_t": m.s(t),
            "o_t": m.o(t),
            "y_t": m.y(t),
            "d_t": m.d(t),
        }
        sub = {
            sym: names[sym.name]
            for _, target, expr in d.forward
            for sym in expr.atoms(sp.MatrixSymbol) | {target}
            if sym.name in names
        }
        for key in ("z_t", "s_t", "o_t", "y_t"):
            label, sym, expr = generic[key]
            if key == "o_t" and d.config.output == "linear":
                continue  # ō_t is ȳ_t itself
            target = sub[sym]
            body = expr.xreplace(sub)
            if key == "y_t" and d.config.output == "linear":
                body = generic["o_t"][2].xreplace(sub)
            out.append((label, target, body))
    return out


def _loss_statements(
    d: Derivation, rows: dict[int, tuple[str, str]] | None = None
) -> list[tuple[str, sp.MatrixSymbol, Expr]]:
    """Eq. 35 summed over the loss's steps, as ``_e_t = d̄_t − ȳ_t`` and ``E = c Σ_t tr(e eᵀ)``.

    tr(e eᵀ) of a row-stacked e sums the batch's rows (the printer writes it as a dot product).
    ``rows`` renames d̄_t, ȳ_t per step (the loop form's stacked arrays).
    """
    label, _, expr = next(f for f in d.forward if f[1] == m.E_T)
    coeff, matrices = expr.as_coeff_matrices()
    err = matrices[0]  # (d̄_t − ȳ_t) of c (d̄_t − ȳ_t)(d̄_t − ȳ_t)ᵀ
    generic_d, generic_y = m.D_T, m.Y_T
    out = []
    total = sp.Integer(0)
    for t in d.config.loss_terms:
        dn, yn = rows[t] if rows else (m.d(t).name, m.y(t).name)
        e = sp.MatrixSymbol(f"_e{t}" if not rows else "_e", 1, m.n_y)
        body = err.xreplace(
            {generic_d: sp.MatrixSymbol(dn, 1, m.n_y), generic_y: sp.MatrixSymbol(yn, 1, m.n_y)}
        )
        out.append((label, e, body))
        total += sp.Trace(e * e.T)
    out.append((label, sp.MatrixSymbol("E", 1, 1), coeff * total))
    return out


def _prune(statements: list[tuple[str, sp.MatrixSymbol, Expr]], needed: set[str]) -> list:
    """Keep the statements the ``needed`` names depend on, in order."""
    keep = []
    need = set(needed)
    for st in reversed(statements):
        if st[1].name in need:
            keep.append(st)
            need |= _free_matrix_symbols(st[2])
    return list(reversed(keep))


def _blocks(
    statements: list[tuple[str, sp.MatrixSymbol, Expr]], printer: BPTTNumPyPrinter
) -> tuple[Block, ...]:
    """One block per equation label, each statement's comment its equation in plain text."""
    blocks: list[Block] = []
    for label, target, expr in statements:
        comment = f"# {label}: {text(target)} = {text(expr)}"
        st = Statement(target.name, printer.doprint(expr))
        blocks.append(Block((comment,), (st,)))
    return tuple(blocks)


def _term_labels(config: m.Config, weight: str, n_terms: int) -> tuple[list[str], str]:
    """Equation labels of a weight's terms and of their sum."""
    lecture = config.steps == 3 and config.loss_steps == "last"
    if weight == "W_y":
        lab = labels.W_Y_LECTURE if lecture else labels.W_Y_GENERAL
        return [lab] * n_terms, lab
    terms, total, general = (
        (labels.W_S_TERMS, labels.W_S_SUM, labels.W_S_GENERAL)
        if weight == "W_s"
        else (labels.W_X_TERMS, labels.W_X_SUM, labels.W_X_GENERAL)
    )
    if lecture:
        return list(terms), total
    return [general] * n_terms, general


def _leibniz(factors: Iterable[object]) -> str:
    return " · ".join(
        f"∂{_pretty(f.numerator.name)}/∂{_pretty(f.denominator.name)}"  # type: ignore[attr-defined]
        for f in factors
    )


def _pretty(name: str) -> str:
    """s_3 → s̄_3 for comments (row vectors carry a bar, as in the lecture)."""
    if name[:2] in ("x_", "s_", "y_", "d_", "z_", "o_"):
        return f"{name[0]}\u0304{name[1:]}"
    return name


def _inputs(blocks: Sequence[Block]) -> tuple[Statement, ...]:
    """``x_1 = x[0]``, ``d_3 = d[2]`` … for the inputs the blocks use."""
    used = {
        name
        for b in blocks
        for st in b.statements
        for name in re.findall(r"\b([xd])_(\d+)\b", st.expression)
    }
    return tuple(
        Statement(f"{v}_{t}", f"{v}[{int(t) - 1}]")
        for v, t in sorted(used, key=lambda p: (p[0] != "x", int(p[1])))
    )


def _stack(name: str, n: int) -> str:
    items = ", ".join(f"{name}_{t}" for t in range(1, n + 1))
    return f"np.stack(({items},))" if n == 1 else f"np.stack(({items}))"


def _straight_context(d: Derivation, printer: BPTTNumPyPrinter, name: str) -> ModuleContext:
    config, act = d.config, d.config.act
    n = config.steps
    fwd = _forward_statements(d, n)
    forward_needed = {f"s_{t}" for t in range(1, n + 1)} | {f"y_{t}" for t in range(1, n + 1)}
    loss_st = _loss_statements(d)
    # Gradients: the expanded terms with Φ' through s̄_t, cse over all of them at once.
    order = ("W_y", "W_s", "W_x")
    term_exprs: list[Expr] = []
    for w in order:
        term_exprs.extend(
            dphi_through_states(e, act, range(1, n + 1)) for e in d.closed.expanded[w]
        )
    defs, reduced = matrix_cse(term_exprs)
    k = 0
    blocks: list[Block] = []
    emitted: set[str] = set()
    backward_needed: set[str] = set()

    def temps_for(expr: Expr) -> list[Statement]:
        """The shared factors ``expr`` needs that no earlier statement computed, in order."""
        out: list[Statement] = []
        needed = _free_matrix_symbols(expr)
        for tname, texpr in reversed(defs):  # a temporary only refers to earlier ones
            if tname in needed:
                needed |= _free_matrix_symbols(texpr)
        for tname, texpr in defs:
            if tname in needed and tname not in emitted:
                emitted.add(tname)
                out.append(Statement(tname, printer.doprint(texpr)))
                backward_needed.update(_free_matrix_symbols(texpr))
        return out

    for w in order:
        expansion = d.expansions[w]
        term_labels, sum_label = _term_labels(config, w, len(expansion.terms))
        targets = []
        for term, label in zip(expansion.terms, term_labels, strict=True):
            expr = reduced[k]
            k += 1
            if len(expansion.terms) == 1:
                target = f"dE_d{w}"
            else:
                suffix = (
                    f"{term.through}"
                    if config.loss_steps == "last"
                    else (f"{term.loss_step}_{term.through}")
                )
                target = f"dE_d{w}_{suffix}"
            targets.append(target)
            through = f"through s̄_{term.through}" if w != "W_y" else "one chain-rule step"
            head = f"E_{term.loss_step}" if config.loss_steps == "all" else f"E_{n}"
            comments = (
                f"# {label}: ∂{head}/∂{w} {through}",
                f"#   {_leibniz(term.factors)}",
            )
            st = [*temps_for(expr), Statement(target, printer.doprint(expr))]
            backward_needed.update(_free_matrix_symbols(expr))
            blocks.append(Block(comments, tuple(st)))
        if len(targets) > 1:
            blocks.append(
                Block(
                    (f"# {sum_label}: ∂E/∂{w}, the sum of its {len(targets)} chain-rule terms",),
                    (Statement(f"dE_d{w}", " + ".join(targets)),),
                )
            )
    gradient_statements = _prune(fwd, backward_needed | {f"y_{t}" for t in config.loss_terms})
    fwd_blocks = _blocks(_prune(fwd, forward_needed), printer)
    loss_fwd = _prune(fwd, {f"y_{t}" for t in config.loss_terms})
    loss_blocks = _blocks([*loss_fwd, *loss_st], printer)
    grad_fwd_blocks = _blocks([*gradient_statements, *loss_st], printer)
    title = f"BPTT gradients of the lecture's RNN, straight-line for exactly T = {n} steps"
    desc = _wrap(
        f"Configuration: {config.describe()}.",
        f"Loss: {_loss_doc(config, loop=False)}.",
        "Each gradient is the transcription of the expanded closed form: one statement per "
        "chain-rule term, shared factors computed once (_t0, _t1, ...).",
    )
    return ModuleContext(
        name=name,
        template="bptt_straight.py.jinja",
        title=title,
        description=desc,
        config_items=_config_items(config, loop=False),
        steps=n,
        loss_doc=_loss_doc(config, loop=False),
        helpers=_helpers(config),
        forward_inputs=_inputs(fwd_blocks),
        loss_inputs=_inputs(loss_blocks),
        gradient_inputs=_inputs((*grad_fwd_blocks, *blocks)),
        forward_blocks=fwd_blocks,
        forward_return=f"{_stack('s', n)}, {_stack('y', n)}",
        loss_blocks=loss_blocks,
        loss_target="E",
        gradient_blocks=(*grad_fwd_blocks, *blocks),
        **_empty_loop(),  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------------
# The loop form.


def _loop_context(d: Derivation, printer: BPTTNumPyPrinter, name: str) -> ModuleContext:
    config, act = d.config, d.config.act
    last = config.loss_steps == "last"
    # Names in the loop code: 3-D arrays (T, B, n) and their stacked 2-D views (T·B, n).
    fwd = {sym: expr for _, sym, expr in d.forward}
    # Eq. 33 split: the input part x̄_t W_x has no recurrence, so all steps in one product.
    z = fwd[m.Z_T]
    input_part = [a for a in z.args if m.S_PREV not in a.atoms(sp.MatrixSymbol)]
    state_part = [a for a in z.args if m.S_PREV in a.atoms(sp.MatrixSymbol)]
    xw = rename(sp.MatAdd(*input_part), {m.X_T: "x2"})
    update = rename(
        m.phi(sp.MatAdd(sp.MatrixSymbol("xw[t]", 1, m.n_s), *state_part)),
        {m.S_PREV: "s_prev"},
    )
    # Eq. 34 over the stacked states.
    o_expr = rename(fwd[m.O_T], {m.S_T: "s2"})
    y_expr = o_expr if config.output == "linear" else m.Softmax(o_expr)
    # Eq. 35 over the stacked rows of every step in the loss (or of the last step only).
    dname, yname = ("d2", "y2") if not last else ("d[T - 1]", "y[T - 1]")
    loss_config = m.Config(
        steps=1,
        activation=config.activation,
        output=config.output,
        scale=config.scale,
        loss_steps="last",
    )
    loss_lines = _loss_statements(derive(loss_config), {1: (dname, yname)})
    # R1: g for the steps in the loss (stacked over all steps, or the last step only).
    rec = {line.target.name: line.expression for line in d.closed.recurrence}
    g_names = {m.d(3): dname, m.y(3): yname}
    g_expr = rename(rec["g_3"], g_names)
    # Φ' for all steps at once, through s̄ where possible.
    dphi_all = dphi_through_states(m.dphi(m.z(3)), act, [3])
    dphi_expr = rename(dphi_all, {m.s(3): "s", m.z(3): "z"})
    # R2: δ at the last step and the step update.
    delta_last = dphi_through_states(rec["delta_3"], act, [3])
    delta_mid = dphi_through_states(rec["delta_2"], act, [2])
    step_names = {
        m.dphi(m.z(2)): sp.MatrixSymbol("dphi[t]", 1, m.n_s),
        m.dphi(m.z(3)): sp.MatrixSymbol("dphi[T - 1]", 1, m.n_s),
    }
    for t, where in ((2, "t"), (3, "T - 1")):
        if act.dphi_of_output is not None:
            step_names[ElementwiseApplyFunction(act.dphi_of_output, m.s(t))] = sp.MatrixSymbol(
                f"dphi[{where}]", 1, m.n_s
            )
    delta_last = rename(delta_last.xreplace(step_names), {m.g(3): "g"})
    if not last:  # g_t W_yᵀ of every step was computed at once (gW)
        delta_last = delta_last.xreplace(
            {sp.MatrixSymbol("g", 1, m.n_y) * m.W_y.T: sp.MatrixSymbol("gW[T - 1]", 1, m.n_s)}
        )
    delta_mid = delta_mid.xreplace(step_names)
    delta_mid = rename(delta_mid, {m.delta(3): "delta[t + 1]", m.g(2): "g2_t"}).xreplace(
        {sp.MatrixSymbol("g2_t", 1, m.n_y) * m.W_y.T: sp.MatrixSymbol("gW[t]", 1, m.n_s)}
    )
    gw_expr = rename(m.g(3) * m.W_y.T, {m.g(3): "g2" if not last else "g"})
    # R3–R5: each sum over steps as one product over the stacked axis.
    dW_y = rename(
        m.s(3).T * m.g(3),
        {m.s(3): "s2" if not last else "s[T - 1]", m.g(3): "g2" if not last else "g"},
    )
    dW_x = rename(m.x(3).T * m.delta(3), {m.x(3): "x2", m.delta(3): "delta2"})
    dW_s = sp.MatAdd(
        rename(m.s(0).T * m.delta(1), {m.s(0): "s_0", m.delta(1): "delta[0]"}),
        rename(m.s(2).T * m.delta(3), {m.s(2): "s2[:-B]", m.delta(3): "delta2[B:]"}),
    )
    p = printer.doprint
    g_target = "g2" if not last else "g"
    fwd_blocks = (
        Block(
            (f"# {labels.STATE}: the input part x̄_t W_x of every step in one matrix product",),
            (Statement("xw2", p(xw)),),
        ),
    )
    out_blocks = (
        Block(
            (f"# {labels.OUTPUT}: ȳ_t for every step in one matrix product",),
            (Statement("y2", p(y_expr)),),
        ),
    )
    loss_blocks = (
        Block(
            (f"# {labels.LOSS}: {_loss_doc(config, loop=True)}",),
            tuple(Statement(s.name, p(e)) for _, s, e in loss_lines),
        ),
    )
    head_statements = [Statement(g_target, p(g_expr)), Statement("dphi", p(dphi_expr))]
    if act.dphi_of_output is None:  # Φ' needs z̄_t itself: Eq. 33 again, all steps at once
        z_all = rename(z, {m.X_T: "x2", m.S_PREV: "s_prev2"})
        head_statements[1:1] = [
            Statement("s_prev2", "np.concatenate((s_0[np.newaxis], s[:-1])).reshape(T * B, n_s)"),
            Statement("z", f"({p(z_all)}).reshape(T, B, n_s)"),
        ]
    head = [
        Block(
            (
                f"# {labels.OUTPUT_GRADIENT}: g_t = ∂E/∂ō_t"
                + (" for every step at once" if not last else " at the last step"),
            ),
            (head_statements[0],),
        ),
        Block(
            (f"# {labels.DELTA}: Φ'(z̄_t) for every step at once, then δ_T",),
            (
                *head_statements[1:],
                *((Statement("gW", f"({p(gw_expr)}).reshape(T, B, n_s)"),) if not last else ()),
                Statement("delta[T - 1]", p(delta_last)),
            ),
        ),
    ]
    grads = (
        Block(
            (
                f"# {labels.W_Y_GENERAL}: ∂E_t/∂W_y = ∂E_t/∂ȳ_t · ∂ȳ_t/∂W_y, over the loss's steps",
                f"# {labels.W_Y_COLLECTED}: Σ_t s̄_tᵀ g_t as one matrix product",
            ),
            (Statement("dE_dW_y", p(dW_y)),),
        ),
        Block(
            (
                f"# {labels.W_S_GENERAL}: ∂E/∂W_s = Σ_i ∂E/∂ȳ · ∂ȳ/∂s̄_i · ∂s̄_i/∂W_s",
                f"# {labels.W_S_COLLECTED}: Σ_i s̄_(i-1)ᵀ δ_i as one matrix product",
            ),
            (Statement("dE_dW_s", p(dW_s)),),
        ),
        Block(
            (
                f"# {labels.W_X_GENERAL}: ∂E/∂W_x = Σ_i ∂E/∂ȳ · ∂ȳ/∂s̄_i · ∂s̄_i/∂W_x",
                f"# {labels.W_X_COLLECTED}: Σ_i x̄_iᵀ δ_i as one matrix product",
            ),
            (Statement("dE_dW_x", p(dW_x)),),
        ),
    )
    title = "BPTT gradients of the lecture's RNN for any sequence length T"
    desc = _wrap(
        f"Configuration: {_loop_describe(config)}.",
        f"Loss: {_loss_doc(config, loop=True)}.",
        "Written for speed: x̄_t W_x for all steps in one matrix product, the recurrences of "
        "Eq. 33 and R2 step by step, each weight gradient one matrix product over the stacked "
        "time×batch axis.",
    )
    return ModuleContext(
        name=name,
        template="bptt_loop.py.jinja",
        title=title,
        description=desc,
        config_items=_config_items(config, loop=True),
        steps=None,
        loss_doc=_loss_doc(config, loop=True),
        helpers=_helpers(config),
        loop_forward=fwd_blocks,
        loop_state=tuple(printer.inplace("s[t]", update)),
        loop_output=out_blocks,
        loop_loss=loss_blocks,
        loop_backward_head=tuple(head),
        loop_backward_step=tuple(printer.inplace("delta[t]", delta_mid)),
        loop_gradients=grads,
        **_empty_straight(),  # type: ignore[arg-type]
    )


def _wrap(*paragraphs: str) -> tuple[str, ...]:
    """Docstring paragraphs wrapped to the line length, a blank line between them."""
    out: list[str] = []
    for para in paragraphs:
        if out:
            out.append("")
        out.extend(textwrap.wrap(para, width=96))
    return tuple(out)


def _loop_describe(config: m.Config) -> str:
    return (
        f"any T, activation={config.activation_name}, output={config.output}, "
        f"scale={config.scale}, loss_steps={config.loss_steps}"
    )
