"""Stage 7 (notes, Section 2): the folded and the unfolded graph, drawn by TikZ and by Mermaid.

Contract: :func:`figure` turns a derivation into a :class:`Figure` of printed strings, in three
parts, each sorted so that the figure is the same text on every run:

- the unfolded graph: vertices (with their place in the picture, in cm) and an edge for every
  dependency that some factor of some chain-rule term differentiates along, labelled with the
  weight it multiplies;
- the backward pass over it: an arrow for every line of the δ recurrence (``closed.recurrence``),
  from the vertex of each adjoint the line reads (or from the loss that seeds it) to the vertex of
  the adjoint it computes (δ_t at s̄_t, as δ_t = ∂E/∂z̄_t and s̄_t = Φ(z̄_t)), and the lines
  themselves;
- the folded graph: the same edges with every step renamed t, so that s̄_{t-1} → s̄_t becomes
  the loop of the recurrent network.

The words around them are the templates' (``templates/_figure.*.jinja``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derive import model as m
from derive.chain import Factor
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.printing.latex import Row, aligned, html, latex
from derive.printing.text import TextPrinter


@dataclass(frozen=True)
class Node:
    """A vertex of the graph, with its place in the TikZ picture (cm)."""

    id: str
    tex: str
    html: str
    x: str
    y: str
    style: str  # "given" (x̄_t, d̄_t, s̄_0), "state", "output" or "loss"


@dataclass(frozen=True)
class Edge:
    """An arrow ``source → target`` with its label (a weight, an adjoint, or empty)."""

    source: str
    target: str
    tex: str
    side: str  # where TikZ puts the label: "above", "below", "left", "right"
    path: str  # the TikZ path between the two: a line or a loop
    style: str  # TikZ options: "->", or "backward" moved beside the forward arrow
    mermaid: str  # the arrow as a line of a Mermaid flowchart


@dataclass(frozen=True)
class Figure:
    """The figure of Section 2, printed: what ``templates/_figure.*.jinja`` draw."""

    nodes: tuple[Node, ...]  # the unfolded graph
    edges: tuple[Edge, ...]  # its dependencies, the forward pass
    backward: tuple[Edge, ...]  # the backward pass: one arrow per adjoint it computes
    recurrence: str  # the lines the backward arrows compute, an aligned block
    legend_x: str  # where the recurrence stands (its top left corner)
    legend_y: str
    folded_nodes: tuple[Node, ...]  # the network folded: one step t
    folded_edges: tuple[Edge, ...]
    folded_x: str  # the panels' titles: where they stand
    unfolded_x: str
    title_y: str
    steps: str  # N, printed


_STEP = 2.4  # cm between time steps in the unfolded graph
_DESIRED = 1.6  # cm from the loss E_t to its desired output d̄_t on its right
_FOLDED = -3.2  # cm: the folded graph's column, left of s̄_0
_LANE = "2.5mm"  # a backward arrow runs this far beside its forward arrow
_ROWS = {"x": (0, -1.6), "s": (1, 0.0), "y": (2, 1.6), "E": (3, 3.2), "d": (4, 3.2)}
_STYLES = {"x": "given", "d": "given", "s": "state", "y": "output", "E": "loss"}
_Edges = dict[tuple[sp.MatrixSymbol, sp.MatrixSymbol], sp.MatrixSymbol | None]


def figure(d: Derivation) -> Figure:
    """The model as the chain rule walks it (every factor of every term is an edge), the backward
    pass over it, and the model folded."""
    edges: _Edges = {}
    for expansion in d.expansions.values():
        for term in expansion.terms:
            for f in term.factors:
                for source, target, weight in _edges(f):
                    edges[(source, target)] = weight
    nodes = _nodes({s for pair in edges for s in pair})
    folded = _fold(edges)
    xs = [float(n.x) for n in nodes]
    top = max(float(n.y) for n in nodes)
    return Figure(
        nodes=nodes,
        edges=_forward(edges),
        backward=_backward(d, {n.id for n in nodes}),
        recurrence=aligned(Row.of(line.target, line.expression) for line in d.closed.recurrence),
        legend_x=f"{min(xs) - 0.45:.2f}",
        legend_y=f"{top + 0.4:.2f}",
        folded_nodes=_nodes({s for pair in folded for s in pair}),
        folded_edges=_forward(folded),
        folded_x=f"{_FOLDED:.2f}",
        unfolded_x=f"{(min(xs) + max(xs)) / 2:.2f}",
        title_y=f"{top + 1.0:.2f}",
        steps=latex(d.config.steps),
    )


def _edges(f: Factor) -> list[tuple[sp.MatrixSymbol, sp.MatrixSymbol, sp.MatrixSymbol | None]]:
    """The dependencies a factor differentiates along, with the weight each multiplies."""
    if f.kind == "weight":  # ∂ū/∂W: ū depends on W through the row r̄ in the pullback r̄ᵀ(…)
        row = next(a.arg for a in f.pullback.args if isinstance(a, sp.Transpose))
        return [(row, f.numerator, f.denominator)]
    assert f.jacobian is not None
    found = f.jacobian.atoms(sp.MatrixSymbol)
    weights = [w for w in m.WEIGHTS if w in found]
    if f.kind == "loss":  # E_t = c (d̄_t − ȳ_t)(…)ᵀ: ȳ_t and the desired output d̄_t
        others = sorted(found - {f.denominator}, key=str)
        return [(f.denominator, f.numerator, None)] + [(o, f.numerator, None) for o in others]
    return [(f.denominator, f.numerator, weights[0] if weights else None)]


def _nodes(symbols: Iterable[sp.MatrixSymbol]) -> tuple[Node, ...]:
    return tuple(
        Node(
            _node_id(s),
            latex(s),
            html(s),
            f"{_place(s)[1]:.2f}",
            f"{_place(s)[2]:.2f}",
            _STYLES[_base(s)] if s != m.s(0) else "given",
        )
        for s in sorted(symbols, key=_place)
    )


def _forward(edges: _Edges) -> tuple[Edge, ...]:
    """The dependencies as arrows labelled with their weights; s̄_t → s̄_t (folded) as a loop."""
    out = []
    for (source, target), weight in sorted(
        edges.items(), key=lambda e: (_place(e[0][1]), _place(e[0][0]))
    ):
        a, b = _node_id(source), _node_id(target)
        label = "" if weight is None else latex(weight)
        arrow = "-->" if weight is None else f'-- "{html(weight)}" -->'
        if source == target:
            side, path = "left", "to[loop left]"
        else:
            side, path = ("right" if _place(source)[1] == _place(target)[1] else "above"), "--"
        out.append(Edge(a, b, label, side, path, "->", f"{a} {arrow} {b}"))
    return tuple(out)


def _backward(d: Derivation, drawn: set[str]) -> tuple[Edge, ...]:
    """An arrow for every line of the recurrence: from the vertex of each adjoint it reads, or from
    the loss that reads the vertex of the adjoint it computes (∂E_t/∂E_t = 1 seeds the sweep)."""
    stmt = d.statement
    adjoints = set(stmt.names("adjoint"))
    (loss,) = stmt.names("loss")
    definitions = stmt.definitions()
    losses = [m.at(loss, k) for k in stmt.config.loss_terms]
    out = []
    for line in d.closed.recurrence:
        home = _home(d, line.target)
        read = sorted(
            (a for a in line.expression.atoms(sp.MatrixSymbol) if _quantity(a) in adjoints),
            key=str,
        )
        sources = [_home(d, a) for a in read]
        sources += [e for e in losses if home in definitions[e].atoms(sp.MatrixSymbol)]
        for source in sorted(set(sources), key=_place):
            a, b = _node_id(source), _node_id(home)
            if not {a, b} <= drawn:
                raise GenerationError(f"the backward arrow {a} → {b} joins no vertices drawn")
            label = f"{html(line.target)} = {_HtmlPrinter().doprint(line.expression)}"
            side, style = _beside(source, home)
            mermaid = f'{a} -.->|"{label}"| {b}'
            out.append(Edge(a, b, latex(line.target), side, "--", style, mermaid))
    return tuple(out)


def _home(d: Derivation, adjoint: sp.MatrixSymbol) -> sp.MatrixSymbol:
    """The vertex of an adjoint: its quantity if the chain rule names it (shown), else the one
    shown quantity defined from it (δ_t = ∂E/∂z̄_t is drawn at s̄_t = Φ(z̄_t))."""
    stmt = d.statement
    found = m.step_of(adjoint)
    assert found is not None
    owner = [q for q in stmt.quantities.values() if q.adjoint == found[0]]
    if len(owner) != 1:
        raise GenerationError(f"expected one quantity with the adjoint {adjoint}: {owner}")
    symbol = m.at(owner[0].name, found[1])
    if owner[0].shown:
        return symbol
    readers = [
        target
        for target, rhs in stmt.definitions().items()
        if stmt.quantities[_base(target)].shown and symbol in rhs.atoms(sp.MatrixSymbol)
    ]
    if len(readers) != 1:
        raise GenerationError(f"expected one shown quantity defined from {symbol}: {readers}")
    return readers[0]


def _beside(source: sp.MatrixSymbol, target: sp.MatrixSymbol) -> tuple[str, str]:
    """(label side, TikZ style) of a backward arrow: beside the forward one, on the side where
    that has no label (left of a vertical arrow, below a horizontal one)."""
    if _place(source)[1] == _place(target)[1]:
        return "left", f"backward, transform canvas={{xshift=-{_LANE}}}"
    return "below", f"backward, transform canvas={{yshift=-{_LANE}}}"


def _fold(edges: _Edges) -> _Edges:
    """The edges with every step renamed t: the network folded, s̄_{t-1} → s̄_t a loop."""
    out: _Edges = {}
    for (source, target), weight in edges.items():
        key = (_at_t(source), _at_t(target))
        if out.get(key, weight) != weight:
            raise GenerationError(f"{key} folds edges of two weights: {out[key]} and {weight}")
        out[key] = weight
    return out


def _at_t(symbol: sp.MatrixSymbol) -> Any:
    return m.restep(symbol, lambda _: m.t)


def _quantity(symbol: sp.MatrixSymbol) -> str | None:
    """The quantity a step symbol stands for (``s`` for s̄_3), None for a weight."""
    found = m.step_of(symbol)
    return None if found is None else str(found[0])


def _base(symbol: sp.MatrixSymbol) -> str:
    found = _quantity(symbol)
    if found is None:
        raise GenerationError(f"{symbol} is not a quantity at a step")
    return found


def _place(symbol: sp.MatrixSymbol) -> tuple[int, float, float]:
    """(drawing order, x, y) of a vertex: states in a row, inputs below, the loss on top; at
    step t (folded), in the folded graph's column."""
    found = m.step_of(symbol)
    assert found is not None
    base, step = found
    order, y = _ROWS[base]
    x = _STEP * int(step) if step.is_Integer else _FOLDED
    return (order, x + _DESIRED if base == "d" else x, y)


def _node_id(symbol: sp.MatrixSymbol) -> str:
    return str(symbol.name).replace("_", "")


class _HtmlPrinter(TextPrinter):
    """The plain-text printer with HTML names, for Mermaid's labels."""

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        """Symbols as the vertices write them, s̄<sub>3</sub>."""
        return html(expr)
