"""Stage 8 (notes, gated cells): the graphs of a cell's page, read off its equations.

Contract: :func:`step_graph` (one step: a vertex per quantity, an arrow from each quantity an
equation reads to what it computes, labelled with the parameters of that local Jacobian) and
:func:`unfolded` (steps 1..N, the intermediates contracted) turn a statement into a
:class:`Picture` of printed nodes and arrows that ``templates/cell.tex.jinja`` draws with TikZ
and ``cell.md.jinja`` with Mermaid; :func:`local_jacobians` gives each equation's local
Jacobians, which the page's Jacobian section prints too. Nothing is derived here but those.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive import model as m
from derive import ops
from derive.errors import GenerationError
from derive.notes.common import t
from derive.printing.latex import html, latex

# What the graphs draw, cm: columns and rows of the graph of one step, of the unfolded graph.
_STEP_DX, _STEP_DY = 1.55, 1.45
_STEP_FIRST = 3.2  # the arrows from the inputs fan out to several gates: room for their labels
_UNFOLD_DX, _UNFOLD_DY = 2.6, 1.45
# TikZ styles of the preamble by role (a state of step t − 1, an input: "given", boxed)
_STYLE = {"input": "given", "target": "given", "state": "state", "hidden": "hidden"}
_STYLE.update({"output": "output", "loss": "loss"})


@dataclass(frozen=True)
class Node:
    id: str
    tex: str
    html: str
    x: str
    y: str
    style: str  # a TikZ style of the preamble: given, hidden, state, output, loss


@dataclass(frozen=True)
class Arrow:
    """``source join next rest`` in TikZ: the label (if any) on the first piece, at ``pos``."""

    source: str
    target: str
    tex: str  # the parameters the target's equation multiplies the source by, or ""
    style: str  # TikZ options after the arrow tip's
    join: str  # the first piece: a line, or a bend
    next: str  # where the first piece ends: the target, or the first waypoint
    rest: str  # from there on to the target, through the waypoints
    pos: str  # where the label sits on the first piece
    mermaid: str


@dataclass(frozen=True)
class Picture:
    nodes: tuple[Node, ...]
    arrows: tuple[Arrow, ...]


def base(symbol: Any) -> str:
    found = m.step_of(symbol)
    if found is None:
        raise GenerationError(f"{symbol} is not a quantity at a step")
    return str(found[0])


def step(symbol: Any) -> Any:
    found = m.step_of(symbol)
    if found is None:
        raise GenerationError(f"{symbol} is not a quantity at a step")
    return found[1]


def role(stmt: m.Statement, symbol: Any) -> str:
    return stmt.quantities[base(symbol)].role


def local_jacobians(
    stmt: m.Statement, eq: m.Equation
) -> list[tuple[sp.MatrixSymbol, Any, tuple[Any, ...]]]:
    """The quantities an equation reads (parameters aside), each with its local Jacobian
    (numerator layout, :func:`derive.ops.jacobian`) and the parameters that Jacobian holds."""
    names = list(stmt.quantities)
    out = []
    for a in sorted(
        (a for a in eq.rhs.atoms(sp.MatrixSymbol) if m.step_of(a) is not None),
        key=lambda a: (names.index(base(a)), str(a)),
    ):
        jacobian = ops.jacobian(eq.rhs, a, out=eq.target)
        held = set() if jacobian is None else jacobian.atoms(sp.MatrixSymbol)
        out.append((a, jacobian, tuple(w for w in stmt.weights if w in held)))
    return out


# ---------------------------------------------------------------------------------------------
# Section 2: the graphs, read off the equations.


def _node_id(symbol: sp.MatrixSymbol) -> str:
    """A name TikZ and Mermaid accept: ``s_t - 1`` → ``stm1``."""
    name = str(symbol.name).replace("-", "m").replace("+", "p")
    return "".join(ch for ch in name if ch.isalnum())


def _levels(stmt: m.Statement) -> dict[sp.MatrixSymbol, int]:
    """The column of each quantity of step t: the inputs and step t − 1's states first, each
    computed quantity one right of the last it reads, d̄_t beside what the loss compares it to."""
    level: dict[sp.MatrixSymbol, int] = {}
    for q in stmt.equations:
        reads = [a for a, _, _ in local_jacobians(stmt, q)]
        for a in reads:
            if a not in level and role(stmt, a) != "target":
                level[a] = 0
        level[q.target] = 1 + max((level[a] for a in reads if a in level), default=-1)
    for q in stmt.equations:
        for a, _, _ in local_jacobians(stmt, q):
            level.setdefault(a, level[q.target] - 1)
    return level


def step_graph(stmt: m.Statement) -> Picture:
    """One step: a vertex per quantity, an arrow from each quantity an equation reads to what
    it computes, labelled with the parameters of that local Jacobian. Each column is placed from
    the one before (every vertex level with the mean of what it reads, then pushed apart); an
    arrow past a column runs through a waypoint in each column it passes, placed like a vertex,
    so that it runs between the vertices rather than through them."""
    level: dict[Any, int] = dict(_levels(stmt))
    reads = {q.target: local_jacobians(stmt, q) for q in stmt.equations}
    preds: dict[Any, list[Any]] = {}
    routes = []
    for target, found in reads.items():
        for a, _, held in found:
            route = [a, *((a, target, k) for k in range(level[a] + 1, level[target])), target]
            for u, v in itertools.pairwise(route):
                preds.setdefault(v, []).append(u)
            level.update({w: w[2] for w in route[1:-1]})
            routes.append((route, held))
    order = list(level)
    ys: dict[Any, float] = {}
    for column in sorted(set(level.values())):
        members = [v for v in order if level[v] == column]
        want = {v: sum(ys[u] for u in preds[v]) / len(preds[v]) for v in members if v in preds}
        top = max(want.values(), default=-_STEP_DY)
        for v in members:
            if v not in want:  # a source, or d̄_t beside the output: above the rest
                top += _STEP_DY
                want[v] = top
        members.sort(key=lambda v: (want[v], order.index(v)))
        spread: list[float] = []
        for k, v in enumerate(members):
            real = isinstance(v, sp.MatrixSymbol) and isinstance(members[k - 1], sp.MatrixSymbol)
            gap = _STEP_DY if real else 0.6 * _STEP_DY
            spread.append(want[v] if not spread else max(want[v], spread[-1] + gap))
        shift = sum(want[v] - y for v, y in zip(members, spread, strict=True)) / len(members)
        ys.update({v: y + shift for v, y in zip(members, spread, strict=True)})

    def xy(v: Any) -> tuple[str, str]:
        x = 0.0 if level[v] == 0 else _STEP_FIRST + (level[v] - 1) * _STEP_DX
        return f"{x:.2f}", f"{ys[v]:.2f}"

    vertices = [v for v in order if isinstance(v, sp.MatrixSymbol)]
    nodes = tuple(
        Node(
            _node_id(s),
            latex(s),
            html(s),
            *xy(s),
            "given" if s not in reads else _STYLE[role(stmt, s)],
        )
        for s in sorted(vertices, key=lambda s: (level[s], ys[s]))
    )
    # the labels of arrows from the sources (stacked in column 0) at alternating distances
    sources = sorted((v for v in vertices if level[v] == 0), key=lambda v: -ys[v])
    arrows = []
    for route, held in routes:
        first, *via = [f"({','.join(xy(w))})" for w in route[1:-1]] + [f"({_node_id(route[-1])})"]
        rank = sources.index(route[0]) if route[0] in sources else 0
        arrows.append(
            _arrow(
                route[0],
                route[-1],
                held,
                style=", rounded corners=4pt" if via else "",
                next=first,
                rest="".join(f" -- {w}" for w in via),
                pos=("0.30", "0.62")[rank % 2],
            )
        )
    return Picture(nodes, tuple(arrows))


def _arrow(
    a: Any,
    b: Any,
    held: Sequence[Any] = (),
    *,
    style: str = "",
    join: str = "--",
    next: str = "",
    rest: str = "",
    pos: str = "0.5",
) -> Arrow:
    source, target = _node_id(a), _node_id(b)
    label = ", ".join(html(w) for w in held)
    mermaid = f"{source} --> {target}" if not held else f'{source} -- "{label}" --> {target}'
    tex = ", ".join(latex(w) for w in held)
    return Arrow(source, target, tex, style, join, next or f"({target})", rest, pos, mermaid)


def unfolded(stmt: m.Statement) -> Picture:
    """Steps 1..N: the inputs, states, outputs and losses (the intermediates between them
    contracted), an arrow wherever a definition reads another through intermediates."""
    definitions = stmt.definitions()
    kept = ("input", "state", "output", "loss")

    def ends(expr: Any) -> list[sp.MatrixSymbol]:
        found: dict[sp.MatrixSymbol, None] = {}
        todo = [expr]
        while todo:
            for a in sorted(todo.pop(0).atoms(sp.MatrixSymbol), key=str):
                if m.step_of(a) is None:
                    continue
                if role(stmt, a) in kept:
                    found[a] = None
                elif a in definitions:
                    todo.append(definitions[a])
        return list(found)

    level = {base(s): v for s, v in _levels(stmt).items() if step(s) == t}
    bases = sorted(
        {name for name in stmt.quantities if stmt.quantities[name].role in kept},
        key=lambda name: (kept.index(stmt.quantities[name].role), level.get(name, 0), name),
    )
    row = {name: k for k, name in enumerate(bases)}
    edges = [(a, s) for s, rhs in definitions.items() if role(stmt, s) in kept for a in ends(rhs)]
    symbols = {s for edge in edges for s in edge}

    def place(s: Any) -> tuple[int, int]:
        return (int(step(s)), row[base(s)])

    nodes = tuple(
        Node(
            _node_id(s),
            latex(s),
            html(s),
            f"{place(s)[0] * _UNFOLD_DX:.2f}",
            f"{place(s)[1] * _UNFOLD_DY:.2f}",
            "given" if s not in definitions else _STYLE[role(stmt, s)],
        )
        for s in sorted(symbols, key=place)
    )
    arrows = []
    for a, s in sorted(edges, key=lambda e: (place(e[1]), place(e[0]))):
        (k, r), (k2, r2) = place(a), place(s)
        bend = k == k2 and r2 - r > 1  # past a row of the same step
        arrows.append(_arrow(a, s, join="to[bend right=35]" if bend else "--"))
    return Picture(nodes, tuple(arrows))
