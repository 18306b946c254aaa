"""Stage 5→6 (straight-line form): exactly N steps, every chain-rule term a statement.

Contract: :func:`context` gives the template ``bptt_straight.py.jinja`` the forward pass of
Eq. 33–35 step by step and the *expanded* closed forms, one statement per chain-rule term
(Eq. 38–40 and 43–45 in the lecture's case) and their sums (Eq. 41, 46), the factors the terms
share computed once (``_t0, _t1, …``). No loop over time: a reader sees the lecture's terms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sympy as sp

from derive import labels
from derive import model as m
from derive.codegen.common import (
    Block,
    Expr,
    ModuleBase,
    config_items,
    dphi_through_states,
    free_matrix_symbols,
    helpers,
    loss_doc,
    loss_statements,
    matrix_cse,
    prune,
    wrap,
)
from derive.derivation import Derivation
from derive.printing.numpy import BPTTNumPyPrinter
from derive.printing.text import text


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


def _blocks(
    statements: list[tuple[str, sp.MatrixSymbol, Expr]], printer: BPTTNumPyPrinter
) -> tuple[Block, ...]:
    """One block per equation label, each statement's comment its equation in plain text."""
    return tuple(
        Block(
            (f"# {label}: {text(target)} = {text(expr)}",),
            (f"{target.name} = {printer.doprint(expr)}",),
        )
        for label, target, expr in statements
    )


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


def _inputs(blocks: Sequence[Block]) -> tuple[str, ...]:
    """``x_1 = x[0]``, ``d_3 = d[2]`` … for the inputs the blocks use."""
    used = {
        name
        for b in blocks
        for line in b.lines
        for name in re.findall(r"\b([xd])_(\d+)\b", line.split(" = ", 1)[1])
    }
    return tuple(
        f"{v}_{t} = {v}[{int(t) - 1}]"
        for v, t in sorted(used, key=lambda p: (p[0] != "x", int(p[1])))
    )


def _stack(name: str, n: int) -> str:
    items = ", ".join(f"{name}_{t}" for t in range(1, n + 1))
    return f"np.stack(({items},))" if n == 1 else f"np.stack(({items}))"


def context(d: Derivation, printer: BPTTNumPyPrinter, name: str) -> StraightContext:
    config, act = d.config, d.config.act
    n = config.steps
    fwd = _forward_statements(d, n)
    forward_needed = {f"s_{t}" for t in range(1, n + 1)} | {f"y_{t}" for t in range(1, n + 1)}
    loss_st = loss_statements(d)
    # Gradients: the expanded terms with Φ' through s̄_t, cse over all of them at once.
    order = ("W_y", "W_s", "W_x")
    term_exprs: list[Expr] = []
    for w in order:
        term_exprs.extend(
            dphi_through_states(e, act, range(1, n + 1)) for e in d.closed.expanded[w]
        )
    # The error d̄_t − ȳ_t of Eq. 35 is computed for the loss already: the gradients reuse it.
    errors = {body: e for _, e, body in loss_st[:-1]}
    defs, reduced = matrix_cse([e.xreplace(errors) for e in term_exprs])
    k = 0
    blocks: list[Block] = []
    emitted: set[str] = set()
    backward_needed: set[str] = set()

    def temps_for(expr: Expr) -> list[str]:
        """The shared factors ``expr`` needs that no earlier statement computed, in order."""
        out: list[str] = []
        needed = free_matrix_symbols(expr)
        for tname, texpr in reversed(defs):  # a temporary only refers to earlier ones
            if tname in needed:
                needed |= free_matrix_symbols(texpr)
        for tname, texpr in defs:
            if tname in needed and tname not in emitted:
                emitted.add(tname)
                out.append(f"{tname} = {printer.doprint(texpr)}")
                backward_needed.update(free_matrix_symbols(texpr))
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
            st = [*temps_for(expr), f"{target} = {printer.doprint(expr)}"]
            backward_needed.update(free_matrix_symbols(expr))
            blocks.append(Block(comments, tuple(st)))
        if len(targets) > 1:
            blocks.append(
                Block(
                    (f"# {sum_label}: ∂E/∂{w}, the sum of its {len(targets)} chain-rule terms",),
                    (f"dE_d{w} = {' + '.join(targets)}",),
                )
            )
    gradient_statements = prune(fwd, backward_needed | {f"y_{t}" for t in config.loss_terms})
    fwd_blocks = _blocks(prune(fwd, forward_needed), printer)
    loss_fwd = prune(fwd, {f"y_{t}" for t in config.loss_terms})
    loss_blocks = _blocks([*loss_fwd, *loss_st], printer)
    grad_fwd_blocks = _blocks([*gradient_statements, *loss_st], printer)
    title = f"BPTT gradients of the lecture's RNN, straight-line for exactly T = {n} steps"
    desc = wrap(
        f"Configuration: {config.describe()}.",
        f"Loss: {loss_doc(config, loop=False)}.",
        "Each gradient is the transcription of the expanded closed form: one statement per "
        "chain-rule term, shared factors computed once (_t0, _t1, ...).",
    )
    return StraightContext(
        name=name,
        template="bptt_straight.py.jinja",
        title=title,
        description=desc,
        config_items=config_items(config, loop=False),
        steps=n,
        loss_doc=loss_doc(config, loop=False),
        helpers=helpers(config),
        forward_inputs=_inputs(fwd_blocks),
        loss_inputs=_inputs(loss_blocks),
        gradient_inputs=_inputs((*grad_fwd_blocks, *blocks)),
        forward_blocks=fwd_blocks,
        forward_return=f"{_stack('s', n)}, {_stack('y', n)}",
        loss_blocks=loss_blocks,
        gradient_blocks=(*grad_fwd_blocks, *blocks),
    )
