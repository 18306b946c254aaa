"""The notes: content and order, labels shared with the code, the gradient-check table, the figure,
and the two renderers: LaTeX compiles cleanly (latexmk) and every math span parses (KaTeX).

The TeX and KaTeX tests skip locally, with the reason, when latexmk or node (with
tests/katex/node_modules) is missing; with CI=true they never skip. `.ci/install-notes-deps`
installs both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import sympy as sp
from conftest import ROOT

from derive import Config, check, codegen, derive, generate, labels, notes, notes_pdf, prove
from derive import model as m
from derive.errors import GenerationError
from derive.notes import code_map, verification
from derive.notes.common import general_form
from derive.notes.lecture import product_form
from derive.printing.latex import WIDTH, Ref, Row, aligned, latex, width
from derive.render import render
from derive.verify import Proof
from derive.worked import worked_example

NOTES = ROOT / "generated" / "notes"
TEX, MD = NOTES / "bptt.tex", NOTES / "bptt.md"
KATEX = ROOT / "tests" / "katex"
ALL_LABELS = {f"Eq. {n}" for n in (*range(33, 48), 61)} | {f"R{n}" for n in range(1, 7)}
IN_CI = os.environ.get("CI") == "true"


def _require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` locally; fail in CI, where the tools are installed."""
    if not ok:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: this test must run; see .ci/install-notes-deps)")
        pytest.skip(f"{reason}; install with .ci/install-notes-deps or set CI=true to require it")


def _modules() -> dict[str, str]:
    """The lecture's RNN modules (the cells' labels are their own pages': tests/test_cells.py)."""
    return {p.name: p.read_text() for p in sorted((ROOT / "generated").glob("bptt*.py"))}


@pytest.fixture(scope="module")
def proofs() -> tuple[Proof, ...]:
    """The two proofs the notes report (a few seconds each), made once for these tests."""
    return tuple(
        prove(derive(c), generate.PROOF_SIZES, points=1) for c in (generate.LECTURE, generate.TOTAL)
    )


@cache
def _curves() -> tuple[check.NormCurve, ...]:
    """R6 measured, as generate measures it (about a second)."""
    identity = Config(activation="identity", loss_steps="all")
    return check.jacobian_norm_curves(
        {
            "identity": codegen.module_source(derive(identity), loop=True, name="identity"),
            "tanh": codegen.module_source(derive(generate.TOTAL), loop=True, name="bptt"),
        }
    )


def _input(proofs: tuple[Proof, ...], modules: dict[str, str]) -> notes.NotesInput:
    lecture = derive(generate.LECTURE)
    example = worked_example(lecture)
    return notes.NotesInput(
        lecture,
        derive(generate.TOTAL),
        proofs,
        check.gradient_checks(modules),
        modules,
        example,
        example.dE_dW_s,
        _curves(),
        derive(generate.SOFTMAX),
        derive(generate.CLASSIFIER),
        derive(generate.HALF),
    )


# A hand-written stand-in for a generated module: the same interface, a few label comments.
FAKE = '''"""A stand-in for a generated module, straight-line for T = 3."""

from typing import Any, NamedTuple

import numpy as np

CONFIG: dict[str, Any] = {"steps": 3, "loss_steps": "last"}


class Gradients(NamedTuple):
    loss: float
    W_x: Any
    W_s: Any
    W_y: Any


def _rows(x, d, s0, n_s):
    batched = x.ndim == 3
    x = x if batched else x[:, None, :]
    d = d if batched else d[:, None, :]
    s0 = np.zeros((x.shape[1], n_s)) if s0 is None else np.reshape(s0, (x.shape[1], n_s))
    return x, d, s0


def _states(x, W_x, W_s, s0):
    s = [s0]
    for t in range(3):
        # Eq. 33: s̄_t = Φ(x̄_t W_x + s̄_(t-1) W_s)
        s.append(np.tanh(x[t] @ W_x + s[t] @ W_s))
    return s


def loss(x, d, W_x, W_s, W_y, s0=None):
    x, d, s0 = _rows(x, d, s0, W_s.shape[0])
    s = _states(x, W_x, W_s, s0)
    # Eq. 35: E_3
    e = d[2] - s[3] @ W_y
    return float(np.vdot(e, e))


def gradients(x, d, W_x, W_s, W_y, s0=None):
    x, d, s0 = _rows(x, d, s0, W_s.shape[0])
    s = _states(x, W_x, W_s, s0)
    # R1: g_3
    g = -2 * (d[2] - s[3] @ W_y)
    # Eq. 36: ∂E_3/∂W_y
    # R3: s̄_3ᵀ g_3
    dW_y = s[3].T @ g
    # R2: δ_3, δ_2, δ_1
    delta = {3: (g @ W_y.T) * (1 - s[3] ** 2)}
    for t in (2, 1):
        delta[t] = (delta[t + 1] @ W_s.T) * (1 - s[t] ** 2)

    # R4: Σ_i s̄_(i-1)ᵀ δ_i
    dW_s = sum(s[t - 1].T @ delta[t] for t in (1, 2, 3))
    # R5: Σ_i x̄_iᵀ δ_i
    dW_x = sum(x[t - 1].T @ delta[t] for t in (1, 2, 3))
    return Gradients(loss(x, d, W_x, W_s, W_y, s0), dW_x, dW_s, dW_y)
'''
# The same module with W_s where the recurrence needs W_sᵀ: a wrong ∂E/∂W_s and ∂E/∂W_x.
WRONG = FAKE.replace("delta[t] = (delta[t + 1] @ W_s.T)", "delta[t] = (delta[t + 1] @ W_s)")


# --- content ------------------------------------------------------------------------------------


def test_sections_in_the_issues_order() -> None:
    tex = TEX.read_text()
    titles = re.findall(r"^\\section\{(.*?)\}", tex, re.M)
    assert titles == [
        "The model",
        "The unfolded model at step 3",
        "The loss at step 3 and the output weights",
        "The state weights: three paths back in time",
        "The input weights",
        "A worked example",
        "N steps back",
        "Training",
        "Summary and exercises",
        "Verification",  # the appendices
        "Where the code is",
        "Answers to the exercises",
    ]
    md_titles = re.findall(r"^## (?:\d|Appendix [A-Z]:) (.*)$", MD.read_text(), re.M)
    assert md_titles == titles


@pytest.mark.parametrize("path", [TEX, MD], ids=["tex", "md"])
def test_every_label_is_an_equation_tag_exactly_once(path: Path) -> None:
    text = path.read_text()
    assert code_map.tags_in(text) == ALL_LABELS
    for label in ALL_LABELS:
        assert text.count(rf"\tag{{{labels.tag(label)}}}") == 1, label


def test_the_tags_come_in_the_order_of_the_sections() -> None:
    """Each general-N result right after its three-step case (36, 37; 38–41, 42; 43–46, 47),
    then ours (R6 for the products of D_t W_sᵀ, R1–R5), then training (61)."""
    order = [str(n) for n in range(33, 48)] + ["R6", "R1", "R2", "R3", "R4", "R5", "61"]
    for path in (TEX, MD):
        assert re.findall(r"\\tag\{([^}]*)\}", path.read_text()) == order


def test_derived_formulas_come_from_the_printer() -> None:
    """The closed forms in the notes are the printer's text of the derivation's expressions."""
    d = derive()
    tex, md = TEX.read_text(), MD.read_text()
    unbroken = re.sub(r" \\\\\n&\\qquad\{\} ", " ", tex)
    assert latex(d.closed.expanded["W_y"][0]) in unbroken
    for weight in ("W_s", "W_x"):  # the terms as literal products in the D_t notation
        for term in d.expansions[weight].terms:
            assert latex(product_form(term)) in unbroken, (weight, latex(product_form(term)))
            assert latex(product_form(term)) in md
    for line in d.closed.recurrence:
        assert latex(line.expression) in tex
        assert latex(line.expression) in md
    for eq in d.forward:
        assert latex(eq.target) in tex, eq.label


def test_the_templates_type_no_notation() -> None:
    """Notation lives in the printer's table: the templates only place printed strings."""
    for path in sorted((ROOT / "templates").glob("*.jinja")):
        if not (path.name.startswith(("notes", "variant")) or path.name == "_macros.jinja"):
            continue
        static = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", path.read_text(), flags=re.S)
        for notation in (r"\\bar\b", r"\\partial", r"\\odot", r"\\top\b", r"\\Phi", r"\\delta"):
            assert not re.search(notation, static), (path.name, notation)
        assert not re.search(r"\bW_[xsy]\b", static), path.name


def test_long_rows_are_broken_to_fit() -> None:
    tex = TEX.read_text()
    blocks = re.findall(r"\\begin\{aligned\}\n(.*?)\n\\end\{aligned\}", tex, re.S)
    # No display of the notes needs breaking since the D_t notation; the breaking itself:
    d = derive()
    old_40 = d.closed.expanded["W_s"][-1]  # the ⊙ form, wider than a line
    broken = aligned([Row.of(Ref("40"), old_40)])
    assert "&\\qquad{}" in broken
    blocks += re.findall(r"\\begin\{aligned\}\n(.*?)\n\\end\{aligned\}", broken, re.S)
    for block in blocks:
        for line in block.split(" \\\\\n"):
            assert width(line) <= WIDTH + 6, line  # + the side-by-side factor tables' gap


def test_rendering_is_deterministic(proofs: tuple[Proof, ...]) -> None:
    one = notes.build_context(_input(proofs, {"fake.py": FAKE}))
    two = notes.build_context(_input(proofs, {"fake.py": FAKE}))
    assert one == two
    for template in ("notes.tex.jinja", "notes.md.jinja"):
        assert render(template, one) == render(template, two)


def test_notes_of_a_fake_module_show_its_checks_and_code(proofs: tuple[Proof, ...]) -> None:
    context = notes.build_context(_input(proofs, {"fake.py": FAKE}))
    tex = render("notes.tex.jinja", context)
    md = render("notes.md.jinja", context)
    assert r"\texttt{generated/fake.py} & 3 & none &" in tex
    assert "| `generated/fake.py` | 3 | 4 |" in md
    assert "[`generated/fake.py`](../fake.py)" in md
    assert "| (R2) | `gradients`: [" in md


# --- the figure -------------------------------------------------------------------------------


def test_the_figure_is_the_derivations_dependency_graph(proofs: tuple[Proof, ...]) -> None:
    context = notes.build_context(_input(proofs, {}))
    assert [n.id for n in context.figure.nodes] == [
        "x1", "x2", "x3", "s0", "s1", "s2", "s3", "y3", "E3", "d3",
    ]  # fmt: skip
    edges = {(e.source, e.target, e.tex) for e in context.figure.edges}
    assert edges == {
        *((f"x{t}", f"s{t}", "W_x") for t in (1, 2, 3)),
        *((f"s{t - 1}", f"s{t}", "W_s") for t in (1, 2, 3)),
        ("s3", "y3", "W_y"),
        ("y3", "E3", ""),
        ("d3", "E3", ""),
    }
    md = MD.read_text()
    assert "```mermaid\nflowchart LR\n" in md
    assert 's2 -- "W<sub>s</sub>" --> s3' in md
    assert r"\draw[->] (s2) -- node[above] {\(W_s\)} (s3);" in TEX.read_text()


# --- general forms: checked against every concrete term -----------------------------------------


def test_a_general_form_must_reproduce_every_term() -> None:
    i, N = m.i, m.N
    terms = [m.s(k - 1).T * m.delta(k) for k in (1, 2, 3)]
    good = m.s(i - 1).T * m.delta(i)
    assert general_form(terms, good, [{i: k} for k in (1, 2, 3)]) == good
    wrong = m.s(i).T * m.delta(i)
    with pytest.raises(GenerationError, match="does not give"):
        general_form(terms, wrong, [{i: k} for k in (1, 2, 3)])
    assert m.instantiate(m.E(N), {N: 3}) == m.E(3)
    assert m.renumber(m.s(2) * m.W_s, {2: i + 1}).args[0].name == "s_i + 1"
    assert latex(sp.Sum(good, (i, 1, N))) == r"\sum_{i=1}^{N} \bar{s}_{i-1}^{\top} \delta_{i}"


# --- labels: the notes and the code agree -------------------------------------------------------


@pytest.mark.parametrize("path", [TEX, MD], ids=["tex", "md"])
def test_labels_in_code_and_notes_agree(path: Path) -> None:
    modules = _modules()
    cited = {label for src in modules.values() for _, label in labels.cited_in_code(src)}
    assert cited - {labels.STATE, labels.OUTPUT, labels.LOSS} == ALL_LABELS - {
        labels.STATE,
        labels.OUTPUT,
        labels.LOSS,
    }
    assert code_map.label_mismatch(modules, path.read_text()) == []


def test_the_label_check_can_fail() -> None:
    modules, tex = _modules(), TEX.read_text()
    assert code_map.label_mismatch(modules, tex.replace(r"\tag{39}", "")) == [
        "Eq. 39 is cited in the code but not defined in the notes"
    ]
    without_r4 = {k: re.sub(r"^\s*# R4:.*\n", "", v, flags=re.M) for k, v in modules.items()}
    assert code_map.label_mismatch(without_r4, tex) == [
        "R4 is defined in the notes but cited in no generated module"
    ]
    extra = {
        **modules,
        "extra.py": "def f():\n    # Eq. 48: not in the lecture's table\n    pass\n",
    }
    assert code_map.label_mismatch(extra, tex) == [
        "Eq. 48 is cited in the code but not defined in the notes"
    ]


def test_code_spans_find_function_and_lines() -> None:
    spans = code_map.code_spans(FAKE)
    lines = FAKE.splitlines()

    def at(label: str) -> list[tuple[str, list[str]]]:
        return [(fn, lines[a - 1 : b]) for fn, a, b in spans[label]]

    ((fn, body),) = at("Eq. 33")
    assert fn == "_states" and body[-1].strip().startswith("s.append(")
    ((fn, body),) = at("Eq. 36")  # two label comments head one statement
    assert fn == "gradients" and body[-1].strip() == "dW_y = s[3].T @ g"
    ((fn, body),) = at("R3")
    assert body == ["    # R3: s̄_3ᵀ g_3", "    dW_y = s[3].T @ g"]
    ((fn, body),) = at("R2")  # the loop under the comment, up to the next label
    assert body[-1].strip() == "delta[t] = (delta[t + 1] @ W_s.T) * (1 - s[t] ** 2)"
    assert [fn for fn, _ in at("Eq. 35")] == ["loss"]


def test_section_8_links_each_label_to_its_lines() -> None:
    md = MD.read_text()
    source = (ROOT / "generated" / "bptt_e3.py").read_text().splitlines()
    for a, b in re.findall(r"\]\(\.\./bptt_e3\.py#L(\d+)-L(\d+)\)", md):
        assert 1 <= int(a) <= int(b) <= len(source)
    first = re.search(r"\| \(38\) \| `_gradients`: \[(\d+)–(\d+)\]", md)
    assert first is not None
    assert source[int(first.group(1)) - 1].strip().startswith("# Eq. 38:")


# --- the gradient check -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "bound"),
    [
        (3.2e-8, r"\le 10^{-7}"),
        (1e-8, r"\le 10^{-8}"),
        (9.99e-9, r"\le 10^{-8}"),
        (2e-12, r"\le 10^{-9}"),
        (0.0, r"\le 10^{-9}"),
    ],
)
def test_errors_are_reported_as_a_power_of_ten(error: float, bound: str) -> None:
    assert verification.power_of_ten_bound(error) == bound


def test_the_gradient_check_passes_a_right_module_reproducibly() -> None:
    rows = verification.check_table(check.gradient_checks({"fake.py": FAKE})).rows
    assert [(r.module, r.steps, r.batch) for r in rows] == [
        ("generated/fake.py", "3", "none"),
        ("generated/fake.py", "3", "4"),
    ]
    assert check.gradient_checks({"fake.py": FAKE}) == check.gradient_checks({"fake.py": FAKE})


def test_the_gradient_check_rejects_a_wrong_gradient() -> None:
    module = check.load_module("wrong", WRONG)
    errors = check.relative_errors(module, 3, None)
    assert errors[1] > 1e-3 and errors[0] > 1e-3  # W_x, W_s wrong; W_y right
    assert errors[2] < check.CHECK_LIMIT
    with pytest.raises(GenerationError, match=r"gradient check of generated/wrong.py failed"):
        check.gradient_checks({"wrong.py": WRONG})


def test_the_committed_table_checks_both_modules() -> None:
    md = MD.read_text()
    rows = re.findall(r"^\| `(generated/\w+\.py)` \| (\d) \| (\w+) \|", md, re.M)
    assert rows == [
        ("generated/bptt.py", "1", "none"),
        ("generated/bptt.py", "3", "none"),
        ("generated/bptt.py", "5", "none"),
        ("generated/bptt.py", "5", "4"),
        ("generated/bptt_e3.py", "3", "none"),
        ("generated/bptt_e3.py", "3", "4"),
    ]


# --- LaTeX: compiles without errors, undefined references or overfull boxes ----------------------


def test_log_problems_reads_a_tex_log() -> None:
    log = "\n".join(
        [
            r"Overfull \hbox (9.9pt too wide) in paragraph at lines 10--12",
            r"Overfull \hbox (10.5pt too wide) detected at line 40",
            r"Overfull \vbox (20.0pt too high) has occurred while \output is active",
            "LaTeX Warning: Reference `sec:nope' on page 2 undefined on input line 9.",
            "./bptt.tex:12: Undefined control sequence.",
            "Output written on bptt.pdf (8 pages, 189039 bytes).",
        ]
    )
    problems = notes_pdf.log_problems(log)
    assert [p.split(":")[0] for p in problems] == [
        "LaTeX error",
        "undefined",
        "overfull box, 10.5pt (limit 10pt)",
        "overfull box, 20.0pt (limit 10pt)",
    ]
    assert notes_pdf.page_count(log) == 8
    assert notes_pdf.log_problems("Overfull \\hbox (3.0pt too wide) in paragraph\n") == []


def _latexmk() -> None:
    _require(shutil.which("latexmk") is not None, "latexmk not found")


@pytest.mark.tex
def test_the_notes_compile_cleanly(tmp_path: Path) -> None:
    _latexmk()
    tex = tmp_path / "bptt.tex"
    shutil.copyfile(TEX, tex)
    build = notes_pdf.compile_tex(tex, tmp_path / "build")  # raises on any problem
    assert build.pdf.is_file() and build.pages >= 6
    assert "Overfull" not in build.log or notes_pdf.log_problems(build.log) == []
    # Issue 12: no page more than 30 % empty at its bottom, except where a section follows.
    fills = notes_pdf.page_fill(build.pdf, build.pages)
    loose = [f for f in fills if not f.section_end and f.empty > notes_pdf.EMPTY_LIMIT]
    assert not loose, loose


@pytest.mark.tex
def test_the_page_fill_measure_sees_an_empty_page(tmp_path: Path) -> None:
    """The measure behind the 30 % rule: half a page of text, then a page break."""
    _latexmk()
    tex = tmp_path / "half.tex"
    filler = " ".join(["Words to fill a line of text."] * 60)  # about a third of a page
    preamble = "\\documentclass[11pt,a4paper]{article}\\usepackage[margin=2.5cm]{geometry}"
    body = f"{filler}\\newpage\\section{{Next}}More.\\newpage More."
    tex.write_text(f"{preamble}\\begin{{document}}{body}\\end{{document}}\n")
    build = notes_pdf.compile_tex(tex, tmp_path / "build")
    fills = notes_pdf.page_fill(build.pdf, build.pages)
    assert 0.5 < fills[0].empty < 0.8 and fills[0].section_end
    assert fills[1].empty > 0.9 and not fills[1].section_end


@pytest.mark.tex
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (r"\noindent\rule{\dimexpr\textwidth+25pt\relax}{1pt}", "overfull box, 25.0pt"),
        (r"See Section~\ref{sec:nowhere}.", "undefined"),
        (r"\begin{equation} x \end{equation*}", "LaTeX error"),
    ],
    ids=["overfull", "undefined-reference", "error"],
)
def test_the_compile_check_fails_on_a_bad_tex(tmp_path: Path, body: str, problem: str) -> None:
    _latexmk()
    tex = tmp_path / "bad.tex"
    tex.write_text("\\documentclass{article}\n\\begin{document}\n" + body + "\n\\end{document}\n")
    with pytest.raises(notes_pdf.NotesBuildError, match=re.escape(problem)):
        notes_pdf.compile_tex(tex, tmp_path / "build")


def test_notes_pdf_says_when_latexmk_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert notes_pdf.main([str(TEX)]) == 2
    err = capsys.readouterr().err
    assert "not found on PATH" in err and "install-notes-deps" in err
    assert notes_pdf.main([str(NOTES / "missing.tex")]) == 2


# --- Markdown: every math span parses with KaTeX ----------------------------------------------


def _katex(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    _require(node is not None, "node not found")
    _require((KATEX / "node_modules" / "katex").is_dir(), "tests/katex/node_modules is missing")
    assert node is not None
    return subprocess.run(
        [node, str(KATEX / "check.mjs"), str(path)], capture_output=True, text=True, check=False
    )


def test_the_markdown_math_parses_with_katex() -> None:
    proc = _katex(MD)
    assert proc.returncode == 0, proc.stderr
    counts = re.search(r"parsed (\d+) display and (\d+) inline", proc.stdout)
    assert counts is not None and int(counts.group(1)) >= 30 and int(counts.group(2)) >= 100


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (r"\frac{\partial E_{3}}{\partial \bar{y}_{3}", "KaTeX parse error"),
        (r"\bar{s}_{3} \odott \bar{s}_{2}", "Undefined control sequence"),
    ],
)
def test_the_katex_check_fails_on_broken_math(tmp_path: Path, broken: str, message: str) -> None:
    md = MD.read_text()
    bad = tmp_path / "bad.md"
    bad.write_text(md.replace(r"\bar{y}_{t} = \bar{s}_{t} W_y\tag{34}", broken + r"\tag{34}", 1))
    assert bad.read_text() != md
    proc = _katex(bad)
    assert proc.returncode == 1
    assert message in proc.stderr and f"{bad}:" in proc.stderr


def test_the_katex_check_fails_on_a_dollar_outside_math(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text(MD.read_text() + "\nThe loss $E_3$ in the wrong syntax.\n")
    proc = _katex(bad)
    assert proc.returncode == 1 and "outside" in proc.stderr
