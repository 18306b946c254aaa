"""The gated cells' pages (notes/gru.*, notes/lstm.*), built from real derivations and proofs:
every backward line and every parameter's gradient printed, the labels defined once, both
graphs read off the equations, the comparison with the RNN, the proof and the code map; the
Markdown's math parses with KaTeX, the .tex compiles cleanly; two builds are byte-identical.

The KaTeX and LaTeX tests skip locally, with the reason, when node (with tests/katex/node_modules)
or latexmk is missing; with CI=true they never skip.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sympy as sp
from conftest import ROOT

from derive import Config, derive, labels, notes_pdf
from derive import model as m
from derive.check import CheckResult
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.notes import code_map
from derive.notes.cell import CellInput, cell_files
from derive.notes.common import tex_text, with_diagonals
from derive.printing.latex import Partial, latex
from derive.verify import prove

CELLS = ("gru", "lstm")
KATEX = ROOT / "tests" / "katex"
IN_CI = os.environ.get("CI") == "true"
SIZES = (2, 3, 2)
E = sp.MatrixSymbol("E", 1, 1)


def _require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` locally; fail in CI, where the tools are installed."""
    if not ok:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: this test must run; see .ci/install-notes-deps)")
        pytest.skip(f"{reason}; install with .ci/install-notes-deps or set CI=true to require it")


@dataclasses.dataclass(frozen=True)
class Built:
    given: CellInput
    tex: str
    md: str

    @property
    def d(self) -> Derivation:
        return self.given.derivation


def _checks(cell: str, d: Derivation) -> tuple[CheckResult, ...]:
    """Stand-ins for the module's gradient checks: one relative error per parameter."""
    n = len(d.statement.weights)
    return tuple(
        CheckResult(f"{cell}.py", steps, batch, tuple(3e-11 * (k + 1) for k in range(n)))
        for steps in (1, 3)
        for batch in (None, 4)
    )


@pytest.fixture(scope="module")
def rnn() -> Derivation:
    return derive(Config(loss_steps="all"))


@pytest.fixture(scope="module")
def built(rnn: Derivation) -> dict[str, Built]:
    """Both pages of both cells, from the cells at N = 3 and their proofs (a few seconds)."""
    out = {}
    for cell in CELLS:
        d = derive(Config(cell=cell, steps=3, loss_steps="all"))
        proof = prove(d, SIZES, points=1)
        extra = {
            "N=1": prove(derive(Config(cell=cell, steps=1, loss_steps="all")), SIZES, points=1)
        }
        given = CellInput(f"{cell}.py", d, proof, _checks(cell, d), extra, rnn)
        files = cell_files(given)
        assert sorted(files) == [f"notes/{cell}.md", f"notes/{cell}.tex"]
        out[cell] = Built(given, files[f"notes/{cell}.tex"], files[f"notes/{cell}.md"])
    return out


def _pages(b: Built) -> dict[str, str]:
    """Both pages, rows broken across lines of an aligned block joined again."""
    return {
        kind: re.sub(r" \\\\\n&\\qquad\{\} ", " ", text)
        for kind, text in (("tex", b.tex), ("md", b.md))
    }


def _has(page: str, lhs: object, rhs: object) -> bool:
    """``lhs = rhs`` printed, as a row of an aligned block or as a display of its own."""
    left, right = latex(lhs), latex(rhs)
    return f"{left} &= {right}" in page or f"{left} = {right}" in page


# --- content ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_every_equation_and_backward_line_is_printed(built: dict[str, Built], cell: str) -> None:
    b = built[cell]
    gen = b.d.closed.generic
    for kind, page in _pages(b).items():
        for eq in b.d.statement.equations:
            assert _has(page, eq.target, eq.rhs), (kind, eq)
        for line in (*gen.last, *gen.step):
            assert _has(page, line.target, line.expression), (kind, line)


@pytest.mark.parametrize("cell", CELLS)
def test_every_parameter_has_its_gradient(built: dict[str, Built], cell: str) -> None:
    b = built[cell]
    for page in _pages(b).values():
        for w in b.d.statement.weights:
            (part,) = b.d.closed.generic.sums[w.name]
            summand = sp.Sum(part.summand, (m.t, 1, m.N))
            assert _has(page, Partial(E, w), summand), w


@pytest.mark.parametrize("cell", CELLS)
def test_every_label_is_defined_once(built: dict[str, Built], cell: str) -> None:
    b = built[cell]
    expected = {eq.label for eq in b.d.statement.equations}
    expected |= {labels.OUTPUT_GRADIENT, labels.DELTA, labels.PARAMETER_COLLECTED}
    for page in (b.tex, b.md):
        assert code_map.tags_in(page) == expected
        for label in expected:
            assert page.count(rf"\tag{{{labels.tag(label)}}}") == 1, label
        # the code map lists them, in the order the page defines them
        listed = re.search(r"a comment with its label\s+\(([^)]*)\)", page)
        assert listed is not None
        tags = re.findall(r"\\tag\{([^}]*)\}", page)
        cited = re.findall(r"[`{]([^`{}]+)[`}]", listed.group(1))
        assert [labels.tag(label.replace("~", " ")) for label in cited] == tags
    assert {eq.label for eq in b.d.statement.equations} >= {
        "gru": {"G1", "G2", "G3", "G4"},
        "lstm": {"L1", "L2", "L3", "L4", "L5", "L6"},
    }[cell]


def _id(symbol: sp.MatrixSymbol) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", str(symbol.name).replace("-", "m"))


@pytest.mark.parametrize("cell", CELLS)
def test_both_graphs_are_the_equations(built: dict[str, Built], cell: str) -> None:
    """One step: an arrow from every quantity an equation reads to what it computes. Unfolded:
    each state of step k − 1 into step k, each input into a state of its step."""
    b = built[cell]
    stmt = b.d.statement
    assert b.md.count("```mermaid\nflowchart") == 2
    assert b.tex.count(r"\begin{tikzpicture}") == 2
    mermaid = b.md.split("```mermaid")[1]
    for eq in stmt.equations:
        for a in eq.rhs.atoms(sp.MatrixSymbol):
            if m.step_of(a) is not None:
                arrow = rf"^    {_id(a)} (-- \"[^\"]*\" )?--> {_id(eq.target)}$"
                assert re.search(arrow, mermaid, re.M), (a, eq.target)
                assert re.search(rf"\({_id(a)}\) .* \({_id(eq.target)}\);", b.tex), (a, eq.target)
    unfolded = b.md.split("```mermaid")[2]
    for state in stmt.names("state"):
        for k in range(1, stmt.config.steps + 1):
            assert f"    {state}{k - 1} --> {state}{k}\n" in unfolded
    for k in range(1, stmt.config.steps + 1):
        assert re.search(rf"^    x{k} --> [{''.join(stmt.names('state'))}]{k}$", unfolded, re.M)
        assert f"    y{k} --> E{k}\n" in unfolded


@pytest.mark.parametrize("cell", CELLS)
def test_the_local_jacobians_and_the_transitions(built: dict[str, Built], cell: str) -> None:
    b = built[cell]
    for page in _pages(b).values():
        assert "&= W_{" in page and r"\operatorname{diag}(" in page
        for f in b.d.transitions:
            assert latex(Partial(f.numerator, f.denominator)) in page
        # the numerator layout's diag(row), never diag(rowᵀ)
        assert not re.search(r"\\operatorname\{diag\}\([^()]*\^\{\\top\}\)", page)


@pytest.mark.parametrize("cell", CELLS)
def test_the_gated_path_is_printed_next_to_the_rnns(
    built: dict[str, Built], rnn: Derivation, cell: str
) -> None:
    """The LSTM's ∂c̄_t/∂c̄_(t−1) = diag(f̄_t), the GRU's diag(ū_t) part, beside D_t W_sᵀ."""
    gate = {"gru": "u", "lstm": "fg"}[cell]
    part = latex(sp.DiagMatrix(m.at(gate, m.t).T))
    (f,) = rnn.transitions
    for page in _pages(built[cell]).values():
        assert latex(with_diagonals(f.jacobian)) in page
        assert part in page
        for step in ("N", "N-1", "N-k+1"):
            assert latex(sp.DiagMatrix(m.at(gate, step).T)) in page
    if cell == "lstm":
        (c,) = [f for f in built[cell].d.transitions if str(f.numerator.name) == "c_t"]
        assert latex(c.jacobian) == part


@pytest.mark.parametrize("cell", CELLS)
def test_the_proof_and_the_code_map(built: dict[str, Built], cell: str) -> None:
    b = built[cell]
    names = [w.name for w in b.d.statement.weights]
    for page, code in ((b.md, "`{}`".format), (b.tex, lambda n: rf"\texttt{{{tex_text(n)}}}")):
        assert f"generated/{cell}.py" in page
        for fn in ("init_params", "forward", "loss", "gradients", "PARAMS"):
            assert code(fn) in page
        where = [page.index(code(n)) for n in names]
        assert where == sorted(where)  # PARAMS in their order
        assert "N=3" in page and "N=1" in page and "graph" in page
        assert "under a minute" in page
    proof_rows = re.findall(r"^\| N=\d \| (\d) \| \((\d), (\d), (\d)\) \|", b.md, re.M)
    assert proof_rows == [("3", "2", "3", "2"), ("1", "2", "3", "2")]
    # the check table: one column per (T, batch), one row per parameter
    assert "| `PARAMS` | T=1 | T=1, B=4 | T=3 | T=3, B=4 |" in b.md
    assert len(re.findall(r"^\| `\w+` \|( \$`\\le 10\^\{-\d+\}`\$ \|){4}$", b.md, re.M)) == len(
        names
    )


def test_no_checks_no_check_table(built: dict[str, Built]) -> None:
    given = dataclasses.replace(built["gru"].given, checks=(), extra={})
    files = cell_files(given)
    assert "central differences" not in files["notes/gru.md"]
    assert "central differences" not in files["notes/gru.tex"]
    assert "N=1" not in files["notes/gru.md"]


def test_a_failed_proof_fails_the_page(built: dict[str, Built]) -> None:
    given = built["gru"].given
    wrong = [dataclasses.replace(given.proof.comparisons[0], ok=False)]
    proof = dataclasses.replace(given.proof, comparisons=(*wrong, *given.proof.comparisons[1:]))
    with pytest.raises(GenerationError, match="NOT EQUAL"):
        cell_files(dataclasses.replace(given, proof=proof))


def test_a_check_of_other_parameters_fails_the_page(built: dict[str, Built]) -> None:
    given = built["lstm"].given
    short = CheckResult("lstm.py", 1, None, (1e-10, 1e-10, 1e-10))  # the RNN's three weights
    with pytest.raises(GenerationError, match="3 errors for 13 parameters"):
        cell_files(dataclasses.replace(given, checks=(short,)))


def test_the_rnn_is_not_a_cell(rnn: Derivation, built: dict[str, Built]) -> None:
    with pytest.raises(GenerationError, match="expected a GRU or an LSTM"):
        cell_files(dataclasses.replace(built["gru"].given, derivation=rnn))


def test_two_builds_are_byte_identical(built: dict[str, Built]) -> None:
    """Again from fresh derivations (the cell's and the RNN's), and with the proof's time
    different: the same bytes. Without the RNN handed in, the page is refused (the notes
    derive nothing)."""
    for cell, b in built.items():
        again = dataclasses.replace(
            b.given,
            derivation=derive(Config(cell=cell, steps=3, loss_steps="all")),
            proof=dataclasses.replace(b.given.proof, seconds=b.given.proof.seconds / 3),
            rnn=derive(Config(loss_steps="all")),
        )
        files = cell_files(again)
        assert files[f"notes/{cell}.tex"] == b.tex
        assert files[f"notes/{cell}.md"] == b.md
        with pytest.raises(GenerationError, match="expected the lecture's RNN"):
            cell_files(dataclasses.replace(again, rnn=None))


def test_the_templates_type_no_notation() -> None:
    """Notation lives in the printer's table: the cell templates only place printed strings."""
    for name in ("cell.tex.jinja", "cell.md.jinja"):
        static = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", (ROOT / "templates" / name).read_text())
        for notation in (r"\\bar\b", r"\\partial", r"\\odot", r"\\top\b", r"\\Phi", r"\\delta"):
            assert not re.search(notation, static), (name, notation)
        assert not re.search(r"\bW_[xsyhr]\w*\b", static), name


# --- Markdown: every math span parses with KaTeX --------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_the_markdown_math_parses_with_katex(
    built: dict[str, Built], cell: str, tmp_path: Path
) -> None:
    node = shutil.which("node")
    _require(node is not None, "node not found")
    _require((KATEX / "node_modules" / "katex").is_dir(), "tests/katex/node_modules is missing")
    assert node is not None
    md = tmp_path / f"{cell}.md"
    md.write_text(built[cell].md)
    proc = subprocess.run(
        [node, str(KATEX / "check.mjs"), str(md)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    counts = re.search(r"parsed (\d+) display and (\d+) inline", proc.stdout)
    assert counts is not None and int(counts.group(1)) >= 20 and int(counts.group(2)) >= 80


# --- LaTeX: a standalone document that compiles cleanly -------------------------------------------


@pytest.mark.tex
@pytest.mark.parametrize("cell", CELLS)
def test_the_tex_compiles_cleanly(built: dict[str, Built], cell: str, tmp_path: Path) -> None:
    _require(shutil.which("latexmk") is not None, "latexmk not found")
    tex = tmp_path / f"{cell}.tex"
    tex.write_text(built[cell].tex)
    build = notes_pdf.compile_tex(tex, tmp_path / "build")  # raises on errors, overfull > 10pt
    assert build.pdf.is_file() and build.pages >= 4
    assert "Overfull" not in build.log, "an overfull box, even below the 10pt limit"
    assert "Warning" not in build.log
