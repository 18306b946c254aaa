"""Stage 5→6 (loop form): any sequence length T, written for speed.

Contract: :func:`context` gives the template ``bptt_loop.py.jinja`` the printed lines of

* Eq. 33: x̄_t W_x for every step in one matrix product, then the recurrence step by step;
* Eq. 34–35 and R1 (g_t) over the stacked time×batch axis (or the last step only);
* R2: Φ'(z̄_t) for every step at once, then the δ recurrence step by step;
* R3–R5 (Eq. 37, 42, 47): each weight gradient as one matrix product over the stacked axis.

Every formula comes from the derivation of a 3-step model, whose step 3 is the last step and step
2 a middle one; this module only renames its symbols to the arrays of the code and decides where
each result is written. Large arrays live in a per-thread workspace that is reused from call to
call (fresh large arrays cost page faults), and the recurrences write each step in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import labels
from derive import model as m
from derive.codegen.common import (
    Block,
    ModuleBase,
    config_items,
    dphi_through_states,
    helpers,
    loss_doc,
    rename,
    wrap,
)
from derive.derivation import Derivation
from derive.printing.numpy import BPTTNumPyPrinter


@dataclass(frozen=True)
class Loop:
    """``for <names> in <iterable>:`` and its printed body.

    ``cached`` builds the list of per-step views once from the workspace (``arrays``), where
    ``key`` keeps it: a view costs about 50 ns, T per loop. ``iterable`` zips the same views of
    local arrays, for code without a workspace (forward(), which returns its arrays).
    """

    names: str
    iterable: str
    key: str
    cached: str
    comment: str
    lines: tuple[str, ...]


def _steps(sources: list[tuple[str, str]]) -> tuple[str, str]:
    """``zip(a[sl], …)`` over local arrays and ``list(zip(arrays["a"][sl], …))``."""
    local = ", ".join(f"{a}{sl}" for a, sl in sources)
    cached = ", ".join(f'arrays["{a}"]{sl}' for a, sl in sources)
    return f"zip({local}, strict=True)", f"list(zip({cached}, strict=True))"


@dataclass(frozen=True)
class LoopContext(ModuleBase):
    """The loop module's printed pieces (see bptt_loop.py.jinja for where each goes)."""

    buffers: tuple[tuple[str, str], ...]  # workspace arrays (name, last dimension)
    matrices: tuple[tuple[str, str, str], ...]  # workspace matrices (name, rows, columns)
    input_part: tuple[Block, ...]
    state_loop: Loop
    output: tuple[Block, ...]
    loss_locals: tuple[str, ...]
    loss: tuple[Block, ...]
    gradients_locals: tuple[str, ...]
    backward_head: tuple[Block, ...]
    backward_loop: Loop
    gradient_blocks: tuple[Block, ...]


def _sym(name: str, cols: object) -> sp.MatrixSymbol:
    return sp.MatrixSymbol(name, 1, cols)


def _locals(
    blocks: tuple[Block, ...], loops: tuple[Loop, ...], buffers: list[str], matrices: list[str]
) -> tuple[str, ...]:
    """Definitions of the names the printed lines use: sizes, stacked views, workspace arrays
    (only those used, so generated code has no unused variables)."""
    known = [
        ("T", "x.shape[0]"),
        ("B", "x.shape[1]"),
        ("x2", "x.reshape(T * B, -1)"),
        ("d2", "d.reshape(T * B, -1)"),
        *((n, f'w["{n}"]') for base in buffers for n in (base, f"{base}2")),
        *((n, f'w["{n}"]') for n in matrices),
    ]
    text = [ln for b in blocks for ln in b.lines] + [ln for lp in loops for ln in lp.lines]
    used = {w for ln in text for w in re.findall(r"\b[A-Za-z_]\w*\b", ln)}
    for name, definition in reversed(known):  # a definition's own names are needed too
        if name in used:
            used |= set(re.findall(r"\b[A-Za-z_]\w*\b", definition))
    return tuple(f"{name} = {definition}" for name, definition in known if name in used)


def context(d: Derivation, printer: BPTTNumPyPrinter, name: str) -> LoopContext:
    config, act = d.config, d.config.act
    last = config.loss_steps == "last"
    p = printer.doprint
    ip = printer.inplace
    fwd = {sym: expr for _, sym, expr in d.forward}
    rec = {line.target.name: line.expression for line in d.closed.recurrence}

    # Eq. 33, split: the input part x̄_t W_x has no recurrence, so every step in one product.
    z = fwd[m.Z_T]
    input_part = sp.MatAdd(*(a for a in z.args if m.S_PREV not in a.atoms(sp.MatrixSymbol)))
    state_part = [a for a in z.args if m.S_PREV in a.atoms(sp.MatrixSymbol)]
    update = rename(m.phi(sp.MatAdd(_sym("xw_t", m.n_s), *state_part)), {m.S_PREV: "s_prev"})
    input_blocks = (
        Block(
            (f"# {labels.STATE}: the input part x̄_t W_x of every step in one matrix product",),
            tuple(ip("xw2", rename(input_part, {m.X_T: "x2"}))),
        ),
    )
    state_iterable, state_cached = _steps([("s", ""), ("xw", "")])
    state_loop = Loop(
        "s_t, xw_t",
        state_iterable,
        "state_steps",
        state_cached,
        f"# {labels.STATE}: s̄_t = Φ(x̄_t W_x + s̄_(t-1) W_s), written into s̄_t's row block",
        tuple(ip("s_t", update)),
    )

    # Eq. 34 for every step (forward), or for the loss's steps.
    o_all = rename(fwd[m.O_T], {m.S_T: "s2"})
    y_all = o_all if config.output == "linear" else m.Softmax(o_all)
    output_blocks = (
        Block(
            (f"# {labels.OUTPUT}: ȳ_t for every step in one matrix product",),
            (f"y2 = {p(y_all)}",),
        ),
    )
    # Eq. 35 and R1 from the derivation's step 3, renamed to the stacked rows (Σ_t E_t) or the
    # last step's rows (E_T); the error d̄ − ȳ is computed once and g reuses it.
    if last:
        rows = {m.s(3): "s[T - 1]", m.y(3): "y_T", m.d(3): "d[T - 1]", m.g(3): "g_T"}
        err_name = "e_T"
    else:
        rows = {m.s(3): "s2", m.y(3): "y2", m.d(3): "d2", m.g(3): "g2"}
        err_name = "e2"
    y_t = rename(fwd[m.Y_T].xreplace({m.O_T: fwd[m.O_T]}), {m.S_T: rows[m.s(3)]})
    loss_expr = fwd[m.E_T]
    coeff, (err, _) = loss_expr.as_coeff_matrices()
    err_rows = rename(err.xreplace({m.D_T: m.d(3), m.Y_T: m.y(3)}), rows)
    err_sym = _sym(err_name, m.n_y)
    y_lines = (f"y_T = {p(y_t)}",) if last else tuple(ip("y2", y_t))
    e_lines = (f"{err_name} = {p(err_rows)}",) if last else tuple(ip(err_name, err_rows))
    loss_blocks = (
        Block(
            (f"# {labels.OUTPUT}: ȳ_t" + (" at the last step" if last else " for every step"),),
            y_lines,
        ),
        Block(
            (f"# {labels.LOSS}: {loss_doc(config, loop=True)}",),
            (*e_lines, f"E = {p(coeff * sp.Trace(err_sym * err_sym.T))}"),
        ),
    )

    # R1: g = ∂E/∂ō, with d̄ − ȳ replaced by the error already computed.
    g_expr = rename(rec["g_3"], rows).xreplace({err_rows: err_sym})
    g_coeff, g_rest = g_expr.as_coeff_matrices() if isinstance(g_expr, sp.MatMul) else (1, [])
    # A linear output has g = c'·e: rather than a pass over every row to form g, the factor c'
    # goes onto W_yᵀ (g W_yᵀ = e (c' W_yᵀ)) and onto ∂E/∂W_y (Σ s̄ᵀ g = c' Σ s̄ᵀ e), both small.
    fold = not last and g_rest == [err_sym]
    if fold:
        g_lines: tuple[str, ...] = tuple(ip("cW_y", sp.MatMul(g_coeff, m.W_y)))
    else:
        g_lines = (f"g_T = {p(g_expr)}",) if last else tuple(ip("g2", g_expr))

    # R2: Φ'(z̄_t) for every step at once (through s̄_t where the activation allows).
    dphi_lines: tuple[str, ...]
    if act.dphi_of_output is not None:
        dphi_lines = tuple(
            ip("dphi2", ElementwiseApplyFunction(act.dphi_of_output, _sym("s2", m.n_s)))
        )
    else:  # z̄_t again: s̄_(t-1) W_s into the buffer, plus x̄_t W_x still held in xw
        stacked = rename(sp.MatAdd(*state_part), {m.S_PREV: "s2[:-B]"})
        first = rename(sp.MatAdd(*state_part), {m.S_PREV: "s_0"})
        dphi_lines = (
            *ip("dphi[0]", first),
            *ip("dphi2[B:]", stacked),
            "dphi += xw",
            *ip("dphi", m.dphi(_sym("dphi", m.n_s))),
        )
    step = {
        m.dphi(m.z(2)): _sym("dphi_t", m.n_s),
        m.dphi(m.z(3)): _sym("dphi[T - 1]", m.n_s),
    }
    if act.dphi_of_output is not None:
        step[ElementwiseApplyFunction(act.dphi_of_output, m.s(2))] = _sym("dphi_t", m.n_s)
        step[ElementwiseApplyFunction(act.dphi_of_output, m.s(3))] = _sym("dphi[T - 1]", m.n_s)
    delta_last = dphi_through_states(rec["delta_3"], act, [3]).xreplace(step)
    delta_mid = dphi_through_states(rec["delta_2"], act, [2]).xreplace(step)
    gw = m.g(3) * m.W_y.T
    if last:
        delta_last = rename(delta_last, {m.g(3): "g_T"})
        gw_lines: tuple[str, ...] = ()
    else:  # g_t W_yᵀ of every step in one product (gW), then read step by step
        gw_lines = tuple(
            ip("gW2", err_sym * sp.MatrixSymbol("cW_y", m.n_s, m.n_y).T)
            if fold
            else ip("gW2", rename(gw, {m.g(3): "g2"}))
        )
        delta_last = delta_last.xreplace({gw: _sym("gW[T - 1]", m.n_s)})
        delta_mid = delta_mid.xreplace({m.g(2) * m.W_y.T: _sym("gW_t", m.n_s)})
    delta_mid = rename(delta_mid, {m.delta(3): "delta_next"})
    delta_mid = delta_mid.xreplace({m.W_s.T: sp.MatrixSymbol("W_sT", m.n_s, m.n_s)})
    backward_head = (
        Block(
            (
                f"# {labels.OUTPUT_GRADIENT}: g_t = ∂E/∂ō_t"
                + (" at the last step" if last else " for every step at once")
                + (" (its factor folded into W_y)" if fold else ""),
            ),
            g_lines,
        ),
        Block(
            (f"# {labels.DELTA}: Φ'(z̄_t) for every step at once, then δ_T",),
            (*dphi_lines, *gw_lines, *ip("delta[T - 1]", delta_last)),
        ),
        Block(
            (
                f"# {labels.DELTA}: W_sᵀ of the recurrence below. BLAS is often faster on a "
                "contiguous copy",
                "# (B = 32, n = 64: 6.3 µs a step, not 8.3), but the transposing copy can cost "
                "2 ns an entry:",
                "# made when the recurrence is long enough to repay it, at worst ~10 % of its "
                "time.",
            ),
            (
                f"W_sT = {p(m.W_s.T)}",
                "if (T - 1) * B >= 512:",
                *(f"    {line}" for line in ip("W_sT_copy", m.W_s.T)),
                "    W_sT = W_sT_copy",
            ),
        ),
    )
    step_names = ["delta_t", "delta_next", *([] if last else ["gW_t"]), "dphi_t"]
    sources = {
        "delta_t": ("delta", "[-2::-1]"),
        "delta_next": ("delta", "[:0:-1]"),
        "gW_t": ("gW", "[-2::-1]"),
        "dphi_t": ("dphi", "[-2::-1]"),
    }
    backward_iterable, backward_cached = _steps([sources[n] for n in step_names])
    backward_loop = Loop(
        ", ".join(step_names),
        backward_iterable,
        "delta_steps",
        backward_cached,
        f"# {labels.DELTA}: δ_t = (δ_(t+1) W_sᵀ"
        + ("" if last else " + g_t W_yᵀ")
        + ") ⊙ Φ'(z̄_t), from t = T − 1 down to 1",
        tuple(ip("delta_t", delta_mid)),
    )

    # R3–R5: each sum over steps as one matrix product over the stacked time×batch axis.
    dW_y = rename(m.s(3).T * m.g(3), rows)
    if fold:
        dW_y = sp.MatMul(g_coeff, rename(m.s(3).T, rows), err_sym)
    dW_x = rename(m.x(3).T * m.delta(3), {m.x(3): "x2", m.delta(3): "delta2"})
    dW_s_first = rename(m.s(0).T * m.delta(1), {m.s(0): "s_0", m.delta(1): "delta[0]"})
    dW_s_rest = rename(m.s(2).T * m.delta(3), {m.s(2): "s2[:-B]", m.delta(3): "delta2[B:]"})

    def result(weight: sp.MatrixSymbol, *lines: str) -> tuple[str, ...]:
        """A fresh array for the returned gradient, written in place by the lines."""
        return (f"dE_d{weight.name} = np.empty_like({weight.name}, order='C')", *lines)

    gradient_blocks = (
        Block(
            (
                f"# {labels.W_Y_GENERAL}: ∂E_t/∂W_y = ∂E_t/∂ȳ_t · ∂ȳ_t/∂W_y, over the loss's steps",
                f"# {labels.W_Y_COLLECTED}: Σ_t s̄_tᵀ g_t as one matrix product",
            ),
            result(m.W_y, *ip("dE_dW_y", dW_y)),
        ),
        Block(
            (
                f"# {labels.W_S_GENERAL}: ∂E/∂W_s = Σ_i ∂E/∂ȳ · ∂ȳ/∂s̄_i · ∂s̄_i/∂W_s",
                f"# {labels.W_S_COLLECTED}: Σ_i s̄_(i-1)ᵀ δ_i as one matrix product",
            ),
            result(m.W_s, *ip("dE_dW_s", dW_s_rest), f"dE_dW_s += {p(dW_s_first)}"),
        ),
        Block(
            (
                f"# {labels.W_X_GENERAL}: ∂E/∂W_x = Σ_i ∂E/∂ȳ · ∂ȳ/∂s̄_i · ∂s̄_i/∂W_x",
                f"# {labels.W_X_COLLECTED}: Σ_i x̄_iᵀ δ_i as one matrix product",
            ),
            result(m.W_x, *ip("dE_dW_x", dW_x)),
        ),
    )
    buffers = [("s", "n_s"), ("xw", "n_s"), ("dphi", "n_s"), ("delta", "n_s")]
    if not last:
        buffers += [("y", "n_y"), ("e", "n_y"), *([] if fold else [("g", "n_y")]), ("gW", "n_s")]
    buffer_names = [b for b, _ in buffers]
    # Weight-sized scratch: W_sᵀ, and c'·W_y when the output's factor is folded into W_y.
    matrices = [("W_sT_copy", "n_s", "n_s"), *([("cW_y", "n_s", "n_y")] if fold else [])]
    matrix_names = [b for b, _, _ in matrices]
    return LoopContext(
        name=name,
        template="bptt_loop.py.jinja",
        title="BPTT gradients of the lecture's RNN for any sequence length T",
        description=wrap(
            f"Configuration: {_describe(config)}.",
            f"Loss: {loss_doc(config, loop=True)}.",
            "Written for speed: x̄_t W_x for all steps in one matrix product, the recurrences "
            "of Eq. 33 and R2 step by step and in place, each weight gradient one matrix "
            "product over the stacked time×batch axis. loss() and gradients() keep their "
            "large scratch arrays (a few T×B×n arrays) per thread for the last sizes used, so "
            "repeated calls allocate little beyond the gradients they return.",
        ),
        config_items=config_items(config, loop=True),
        steps=None,
        loss_doc=loss_doc(config, loop=True),
        helpers=helpers(config),
        buffers=tuple(buffers),
        matrices=tuple(matrices),
        input_part=input_blocks,
        state_loop=state_loop,
        output=output_blocks,
        loss_locals=_locals(loss_blocks, (), buffer_names, matrix_names),
        loss=loss_blocks,
        gradients_locals=_locals(
            (*loss_blocks, *backward_head, *gradient_blocks),
            (backward_loop,),
            buffer_names,
            matrix_names,
        ),
        backward_head=backward_head,
        backward_loop=backward_loop,
        gradient_blocks=gradient_blocks,
    )


def _describe(config: m.Config) -> str:
    return (
        f"any T, activation={config.activation_name}, output={config.output}, "
        f"scale={config.scale}, loss_steps={config.loss_steps}"
    )
