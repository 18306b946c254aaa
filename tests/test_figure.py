"""Section 2's figure: the unfolded graph with its backward pass and the folded network, every
label printed from the derivation; a changed derivation draws a changed figure."""

from __future__ import annotations

import dataclasses
import re

import pytest

from derive import derive, generate
from derive import model as m
from derive.closed_form import Definition
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.notes import figure, lecture
from derive.printing.latex import Row, aligned, html, latex
from derive.render import render


@pytest.fixture(scope="module")
def lec() -> Derivation:
    return derive(generate.LECTURE)


def _arrows(edges: tuple[figure.Edge, ...]) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.tex) for e in edges}


def _with_recurrence(d: Derivation, lines: list[Definition]) -> Derivation:
    return dataclasses.replace(d, closed=dataclasses.replace(d.closed, recurrence=tuple(lines)))


# --- the backward pass --------------------------------------------------------------------------


def test_the_backward_arrows_run_from_the_loss_back_to_delta_1(lec: Derivation) -> None:
    fig = figure.figure(lec)
    targets = [line.target for line in lec.closed.recurrence]
    assert targets == [m.g(3), m.delta(3), m.delta(2), m.delta(1)]
    assert _arrows(fig.backward) == {
        ("E3", "y3", latex(m.g(3))),
        ("y3", "s3", latex(m.delta(3))),
        ("s3", "s2", latex(m.delta(2))),
        ("s2", "s1", latex(m.delta(1))),
    }
    assert {e.tex for e in fig.backward} == {
        r"\gamma_{3}",
        r"\delta_{3}",
        r"\delta_{2}",
        r"\delta_{1}",
    }


def test_the_backward_labels_are_the_recurrence_lines(lec: Derivation) -> None:
    fig = figure.figure(lec)
    assert fig.recurrence == aligned(Row.of(d.target, d.expression) for d in lec.closed.recurrence)
    assert fig.recurrence.count(r"\\") == 3
    # Mermaid: each dotted arrow carries the whole line it computes, printed from the derivation.
    by_target = {e.target: e.mermaid for e in fig.backward}
    assert by_target["s2"] == (
        's3 -.->|"δ<sub>2</sub> = (δ<sub>3</sub> · W<sub>s</sub>ᵀ) ⊙ Φ\'(z̄<sub>2</sub>)"| s2'
    )
    for line in lec.closed.recurrence:
        assert any(e.mermaid.split('|"')[1].startswith(html(line.target)) for e in fig.backward)


def test_the_backward_arrows_follow_what_each_line_reads(lec: Derivation) -> None:
    """A mutated recurrence, δ_2 computed from g_3, draws its arrow from ȳ_3 instead of s̄_3."""
    lines = list(lec.closed.recurrence)
    k = [line.target for line in lines].index(m.delta(2))
    wrong = lines[k].expression.xreplace({m.delta(3): m.g(3), m.W_s: m.W_y})
    lines[k] = Definition(m.delta(2), wrong)
    mutated = figure.figure(_with_recurrence(lec, lines))
    original = figure.figure(lec)
    assert ("y3", "s2", latex(m.delta(2))) in _arrows(mutated.backward)
    assert ("s3", "s2", latex(m.delta(2))) not in _arrows(mutated.backward)
    assert mutated.recurrence != original.recurrence
    assert latex(wrong) in mutated.recurrence


def test_a_line_without_a_vertex_is_an_error(lec: Derivation) -> None:
    lines = [*lec.closed.recurrence, Definition(m.g(1), m.delta(1))]
    with pytest.raises(GenerationError, match="joins no vertices drawn"):
        figure.figure(_with_recurrence(lec, lines))


def test_the_total_loss_seeds_every_step() -> None:
    """Σ_t E_t: every E_t seeds g_t, and δ_t reads δ_{t+1} and g_t."""
    fig = figure.figure(derive(generate.TOTAL))
    arrows = {(e.source, e.target) for e in fig.backward}
    assert arrows == {
        *((f"E{t}", f"y{t}") for t in (1, 2, 3)),
        *((f"y{t}", f"s{t}") for t in (1, 2, 3)),
        ("s3", "s2"),
        ("s2", "s1"),
    }


# --- the folded network ---------------------------------------------------------------------------


def test_the_folded_network_is_the_unfolded_one_at_step_t(lec: Derivation) -> None:
    fig = figure.figure(lec)
    assert [n.id for n in fig.folded_nodes] == ["xt", "st", "yt", "Et", "dt"]
    assert [n.tex for n in fig.folded_nodes] == [
        latex(m.at(q, m.t)) for q in ("x", "s", "y", "E", "d")
    ]
    assert _arrows(fig.folded_edges) == {
        ("xt", "st", "W_x"),
        ("st", "st", "W_s"),  # s̄_{t-1} → s̄_t: the loop
        ("st", "yt", "W_y"),
        ("yt", "Et", ""),
        ("dt", "Et", ""),
    }
    (loop,) = [e for e in fig.folded_edges if e.source == e.target]
    assert "loop" in loop.path
    assert loop.mermaid == 'st -- "W<sub>s</sub>" --> st'
    # beside the unfolded graph, left of it
    assert max(float(n.x) for n in fig.folded_nodes) < min(float(n.x) for n in fig.nodes) - 1


def test_the_folded_network_follows_the_derivation(lec: Derivation) -> None:
    """Without the chain rule's steps back in time (its state factors and W_s), neither graph
    has a state-to-state arrow: the unfolded one loses s̄_{t-1} → s̄_t, the folded one its loop."""
    expansions = {
        name: dataclasses.replace(
            e, terms=tuple(t for t in e.terms if all(f.kind != "state" for f in t.factors))
        )
        for name, e in lec.expansions.items()
        if name != "W_s"
    }
    lines = [line for line in lec.closed.recurrence if line.target in (m.g(3), m.delta(3))]
    fig = figure.figure(_with_recurrence(dataclasses.replace(lec, expansions=expansions), lines))
    assert _arrows(fig.edges) == {
        ("x3", "s3", "W_x"),
        ("s3", "y3", "W_y"),
        ("y3", "E3", ""),
        ("d3", "E3", ""),
    }
    assert _arrows(fig.folded_edges) == {
        ("xt", "st", "W_x"),
        ("st", "yt", "W_y"),
        ("yt", "Et", ""),
        ("dt", "Et", ""),
    }


# --- the drawings ---------------------------------------------------------------------------------


def _drawings(d: Derivation) -> tuple[str, str]:
    context = {"figure": figure.figure(d), "sym": lecture.symbols(d)}
    return render("_figure.tex.jinja", context), render("_figure.md.jinja", context)


def test_the_drawings_show_both_panels_and_both_passes(lec: Derivation) -> None:
    tex, md = _drawings(lec)
    backward = r"\draw[backward, transform canvas={yshift=-2.5mm}] (s3) -- "
    assert backward + r"node[below] {\(\delta_{2}\)} (s2);" in tex
    assert r"\draw[->] (st) to[loop left] node[left] {\(W_s\)} (st);" in tex
    assert r"\draw[->] (s2) -- node[above] {\(W_s\)} (s3);" in tex
    assert r"\node[state] (st) at (" in tex and r"\node[state] (s3) at (" in tex
    assert "\\begin{aligned}\n\\gamma_{3} &= " in tex
    assert md.startswith("```mermaid\nflowchart LR\n")
    assert '    subgraph folded["folded"]\n' in md
    assert '    subgraph unfolded["unfolded at step 3"]\n' in md
    assert '        s2 -- "W<sub>s</sub>" --> s3\n' in md
    assert '        st -- "W<sub>s</sub>" --> st\n' in md
    assert md.count("    end\n") == 2
    # every Mermaid line is a node, an arrow, a subgraph's start or end
    body = md.split("```mermaid\n", 1)[1].split("```", 1)[0].splitlines()
    node = re.compile(r'^ {8}\w+\["[^"]+"\]$')
    arrow = re.compile(r'^ {8}\w+ (-- "[^"]+" -->|-->|-\.->\|"[^"]+"\|) \w+$')
    subgraph = re.compile(r'^ {4}(subgraph \w+\["[^"]+"\]|end)$')
    for line in body[1:]:
        assert node.match(line) or arrow.match(line) or subgraph.match(line), line


def test_the_figure_is_deterministic(lec: Derivation) -> None:
    again = derive(generate.LECTURE)
    assert figure.figure(lec) == figure.figure(again)
    assert _drawings(lec) == _drawings(again)


def test_the_figure_fits_the_page(lec: Derivation) -> None:
    """The text width of an a4 article with 2.5 cm margins is 16 cm: both panels, with their
    labels (about 1.5 cm beyond the outermost centres), stay within it."""
    fig = figure.figure(lec)
    xs = [float(n.x) for n in (*fig.nodes, *fig.folded_nodes)]
    assert max(xs) - min(xs) + 3.0 <= 16.0
