"""The notes' plot of R6 (vanishing and exploding gradients), measured and drawn.

The curves come from generated code (the identity and the tanh loop modules); the identity's must
be ρ^k exactly, and the self-check that holds them to it is shown to reject a wrong curve. The
plot is printed twice, pgfplots for the PDF and an SVG for the Markdown, both byte-reproducible.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from derive import check, codegen, derive, generate
from derive.check import NormCurve
from derive.config import Config
from derive.errors import GenerationError
from derive.notes import vanishing
from derive.render import render

SVG = "{http://www.w3.org/2000/svg}"
STEPS = np.arange(1, check.NORM_STEPS + 1)


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    """What derive.generate hands to jacobian_norm_curves: the identity and tanh loop modules."""
    identity = Config(activation="identity", loss_steps="all")
    return {
        "identity": codegen.module_source(derive(identity), loop=True, name="identity"),
        "tanh": codegen.module_source(derive(generate.TOTAL), loop=True, name="bptt"),
    }


@pytest.fixture(scope="module")
def curves(sources: dict[str, str]) -> tuple[NormCurve, ...]:
    return check.jacobian_norm_curves(sources)


def _curve(curves: tuple[NormCurve, ...], activation: str, rho: float) -> np.ndarray:
    (found,) = [c.norms for c in curves if (c.activation, c.rho) == (activation, rho)]
    return np.array(found)


# --- the measurement -----------------------------------------------------------------------------


def test_curves_come_in_a_fixed_order(curves: tuple[NormCurve, ...]) -> None:
    assert [(c.activation, c.rho) for c in curves] == [
        (a, r) for a in ("identity", "tanh") for r in check.NORM_RHOS
    ]
    assert all(len(c.norms) == check.NORM_STEPS for c in curves)
    assert all(type(v) is float for c in curves for v in c.norms)


@pytest.mark.parametrize("rho", check.NORM_RHOS)
def test_identity_follows_the_geometric_law(curves: tuple[NormCurve, ...], rho: float) -> None:
    """Φ = identity: ∂s̄_N/∂s̄_(N−k) = (ρ Qᵀ)^k, every singular value ρ^k."""
    np.testing.assert_allclose(_curve(curves, "identity", rho), rho**STEPS, rtol=1e-12, atol=0)


@pytest.mark.parametrize("rho", check.NORM_RHOS)
def test_tanh_stays_below_the_law(curves: tuple[NormCurve, ...], rho: float) -> None:
    """0 < tanh' ≤ 1, so ‖D_t W_sᵀ‖ ≤ ρ at every step, and strictly less once s̄ ≠ 0."""
    norms = _curve(curves, "tanh", rho)
    assert np.all(norms <= rho**STEPS * (1 + 1e-12))
    assert np.all(norms[1:] < rho ** STEPS[1:])


def test_saturation_damps_the_explosion(curves: tuple[NormCurve, ...]) -> None:
    """ρ = 2: still growing, but by far less than 2^k (the numbers the notes quote)."""
    norms = _curve(curves, "tanh", 2.0)
    assert norms[-1] > norms[0]
    assert norms[9] < 1e-2 * 2.0**10
    assert norms[-1] < 1e-5 * 2.0**30


def test_the_curves_are_reproducible(
    sources: dict[str, str], curves: tuple[NormCurve, ...]
) -> None:
    assert check.jacobian_norm_curves(sources) == curves


def _rigged(source: str, wrong: str) -> str:
    """The module with state_jacobian_norms multiplied by ``wrong`` (an expression in W_s)."""
    return (
        source
        + f"""

_right_norms = state_jacobian_norms


def state_jacobian_norms(x, W_x, W_s, s0=None):
    return _right_norms(x, W_x, W_s, s0) * {wrong}
"""
    )


@pytest.mark.parametrize(
    "wrong",
    ["np.linalg.norm(W_s, 2)", "(1 + 1e-9)"],
    ids=["rho^(k+1)", "off-by-1e-9"],
)
def test_the_self_check_rejects_a_wrong_identity_curve(sources: dict[str, str], wrong: str) -> None:
    rigged = {**sources, "identity": _rigged(sources["identity"], wrong)}
    with pytest.raises(GenerationError, match="identity"):
        check.jacobian_norm_curves(rigged)


def test_the_self_check_passes_an_unchanged_rigging(sources: dict[str, str]) -> None:
    """The rigging itself is harmless: multiplied by 1 the curves pass (the test above fails for
    the factor, not for the wrapper)."""
    rigged = {**sources, "identity": _rigged(sources["identity"], "1.0")}
    assert check.jacobian_norm_curves(rigged) == check.jacobian_norm_curves(sources)


# --- the printed plot -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        (0.7341, "0.73"),
        (4.34, "4.3"),
        (0.003745, "0.0037"),
        (9.221e-4, r"9.2 \cdot 10^{-4}"),
        (396.6, "397"),
        (1024.0000000000002, "1024"),
        (1073741824.0000002, r"1.1 \cdot 10^{9}"),
    ],
)
def test_measured_numbers_are_printed_with_two_digits(value: float, printed: str) -> None:
    assert vanishing._number(value) == printed


def test_the_prose_quotes_the_curves(curves: tuple[NormCurve, ...]) -> None:
    v = vanishing.section(curves)
    small = _curve(curves, "tanh", min(check.NORM_RHOS))
    first = int(v.vanished_at)
    assert np.all(small[first - 1 :] < vanishing.VANISHED)
    assert small[first - 2] >= vanishing.VANISHED
    assert v.small_band == tuple(vanishing._number(small[k - 1]) for k in vanishing.BAND)
    big = _curve(curves, "tanh", 2.0)
    assert v.big_shown == tuple(vanishing._number(big[k - 1]) for k in vanishing.SHOWN_STEPS)
    assert v.big_law[0] == "2^{10} = 1024"


def test_the_tex_figure_plots_the_coordinates(curves: tuple[NormCurve, ...]) -> None:
    v = vanishing.section(curves)
    tex = render("_vanishing.tex.jinja", {"vanishing": v})
    assert tex.count(r"\begin{axis}") == 2 and tex.count("ymode=log") == 2
    assert tex.count(r"\addplot") == 6 and tex.count(r"\addlegendentry") == 3
    for panel, activation in zip(v.panels, ("identity", "tanh"), strict=True):
        for line, rho in zip(panel.lines, check.NORM_RHOS, strict=True):
            assert line.coordinates in tex
            points = [p.strip("()").split(",") for p in line.coordinates.split()]
            assert [int(k) for k, _ in points] == list(STEPS)
            np.testing.assert_allclose(
                [float(y) for _, y in points], _curve(curves, activation, rho), rtol=1e-3
            )
    assert r"\label{fig:vanishing}" in tex
    assert r"(axis cs:8,1e-10) rectangle (axis cs:10,1e10)" in tex


def test_the_markdown_shows_the_svg(curves: tuple[NormCurve, ...]) -> None:
    md = render("_vanishing.md.jinja", {"vanishing": vanishing.section(curves)})
    assert "](vanishing.svg)" in md
    assert "\\(" not in md and "$$" not in md


def _svg(curves: tuple[NormCurve, ...]) -> str:
    return render("vanishing.svg.jinja", vanishing.section(curves))


def test_the_svg_is_well_formed_and_draws_six_curves(curves: tuple[NormCurve, ...]) -> None:
    text = _svg(curves)
    root = ET.fromstring(text.encode())
    assert root.tag == f"{SVG}svg" and root.get("version") == "1.1"
    polylines = list(root.iter(f"{SVG}polyline"))
    assert len(polylines) == 6
    left, top = vanishing.PLOT_LEFT, vanishing.PLOT_TOP
    right, bottom = left + vanishing.PLOT_WIDTH, top + vanishing.PLOT_HEIGHT
    for polyline in polylines:
        points = [tuple(map(float, p.split(","))) for p in polyline.get("points", "").split()]
        assert len(points) == check.NORM_STEPS
        assert points[0][0] == left and points[-1][0] == right
        assert all(top <= y <= bottom for _, y in points)
    # one identity curve (ρ = 0.5) is a straight line: equal steps in log y
    ys = np.array([float(p.split(",")[1]) for p in polylines[0].get("points", "").split()])
    np.testing.assert_allclose(np.diff(ys), np.diff(ys)[0], atol=0.011)
    # plain SVG: no scripts, no links, no external resources
    tags = {el.tag.removeprefix(SVG) for el in root.iter()}
    assert tags <= {"svg", "title", "g", "rect", "line", "polyline", "text", "tspan"}
    assert not any("href" in key for el in root.iter() for key in el.attrib)
    assert root.get("font-family") == "sans-serif"


def test_the_svg_is_byte_reproducible(
    sources: dict[str, str], curves: tuple[NormCurve, ...]
) -> None:
    assert _svg(curves) == _svg(check.jacobian_norm_curves(sources))


def test_a_curve_outside_the_axis_is_refused(curves: tuple[NormCurve, ...]) -> None:
    """Clipping would draw a lie: the axis must be widened instead."""
    out = tuple(
        replace(c, norms=(*c.norms[:-1], 1e-12)) if c.activation == "tanh" else c for c in curves
    )
    with pytest.raises(GenerationError, match="outside the plot's axis"):
        vanishing.section(out)


def test_missing_curves_are_refused(curves: tuple[NormCurve, ...]) -> None:
    with pytest.raises(GenerationError, match="needs the curves"):
        vanishing.section(tuple(c for c in curves if c.activation != "tanh"))


def test_the_markdown_math_parses_with_katex(curves: tuple[NormCurve, ...], tmp_path: Path) -> None:
    """Every math span of the section parses (the whole notes: tests/test_notes.py)."""
    node, katex = shutil.which("node"), ROOT / "tests" / "katex"
    if node is None or not (katex / "node_modules" / "katex").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("node and tests/katex/node_modules are required in CI")
        pytest.skip("node or tests/katex/node_modules is missing (.ci/install-notes-deps)")
    md = tmp_path / "vanishing.md"
    md.write_text(render("_vanishing.md.jinja", {"vanishing": vanishing.section(curves)}))
    proc = subprocess.run(
        [node, str(katex / "check.mjs"), str(md)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_the_templates_type_no_notation() -> None:
    """As for the notes' templates: the math comes printed, the templates place it."""
    for path in sorted((ROOT / "templates").glob("*vanishing*.jinja")):
        static = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", "", path.read_text(), flags=re.S)
        for notation in (r"\\bar\b", r"\\partial", r"\\Phi", r"\\rho", r"\\lVert", r"\\top\b"):
            assert not re.search(notation, static), (path.name, notation)
        assert not re.search(r"\bW_[xsy]\b", static), path.name
