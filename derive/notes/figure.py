"""Stage 7 (notes, Section 2): the unfolded graph, drawn by TikZ and by Mermaid.

Contract: :func:`_figure` turns a derivation into vertices (with their place in the picture, in
cm) and edges, both already printed: an edge for every dependency that some factor of some
chain-rule term differentiates along, labelled with the weight it multiplies. Sorted by place,
so the figure is the same text on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive import model as m
from derive.chain import Factor
from derive.derivation import Derivation
from derive.printing.latex import html, latex


@dataclass(frozen=True)
class Node:
    """A vertex of the unfolded graph, with its place in the TikZ picture (cm)."""

    id: str
    tex: str
    html: str
    x: str
    y: str
    style: str  # "given" (x̄_t, d̄_t, s̄_0), "state", "output" or "loss"


@dataclass(frozen=True)
class Edge:
    """A dependency ``source → target``, labelled with the weight it multiplies (or not)."""

    source: str
    target: str
    tex: str
    side: str  # where TikZ puts the label: "above" or "right"
    mermaid: str  # the edge as a line of a Mermaid flowchart


_STEP = 2.4  # cm between time steps in the figure
_STYLES = {"x": "given", "d": "given", "s": "state", "y": "output", "E": "loss"}


def figure(d: Derivation) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    """The unfolded model as the chain rule walks it: every factor of every term is an edge."""
    edges: dict[tuple[sp.MatrixSymbol, sp.MatrixSymbol], sp.MatrixSymbol | None] = {}
    for expansion in d.expansions.values():
        for term in expansion.terms:
            for f in term.factors:
                for source, target, weight in _edges(f):
                    edges[(source, target)] = weight
    symbols = sorted({s for pair in edges for s in pair}, key=_place)
    nodes = tuple(
        Node(
            _node_id(s),
            latex(s),
            html(s),
            f"{_place(s)[1]:.2f}",
            f"{_place(s)[2]:.2f}",
            _STYLES[str(s.name).rpartition("_")[0]] if s != m.s(0) else "given",
        )
        for s in symbols
    )
    out = []
    for (source, target), weight in sorted(
        edges.items(), key=lambda e: (_place(e[0][1]), _place(e[0][0]))
    ):
        a, b = _node_id(source), _node_id(target)
        label = "" if weight is None else latex(weight)
        arrow = "-->" if weight is None else f'-- "{html(weight)}" -->'
        side = "right" if _place(source)[1] == _place(target)[1] else "above"
        out.append(Edge(a, b, label, side, f"{a} {arrow} {b}"))
    return nodes, tuple(out)


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


def _place(symbol: sp.MatrixSymbol) -> tuple[int, float, float]:
    """(drawing order, x, y) of a vertex: states in a row, inputs below, the loss on top."""
    base, _, index = str(symbol.name).rpartition("_")
    k = int(index)
    rows = {"x": (0, -1.6), "s": (1, 0.0), "y": (2, 1.6), "E": (3, 3.2), "d": (4, 3.2)}
    order, y = rows[base]
    x = _STEP * (k + 1) if base == "d" else _STEP * k
    return (order, x, y)


def _node_id(symbol: sp.MatrixSymbol) -> str:
    return str(symbol.name).replace("_", "")
