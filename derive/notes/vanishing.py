"""Stage 7 (notes, vanishing gradients): the measured norms of R6, printed for the plots.

Contract: :func:`section` turns the curves measured by :func:`derive.check.jacobian_norm_curves`
(handed in; nothing is run here) into :class:`Vanishing`, what ``templates/_vanishing.*.jinja``
and ``templates/vanishing.svg.jinja`` draw: two panels (Φ = identity | Φ = tanh), one line per ρ,
on a logarithmic axis of fixed range (a value outside it raises
:class:`~derive.errors.GenerationError` rather than being clipped); pgfplots coordinates for the
PDF, SVG polylines in pixels for the Markdown, and the few measured numbers the prose quotes.
Numbers are printed with a fixed format, so the same curves give the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import sympy as sp

from derive import activations as acts
from derive import check
from derive import model as m
from derive.check import NormCurve
from derive.errors import GenerationError
from derive.notation import html_name, text_name
from derive.printing.latex import Partial, latex

RHO = sp.Symbol("rho")
K = sp.Symbol("k", integer=True, positive=True)
_Z = sp.Symbol("z")  # Φ's scalar argument in the panels' titles

# The logarithmic axis, the same in both panels and both renderings: powers of ten, labelled every
# fifth; Φ = identity at ρ = 0.5 and 2 reaches 2^(±30) ≈ 10^(±9).
Y_DECADES = (-10, 10)
Y_LABEL_EVERY = 5
X_TICKS = (1, 5, 10, 15, 20, 25, 30)
BAND = (8, 10)  # the lecture: relationships more than about 8 to 10 steps back are lost
VANISHED = 1e-2  # the prose: from which k a norm stays below this
SHOWN_STEPS = (10, 30)  # the prose quotes the tanh norms here
COORDINATE_DIGITS = 4  # significant digits of the pgfplots coordinates

# One style per ρ, ascending: colour (RGB), dash pattern (on, off; None: solid), both renderings.
STYLES = (((31, 119, 180), None), ((0, 0, 0), (6, 3)), ((214, 39, 40), (2, 2)))

# The SVG's geometry in pixels: two panels side by side, each a plot area with room for the tick
# labels on its left and below.
SVG_WIDTH, SVG_HEIGHT = 720, 300
PANEL_WIDTH = 360  # the second panel starts here
PLOT_LEFT, PLOT_TOP, PLOT_WIDTH, PLOT_HEIGHT = 66, 30, 270, 220
LEGEND_WIDTH, LEGEND_FIRST, LEGEND_STEP = 88, 20, 17  # the first entry's baseline below the top
SUB_SHIFT, SUB_SIZE = 4, 9  # subscripts in SVG text
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True)
class Tick:
    """A tick of an SVG axis: its position (px) and its label (empty: unlabelled)."""

    at: str
    label: str


@dataclass(frozen=True)
class Line:
    """One curve, ‖∂s̄_N/∂s̄_(N−k)‖₂ for k = 1 … N at one ρ."""

    legend_tex: str  # math: \rho = 0.5
    legend_text: str  # ρ = 0.5
    coordinates: str  # pgfplots: (1,0.5) (2,0.25) …
    points: str  # SVG polyline, pixels in the panel: 66.00,120.25 …
    tex_style: str  # pgfplots options
    color: str  # SVG stroke, #rrggbb
    dash: str  # SVG stroke-dasharray, "none" for a solid line
    legend_y: str  # SVG: the legend entry's baseline in the panel (px)
    legend_mark_y: str  # SVG: its line sample


@dataclass(frozen=True)
class Panel:
    """One activation's curves."""

    activation: str
    title_tex: str  # math: \Phi(z) = \tanh(z)
    title_text: str  # Φ(z) = tanh(z)
    offset: str  # SVG: the panel's left edge (px)
    lines: tuple[Line, ...]
    legend: bool  # the legend is drawn in the last panel only (the styles are shared)


@dataclass(frozen=True)
class Svg:
    """The SVG's geometry (px) and its text: what ``templates/vanishing.svg.jinja`` places."""

    width: str
    height: str
    title: str  # the picture's accessible title
    plot_left: str
    plot_top: str
    plot_right: str
    plot_bottom: str
    plot_width: str
    plot_height: str
    title_x: str  # a panel's title: centred over its plot
    title_y: str
    x_ticks: tuple[Tick, ...]
    x_tick_end: str  # the x ticks run from the plot's bottom to here
    x_tick_label_y: str
    x_label_y: str
    y_ticks: tuple[Tick, ...]  # every power of ten; the labelled ones get a grid line
    y_major_end: str  # labelled y ticks run from here to the plot's left edge
    y_minor_end: str
    y_tick_label_x: str
    y_label: str  # the norm, with <tspan> subscripts
    y_label_x: str
    y_label_y: str
    band_left: str
    band_width: str
    legend_left: str  # the legend's box
    legend_top: str
    legend_width: str
    legend_height: str
    legend_mark_from: str  # each entry's line sample, then its text
    legend_mark_to: str
    legend_text_x: str


@dataclass(frozen=True)
class Vanishing:
    """The plot's data and words, printed."""

    panels: tuple[Panel, ...]
    svg: Svg
    # pgfplots
    x_max: str
    x_ticks_tex: str  # "1,5,10,…"
    y_min: str  # "1e-10"
    y_max: str
    y_ticks_tex: str  # labelled powers of ten
    y_minor_tex: str  # the others
    y_label_tex: str  # math: the norm
    band_from: str
    band_to: str
    # the problem and the prose, math printed
    steps: str  # N = 30
    states: str  # n_s = 16
    weights: str  # W_s = \rho\,Q
    start: str  # \bar{s}_{0} = 0
    rho: str  # \rho
    rhos: tuple[str, ...]  # 0.5, 1, 2
    input_scale: str  # 0.1
    seed: str
    law: str  # \rho^{k}
    law_limit: str  # the self-check's relative limit, 10^{-12}
    k: str
    identity: str  # \Phi(z) = z
    tanh: str  # \Phi(z) = \tanh(z)
    dphi_bound: str  # 0 < \Phi' \le 1
    vanished: str  # 10^{-2}
    vanished_at: str  # the first k from which tanh at the smallest ρ stays below it
    small_rho: str  # \rho = 0.5
    small_band: tuple[str, str]  # tanh, smallest ρ, at the band's ends (k = 8, 10)
    shown_steps: tuple[str, ...]  # SHOWN_STEPS
    unit_rho: str  # \rho = 1
    unit_shown: tuple[str, ...]  # tanh, ρ = 1, at SHOWN_STEPS
    big_rho: str  # \rho = 2
    big_shown: tuple[str, ...]  # tanh, largest ρ, at SHOWN_STEPS
    big_law: tuple[str, ...]  # 2^{10} = 1024, … : the identity's norms there


def section(curves: Sequence[NormCurve]) -> Vanishing:
    """The plots and the prose's numbers from the measured curves (identity and tanh, each at
    every ρ of :data:`derive.check.NORM_RHOS`)."""
    by_key = {(c.activation, c.rho): c.norms for c in curves}
    steps = _validated(by_key)
    low, high = Y_DECADES

    def x_px(k: float) -> float:
        return PLOT_LEFT + PLOT_WIDTH * (k - 1) / (steps - 1)

    def y_px(v: float) -> float:
        return PLOT_TOP + PLOT_HEIGHT * (high - math.log10(v)) / (high - low)

    panels, titles = [], []
    for p, activation in enumerate(check.NORM_ORDER):
        lines = []
        for j, rho in enumerate(check.NORM_RHOS):
            norms = by_key[(activation, rho)]
            (r, g, b), dash = STYLES[j]
            dash_tex = "solid" if dash is None else f"dash pattern=on {dash[0]}pt off {dash[1]}pt"
            baseline = PLOT_TOP + LEGEND_FIRST + LEGEND_STEP * j
            lines.append(
                Line(
                    legend_tex=_rho_is(rho),
                    legend_text=escape(f"{_unicode(RHO)} = {_g(rho)}"),
                    coordinates=" ".join(
                        f"({k},{v:.{COORDINATE_DIGITS}g})" for k, v in enumerate(norms, 1)
                    ),
                    points=" ".join(f"{x_px(k):.2f},{y_px(v):.2f}" for k, v in enumerate(norms, 1)),
                    tex_style=f"color={{rgb,255:red,{r};green,{g};blue,{b}}}, {dash_tex}, thick",
                    color=f"#{r:02x}{g:02x}{b:02x}",
                    dash="none" if dash is None else f"{dash[0]} {dash[1]}",
                    legend_y=str(baseline),
                    legend_mark_y=str(baseline - 4),
                )
            )
        title = sp.Eq(acts.Phi(_Z), acts.ACTIVATIONS[activation].phi(_Z), evaluate=False)
        titles.append(_unicode(title))
        panels.append(
            Panel(
                activation,
                latex(title),
                escape(titles[-1]),
                str(PANEL_WIDTH * p),
                tuple(lines),
                p == len(check.NORM_ORDER) - 1,
            )
        )

    entries = len(check.NORM_RHOS)
    legend_left = PLOT_LEFT + PLOT_WIDTH - LEGEND_WIDTH - 6
    svg = Svg(
        width=str(SVG_WIDTH),
        height=str(SVG_HEIGHT),
        title=escape(
            f"‖∂{text_name('s_N')}/∂{text_name('s_N - k')}‖₂ for k = 1 … {steps} steps back; "
            f"left: {titles[0]}, right: {titles[1]}"
        ),
        plot_left=str(PLOT_LEFT),
        plot_top=str(PLOT_TOP),
        plot_right=str(PLOT_LEFT + PLOT_WIDTH),
        plot_bottom=str(PLOT_TOP + PLOT_HEIGHT),
        plot_width=str(PLOT_WIDTH),
        plot_height=str(PLOT_HEIGHT),
        title_x=f"{PLOT_LEFT + PLOT_WIDTH / 2:g}",
        title_y=str(PLOT_TOP - 10),
        x_ticks=tuple(Tick(f"{x_px(k):.2f}", str(k)) for k in X_TICKS),
        x_tick_end=str(PLOT_TOP + PLOT_HEIGHT + 5),
        x_tick_label_y=str(PLOT_TOP + PLOT_HEIGHT + 18),
        x_label_y=str(PLOT_TOP + PLOT_HEIGHT + 36),
        y_ticks=tuple(
            Tick(f"{y_px(10.0**e):.2f}", _power_text(e) if e % Y_LABEL_EVERY == 0 else "")
            for e in range(low, high + 1)
        ),
        y_major_end=str(PLOT_LEFT - 5),
        y_minor_end=str(PLOT_LEFT - 3),
        y_tick_label_x=str(PLOT_LEFT - 7),
        y_label=_tspans(f"‖∂{html_name('s_N')}/∂{html_name('s_N - k')}‖<sub>2</sub>"),
        y_label_x="16",
        y_label_y=f"{PLOT_TOP + PLOT_HEIGHT / 2:g}",
        band_left=f"{x_px(BAND[0]):.2f}",
        band_width=f"{x_px(BAND[1]) - x_px(BAND[0]):.2f}",
        legend_left=str(legend_left),
        legend_top=str(PLOT_TOP + 5),
        legend_width=str(LEGEND_WIDTH),
        legend_height=str(LEGEND_FIRST - 5 + LEGEND_STEP * (entries - 1) + 7),
        legend_mark_from=str(legend_left + 6),
        legend_mark_to=str(legend_left + 30),
        legend_text_x=str(legend_left + 36),
    )

    tanh = {rho: by_key[("tanh", rho)] for rho in check.NORM_RHOS}
    identity = {rho: by_key[("identity", rho)] for rho in check.NORM_RHOS}
    small, unit, big = min(check.NORM_RHOS), 1.0, max(check.NORM_RHOS)
    return Vanishing(
        panels=tuple(panels),
        svg=svg,
        x_max=str(steps),
        x_ticks_tex=",".join(str(k) for k in X_TICKS),
        y_min=f"1e{low}",
        y_max=f"1e{high}",
        y_ticks_tex=",".join(f"1e{e}" for e in range(low, high + 1, Y_LABEL_EVERY)),
        y_minor_tex=",".join(f"1e{e}" for e in range(low, high + 1) if e % Y_LABEL_EVERY),
        y_label_tex=rf"\left\lVert {latex(Partial(m.s(m.N), m.s(m.N - K)))} \right\rVert_2",
        band_from=str(BAND[0]),
        band_to=str(BAND[1]),
        steps=f"{latex(m.N)} = {steps}",
        states=f"{latex(m.n_s)} = {check.NORM_STATES}",
        weights=rf"{latex(m.W_s)} = {latex(RHO)}\,Q",
        start=f"{latex(m.s(0))} = 0",
        rho=latex(RHO),
        rhos=tuple(_g(r) for r in check.NORM_RHOS),
        input_scale=_g(check.NORM_INPUT_SCALE),
        seed=str(check.NORM_SEED),
        law=latex(RHO**K),
        law_limit=_power_tex(round(math.log10(check.NORM_LAW_LIMIT))),
        k=latex(K),
        identity=panels[0].title_tex,
        tanh=panels[1].title_tex,
        dphi_bound=rf"0 < {latex(acts.dPhi)} \le 1",
        vanished=_power_tex(round(math.log10(VANISHED))),
        vanished_at=str(_below_from(tanh[small], VANISHED)),
        small_rho=_rho_is(small),
        small_band=(_number(tanh[small][BAND[0] - 1]), _number(tanh[small][BAND[1] - 1])),
        shown_steps=tuple(str(k) for k in SHOWN_STEPS),
        unit_rho=_rho_is(unit),
        unit_shown=tuple(_number(tanh[unit][k - 1]) for k in SHOWN_STEPS),
        big_rho=_rho_is(big),
        big_shown=tuple(_number(tanh[big][k - 1]) for k in SHOWN_STEPS),
        big_law=tuple(
            f"{latex(sp.Pow(sp.nsimplify(big), k, evaluate=False))} "
            f"= {_number(identity[big][k - 1])}"
            for k in SHOWN_STEPS
        ),
    )


def _validated(by_key: dict[tuple[str, float], tuple[float, ...]]) -> int:
    """The number of steps, after checking that every curve the plot draws is there, as long
    as the others, and inside the axis (a value outside would be clipped: a plot that lies)."""
    needed = [(a, r) for a in check.NORM_ORDER for r in check.NORM_RHOS]
    missing = [key for key in needed if key not in by_key]
    if missing:
        raise GenerationError(f"the notes' plot of R6 needs the curves {missing}: not measured")
    if 1.0 not in check.NORM_RHOS:
        raise GenerationError("the prose of the plot quotes ρ = 1: keep it in NORM_RHOS")
    steps = len(by_key[needed[0]])
    if max(X_TICKS) != steps or BAND[1] > steps or max(SHOWN_STEPS) > steps:
        raise GenerationError(f"the plot's x axis {X_TICKS} and band {BAND} assume {steps} steps")
    for key in needed:
        values = by_key[key]
        if len(values) != steps:
            raise GenerationError(f"the curve {key} has {len(values)} norms, expected {steps}")
        if not all(math.isfinite(v) for v in values):
            raise GenerationError(f"the curve {key} is not finite: {values}")
        low, high = min(values), max(values)
        if not 10.0 ** Y_DECADES[0] <= low <= high <= 10.0 ** Y_DECADES[1]:
            raise GenerationError(
                f"the curve {key} runs from {low:.3g} to {high:.3g}, outside the plot's axis "
                f"10^{Y_DECADES[0]} … 10^{Y_DECADES[1]}: widen derive.notes.vanishing.Y_DECADES"
            )
    return steps


def _tspans(html: str) -> str:
    """HTML subscripts (``s̄<sub>N</sub>``, from the notation table) as SVG 1.1 text: a smaller
    tspan shifted down by dy, and the text after it shifted back (baseline-shift is not
    supported everywhere)."""
    parts = re.split(r"<sub>(.*?)</sub>", html)
    out = [escape(parts[0])]
    for sub, after in zip(parts[1::2], parts[2::2], strict=True):
        out.append(f'<tspan dy="{SUB_SHIFT}" font-size="{SUB_SIZE}">{escape(sub)}</tspan>')
        out.append(f'<tspan dy="-{SUB_SHIFT}">{escape(after)}</tspan>' if after else "")
    return "".join(out)


def _unicode(expr: sp.Basic) -> str:
    """Plain Unicode on one line for the SVG's text (ρ, Φ(z) = tanh(z)): SymPy's pretty printer,
    as the lecture's notation table has no entry for these scalars."""
    return str(sp.pretty(expr, use_unicode=True, wrap_line=False))


def _g(value: float) -> str:
    """A parameter as it was written: 0.5, 1, 2."""
    return f"{value:g}"


def _rho_is(rho: float) -> str:
    return f"{latex(RHO)} = {_g(rho)}"


def _power_tex(exponent: int) -> str:
    return f"10^{{{exponent}}}"


def _power_text(exponent: int) -> str:
    """An axis label as pgfplots writes it: 10 with a superscript exponent (10⁰ too)."""
    return "10" + str(exponent).translate(_SUPERSCRIPT)


def _number(value: float) -> str:
    """A measured number for the prose, in LaTeX: two significant digits below 10 (4.3, 0.73,
    and 9.2 \\cdot 10^{-4} below 10⁻³), whole numbers from 10 to 10⁴ (397, 1024), then
    1.1 \\cdot 10^{9}."""
    if not math.isfinite(value) or value <= 0:
        raise GenerationError(f"a norm must be finite and positive, got {value}")
    exponent = math.floor(math.log10(float(f"{value:.2g}")))
    if 1 <= exponent <= 4:
        return f"{value:.0f}"
    if -3 <= exponent <= 0:
        return f"{value:.{1 - exponent}f}"
    mantissa = float(f"{value:.2g}") / 10.0**exponent
    return rf"{mantissa:.1f} \cdot {_power_tex(exponent)}"


def _below_from(norms: Sequence[float], bound: float) -> int:
    """The first k from which every norm stays below ``bound``."""
    for k in range(1, len(norms) + 1):
        if all(v < bound for v in norms[k - 1 :]):
            return k
    raise GenerationError(f"the norms {norms} never stay below {bound:g}")
