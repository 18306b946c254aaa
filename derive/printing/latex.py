"""Stage 5 (notes): a LaTeX printer with the lecture's notation, for the notes and for notebooks.

Contract: :func:`latex` prints any expression of the derivation (matrix expressions, the chain's
factors and terms, recurrence lines) in the lecture's notation, on one line; :func:`aligned`
prints rows of equations as one ``aligned`` block and breaks a row that is too wide at an
operator, so that nothing runs off the page. Notation comes from :mod:`derive.notation` and
nowhere else: templates receive strings printed here. The printer is strict: an expression it
has no rule for raises :class:`~derive.errors.GenerationError` instead of printing SymPy's
fallback text. Nodes of :mod:`derive.ops` print themselves (``_bptt_latex``).

Layout. The printer marks grouping parentheses and the places where a line may break with private
characters; :func:`latex` then sizes each pair of parentheses by how many pairs it encloses
(``(``, ``\\bigl(``, ``\\Bigl(``, ``\\biggl(``) and removes the break marks, while
:func:`aligned` breaks there. Sized delimiters, unlike ``\\left``/``\\right``, may open on one
line of an ``aligned`` block and close on the next, in LaTeX and in KaTeX alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.diagonal import DiagMatrix
from sympy.printing.latex import LatexPrinter

from derive import activations as acts
from derive import chain, closed_form, notation, ops
from derive import model as m
from derive.errors import GenerationError

if TYPE_CHECKING:
    from derive.derivation import Derivation


# Private characters the printer leaves for the layout pass (never in the final text): group
# marks, and marks where a line may break, before a + or −, before a ⊙, or inside a product (in
# that order of preference at the same depth).
_OPEN, _CLOSE = "\ue000", "\ue001"
_BREAK_SUM, _BREAK_OP, _BREAK = "\ue002", "\ue003", "\ue004"
_BREAKS = {_BREAK_SUM: 0, _BREAK_OP: 1, _BREAK: 2}
# Delimiter sizes by the number of pairs a pair encloses.
_SIZES = (("(", ")"), (r"\bigl(", r"\bigr)"), (r"\Bigl(", r"\Bigr)"), (r"\biggl(", r"\biggr)"))


# ---------------------------------------------------------------------------------------------
# Nodes SymPy lacks: the chain rule written the lecture's way.


class Partial(sp.Expr):
    """The Leibniz factor ∂numerator/∂denominator, unevaluated (a name, not a derivative)."""

    is_commutative = False

    def __new__(cls, numerator: sp.MatrixSymbol, denominator: sp.MatrixSymbol) -> Partial:
        return super().__new__(cls, numerator, denominator)

    @property
    def numerator(self) -> sp.MatrixSymbol:
        return self.args[0]

    @property
    def denominator(self) -> sp.MatrixSymbol:
        return self.args[1]


class Dots(sp.Expr):
    """The elided middle of a chain, ⋯."""

    is_commutative = False


class Chain(sp.Expr):
    """A product of Leibniz factors in the lecture's order (the loss first, the weight last)."""

    is_commutative = False


class Numbers(sp.Expr):
    """Numbers written as a product, left unevaluated (the worked example's factors)."""

    is_commutative = False


class Ref(sp.Expr):
    """An equation number standing for its equation, ``(38)``."""

    def __new__(cls, tag: str) -> Ref:
        return super().__new__(cls, Str(tag))

    @property
    def tag(self) -> str:
        return str(self.args[0])


class Note(sp.Expr):
    """A side remark in a display: words (``str``) and formulas, ``for the loss E_N``."""

    def __new__(cls, *parts: Any) -> Note:
        args = [Str(p) if isinstance(p, str) else p for p in parts]
        return super().__new__(cls, *args)


def leibniz(factor: chain.Factor) -> Partial:
    """A factor of the chain rule as its Leibniz form."""
    return Partial(factor.numerator, factor.denominator)


def leibniz_chain(term: chain.Term) -> Chain:
    """A term of the chain rule as the product of its factors' Leibniz forms."""
    return Chain(*(leibniz(f) for f in term.factors))


# ---------------------------------------------------------------------------------------------


def _group(text: str) -> str:
    return f"{_OPEN}{text}{_CLOSE}"


def _is_atom(expr: Any) -> bool:
    """Printed without parentheses wherever it stands: a symbol, Φ(·), a transposed symbol."""
    if isinstance(expr, sp.Transpose):
        return isinstance(expr.arg, sp.MatrixSymbol)
    return isinstance(
        expr, (sp.MatrixSymbol, ElementwiseApplyFunction, DiagMatrix, ops.Softmax, sp.Identity)
    )


def _needs_group(expr: Any) -> bool:
    """Parentheses around a factor of a product: sums and products, but not (A − B)ᵀ."""
    if _is_atom(expr) or isinstance(expr, sp.Transpose):
        return False
    return not (isinstance(expr, sp.MatAdd) and all(_transposed(a) is not None for a in expr.args))


def _flatten_matmul(expr: sp.MatMul) -> tuple[Any, list[Any]]:
    """Scalar coefficient and matrix factors of a product, nested products flattened."""
    coeff: Any = sp.Integer(1)
    factors: list[Any] = []
    for arg in expr.args:
        if isinstance(arg, sp.MatMul):
            c, fs = _flatten_matmul(arg)
            coeff *= c
            factors.extend(fs)
        elif getattr(arg, "is_Matrix", False):
            factors.append(arg)
        else:
            coeff *= arg
    return coeff, factors


def _negative(term: Any) -> bool:
    return isinstance(term, sp.MatMul) and bool(_flatten_matmul(term)[0].is_negative)


def _transposed(term: Any) -> Any | None:
    """B for a term Bᵀ or c·Bᵀ (c a number), else None."""
    if isinstance(term, sp.Transpose):
        return term.arg
    if isinstance(term, sp.MatMul):
        coeff, factors = _flatten_matmul(term)
        if len(factors) == 1 and isinstance(factors[0], sp.Transpose) and coeff.is_number:
            return sp.MatMul(coeff, factors[0].arg)
    return None


class BPTTLatexPrinter(LatexPrinter):
    """LaTeX in the lecture's notation: bars on row vectors, ⊙, ᵀ as ^{\\top}, Φ and Φ'."""

    printmethod = "_bptt_latex"
    # inline: Leibniz factors as ∂u/∂v with a slash, for running text.
    _default_settings: ClassVar[dict[str, Any]] = {
        **LatexPrinter._default_settings,
        "inline": False,
    }

    def emptyPrinter(self, expr: Any) -> str:
        """Strict: an object without a rule is an error, never SymPy's fallback text."""
        raise GenerationError(f"no LaTeX rule for a {type(expr).__name__}: {expr!r}")

    def _print_Basic(self, expr: sp.Basic) -> str:
        """Strict: a SymPy node without a rule of its own is an error, not ``Name(args)``."""
        raise GenerationError(f"no LaTeX rule for a {type(expr).__name__}: {expr}")

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        """Names come from the lecture's notation table (s_3 → \\bar{s}_{3})."""
        return notation.latex_name(str(expr.name))

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        """ᵀ as ^{\\top}; anything but a symbol is grouped first."""
        arg = self._print(expr.arg)
        return f"{arg}^{{\\top}}" if _is_atom(expr.arg) else f"{_group(arg)}^{{\\top}}"

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        """Products by juxtaposition, nested products flattened, scalar coefficients in front."""
        coeff, factors = _flatten_matmul(expr)
        parts = [_group(self._print(f)) if _needs_group(f) else self._print(f) for f in factors]
        body = f" {_BREAK}".join(parts)
        if coeff == 1:
            return body
        if coeff == -1:
            return f"-{body}"
        return f"{self._print(coeff)} {body}"

    def _print_MatAdd(self, expr: sp.MatAdd) -> str:
        """Sums in the lecture's order, a negated term as a subtraction, (Aᵀ − Bᵀ) as (A − B)ᵀ."""
        inner = [_transposed(a) for a in expr.args]
        if all(i is not None for i in inner):
            return f"{_group(self._print(sp.MatAdd(*inner)))}^{{\\top}}"
        out = ""
        for i, term in enumerate(sorted(expr.args, key=self._order)):
            if _negative(term):
                out += f" {_BREAK_SUM}- {self._print(-term)}" if i else f"-{self._print(-term)}"
            else:
                out += f" {_BREAK_SUM}+ {self._print(term)}" if i else self._print(term)
        return out

    def _order(self, term: Any) -> tuple[bool, int]:
        """SymPy sorts terms by name; we sort by NOTATION's order, subtractions last."""
        first = next(
            (s for s in sp.preorder_traversal(term) if isinstance(s, sp.MatrixSymbol)), None
        )
        rank = len(notation.NOTATION) if first is None else notation.rank(str(first.name))
        return (_negative(term), rank)

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        """The Hadamard (entry-wise) product as ⊙; products and sums inside are grouped. A row
        sum (every entry the same number) multiplies as that number, in front."""
        sums = [a for a in expr.args if isinstance(a, ops.RowSum)]
        rest = [a for a in expr.args if not isinstance(a, ops.RowSum)]
        parts = [_group(self._print(a)) if _needs_group(a) else self._print(a) for a in rest]
        body = f" {_BREAK_OP}\\odot ".join(parts)
        if sums:
            scalar = " ".join(self._print(a) for a in sums)
            return f"{scalar} {_group(body) if len(rest) > 1 else body}"
        return body

    def _print_RowSum(self, expr: ops.RowSum) -> str:
        """The sum of a row's entries, v̄ 1 (1 a column of ones)."""
        ones = r" \mathbf{1}"
        return _group(self._print(expr.args[0]) + ones)

    def _print_RowMax(self, expr: ops.RowMax) -> str:
        """The largest entry of a row."""
        return r"\max " + _group(self._print(expr.args[0]))

    def _print_HadamardPower(self, expr: sp.HadamardPower) -> str:
        """An entry-wise power, (d̄_t − ȳ_t)^2 as the lecture writes the squared error."""
        base = self._print(expr.base)
        power = self._print(expr.exp)
        return f"{_group(base)}^{{{power}}}" if _needs_group(expr.base) else f"{base}^{{{power}}}"

    def _print_ElementwiseApplyFunction(self, expr: ElementwiseApplyFunction) -> str:
        """Φ and Φ' applied entry by entry, as the lecture writes Φ(·); a gated cell's σ, tanh
        and their derivatives alike."""
        fn = acts.applied_function(expr)
        if notation.function(fn) is None:
            raise GenerationError(f"no LaTeX rule for the entry-wise function {fn}")
        return f"{self._print(fn)}({self._print(expr.expr)})"

    def _print_UndefinedFunction(self, expr: Any) -> str:
        """A named function by itself, Φ or Φ', σ, tanh and their derivatives (any other
        function has no notation)."""
        entry = notation.function(expr)
        if entry is not None:
            return entry.latex
        raise GenerationError(f"no LaTeX rule for the function {expr}")

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        """The row of ones of a gate's complement, 1 − ū."""
        return "1"

    def _print_DiagMatrix(self, expr: DiagMatrix) -> str:
        """diag(v̄) of a row v̄: DiagMatrix wants a column, so its transpose is only bookkeeping."""
        v = expr.args[0]
        if isinstance(v, sp.Transpose):
            v = v.arg
        elif isinstance(v, ElementwiseApplyFunction) and isinstance(v.expr, sp.Transpose):
            v = ElementwiseApplyFunction(v.function, v.expr.arg)
        return rf"\operatorname{{diag}}({self._print(v)})"

    def _print_Identity(self, expr: sp.Identity) -> str:
        """The identity with its size, I_{n_y} (the Jacobian of a linear output)."""
        return f"I_{{{self._print(expr.rows)}}}"

    def _print_ZeroMatrix(self, expr: sp.ZeroMatrix) -> str:
        """A zero matrix is 0 whatever its size."""
        return "0"

    def _print_Partial(self, expr: Partial) -> str:
        """Leibniz's ∂u/∂v as a fraction, as the lecture writes the factors of the chain."""
        num, den = self._print(expr.numerator), self._print(expr.denominator)
        if self._settings["inline"]:
            return rf"\partial {num}/\partial {den}"
        return rf"\frac{{\partial {num}}}{{\partial {den}}}"

    def _print_Dots(self, expr: Dots) -> str:
        """The elided middle of a chain."""
        return r"\cdots"

    def _print_Chain(self, expr: Chain) -> str:
        """Factors side by side with a thin space, a line break allowed between them."""
        return rf" {_BREAK}\,".join(self._print(a) for a in expr.args)

    def _print_Numbers(self, expr: Numbers) -> str:
        """a · b · c, a negative number in parentheses."""
        parts = [self._print(a) for a in expr.args]
        return r" \cdot ".join(f"({p})" if p.startswith("-") else p for p in parts)

    def _print_Ref(self, expr: Ref) -> str:
        """An equation number as upright text, (38)."""
        return rf"\text{{({expr.tag})}}"

    def _print_Note(self, expr: Note) -> str:
        """Words upright, formulas as math, side by side."""
        return " ".join(
            rf"\text{{{a}}}" if isinstance(a, Str) else self._print(a) for a in expr.args
        )

    def _print_StrictLessThan(self, expr: sp.StrictLessThan) -> str:
        """t < N: the range of a recurrence's step."""
        return f"{self._print(expr.lhs)} < {self._print(expr.rhs)}"

    def _print_Factor(self, expr: chain.Factor) -> str:
        """A factor of the chain rule prints as its Leibniz form."""
        return self._print(leibniz(expr))

    def _print_Term(self, expr: chain.Term) -> str:
        """A term of the chain rule prints as the product of its factors' Leibniz forms."""
        return self._print(leibniz_chain(expr))

    def _print_Expansion(self, expr: chain.Expansion) -> str:
        """An expansion prints as the sum of its terms, a line break allowed before each +."""
        return f" {_BREAK_SUM}+ ".join(self._print(t) for t in expr.terms)

    def _print_Definition(self, expr: closed_form.Definition) -> str:
        """A line of the backward recurrence, target = expression."""
        return f"{self._print(expr.target)} = {self._print(expr.expression)}"


_PRINTERS = {False: BPTTLatexPrinter(), True: BPTTLatexPrinter({"inline": True})}


def _raw(expr: Any, inline: bool = False) -> str:
    return str(_PRINTERS[inline].doprint(expr))


def _layout(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Size the group marks into delimiters; split at the break marks.

    A pair of parentheses is sized by the number of pairs it encloses. Returns the segments
    between break marks and, for each break, its cost: (number of pairs open there, kind).
    """
    height: dict[int, int] = {}
    stack: list[tuple[int, int]] = []  # (position of the open mark, height so far)
    for pos, ch in enumerate(text):
        if ch == _OPEN:
            stack.append((pos, 0))
        elif ch == _CLOSE:
            start, h = stack.pop()
            height[start] = height[pos] = h
            if stack:
                outer, oh = stack[-1]
                stack[-1] = (outer, max(oh, h + 1))
    if stack:
        raise GenerationError(f"unbalanced groups in {text!r}")
    segments: list[str] = []
    depths: list[tuple[int, int]] = []
    current: list[str] = []
    depth = 0
    for pos, ch in enumerate(text):
        if ch in (_OPEN, _CLOSE):
            opening, closing = _SIZES[min(height[pos], len(_SIZES) - 1)]
            current.append(opening if ch == _OPEN else closing)
            depth += 1 if ch == _OPEN else -1
        elif ch in _BREAKS:
            segments.append("".join(current))
            depths.append((depth, _BREAKS[ch]))
            current = []
        else:
            current.append(ch)
    segments.append("".join(current))
    return segments, depths


def latex(expr: Any, *, inline: bool = False) -> str:
    """``expr`` in the lecture's notation, on one line; ``inline`` for running text (∂u/∂v)."""
    return "".join(_layout(_raw(expr, inline))[0])


def shape(symbol: sp.MatrixSymbol) -> str:
    """The shape of a symbol, ``1 \\times n_{x}``."""
    rows, cols = symbol.shape
    return rf"{latex(rows)} \times {latex(cols)}"


def html(symbol: sp.MatrixSymbol) -> str:
    """A symbol as HTML text for diagram labels, s̄<sub>3</sub>."""
    return notation.html_name(str(symbol.name))


# ---------------------------------------------------------------------------------------------
# Width and line breaking.

# Approximate widths in em of what the printer emits (Computer Modern, display style). They only
# decide where a long row breaks; the notes' test compiles the result and fails on overfull boxes.
_WIDE = {
    r"\odot": 1.25,
    r"\mapsto": 1.9,
    r"\cdots": 1.5,
    r"\times": 1.3,
    r"\sum": 1.5,
    r"\partial": 0.55,
    r"\Phi": 0.75,
    r"\delta": 0.45,
    r"\top": 0.75,
    r"\qquad": 2.0,
    r"\quad": 1.0,
    r"\bigl": 0.45,
    r"\bigr": 0.45,
    r"\Bigl": 0.5,
    r"\Bigr": 0.5,
    r"\biggl": 0.55,
    r"\biggr": 0.55,
    r"\le": 1.3,
}
_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|.", re.DOTALL)


def width(tex: str) -> float:
    """An estimate of the printed width of ``tex`` in em."""
    tokens = _TOKEN.findall(tex)
    return _width(tokens, 0, len(tokens))


def _group_end(tokens: list[str], start: int) -> int:
    """Index after the brace group (or single token) beginning at ``start``."""
    if tokens[start] != "{":
        return start + 1
    depth = 0
    for i in range(start, len(tokens)):
        depth += {"{": 1, "}": -1}.get(tokens[i], 0)
        if depth == 0:
            return i + 1
    return len(tokens)


def _arg(tokens: list[str], start: int) -> tuple[float, int]:
    end = _group_end(tokens, start)
    inner = (start + 1, end - 1) if tokens[start] == "{" else (start, end)
    return _width(tokens, *inner), end


def _width(tokens: list[str], start: int, stop: int) -> float:
    total = 0.0
    i = start
    while i < stop:
        tok = tokens[i]
        if tok == r"\frac":
            num, i = _arg(tokens, i + 1)
            den, i = _arg(tokens, i)
            total += max(num, den) + 0.3
            continue
        if tok in ("_", "^"):  # a subscript and a superscript stack: the wider one counts
            w, i = _arg(tokens, i + 1)
            if i < stop and tokens[i] in ("_", "^") and tokens[i] != tok:
                w2, i = _arg(tokens, i + 1)
                w = max(w, w2)
            total += 0.7 * w
            continue
        if tok in (r"\bar", r"\operatorname", r"\text", r"\mathrm"):
            w, i = _arg(tokens, i + 1)
            total += w if tok == r"\bar" else 0.9 * w
            continue
        i += 1
        if tok in _WIDE:
            total += _WIDE[tok]
        elif tok in ("{", "}", "&", " ", "\\\\", r"\,", r"\!", "'"):
            total += 0.3 if tok == "'" else (0.17 if tok == r"\," else 0.0)
        elif tok in ("+", "-", "="):
            total += 1.3
        elif tok in ("(", ")", "[", "]", ","):
            total += 0.4
        elif tok.isupper():
            total += 1.05 if tok == "W" else 0.8
        else:
            total += 0.55
    return total


# Room for one row of an aligned block in the notes: the text width of the .tex (16 cm at 11 pt,
# about 41 em) less an equation tag and some margin. Rows are broken to stay within it.
WIDTH = 34.0
_CONTINUE = r"\qquad{}"


def _break(
    segments: list[str], depths: list[tuple[int, int]], first: float, rest: float
) -> list[str]:
    """Lines of at most ``first`` (then ``rest``) em, broken at the break marks.

    Each line takes, among the breaks that fit and leave the rest for one more line (failing
    that, that leave the line at least half full), the one with the fewest open parentheses
    (then: before a sum's term, before ⊙, inside a product; the latest on a tie), so that lines
    end between the big pieces of an expression.
    """
    lines: list[str] = []
    start, last = 0, len(segments) - 1
    while True:
        budget = first if not lines else rest
        if start == last or width("".join(segments[start:])) <= budget:
            lines.append("".join(segments[start:]).strip())
            return lines
        fitting: list[tuple[int, float]] = []
        for k in range(start, last):
            w = width("".join(segments[start : k + 1]))
            if w > budget:
                break
            fitting.append((k, w))
        if not fitting:  # one piece wider than the line: it has to stand alone
            fitting = [(start, 0.0)]
        rest_fits = [(k, w) for k, w in fitting if width("".join(segments[k + 1 :])) <= rest]
        full = rest_fits or [(k, w) for k, w in fitting if w >= budget / 2] or fitting[-1:]
        end = min(full, key=lambda kw: (*depths[kw[0]], -kw[0]))[0]
        lines.append("".join(segments[start : end + 1]).strip())
        start = end + 1


@dataclass(frozen=True)
class Row:
    """One row of an aligned block: pairs of (left side, relation, right side).

    ``relation`` is LaTeX ("=", r"\\mapsto", or "" for a left side alone); only the right side of
    the last pair is broken across lines when the row is too wide.
    """

    pairs: tuple[tuple[Any, str, Any], ...]

    @classmethod
    def of(cls, lhs: Any, rhs: Any, relation: str = "=") -> Row:
        return cls(((lhs, relation, rhs),))


def aligned(rows: Iterable[Row], *, max_width: float = WIDTH) -> str:
    """Rows as one ``aligned`` block; a single row that fits on a line stays a plain equation.

    A row of one pair that is wider than ``max_width`` continues on indented lines, broken at an
    operator; rows of several pairs (side-by-side columns) are never broken.
    """
    lines: list[str] = []
    for row in rows:
        cells = []
        for lhs, relation, rhs in row.pairs:
            left = "" if lhs is None else latex(lhs)
            rel = f"{relation} " if relation else ""
            right = ([""], []) if rhs is None else _layout(_raw(rhs))
            cells.append((left, rel, right))
        if len(cells) == 1:
            left, rel, (segments, depths) = cells[0]
            head = width(left) + width(rel)
            parts = _break(segments, depths, max_width - head, max_width - 2.5)
            lines.append(f"{left} &{rel}{parts[0]}".strip())
            lines.extend(f"&{_CONTINUE} {part}" for part in parts[1:])
        else:
            lines.append(
                " &\\qquad ".join(
                    f"{left} &{rel}{''.join(right[0])}".strip() for left, rel, right in cells
                )
            )
    if len(lines) == 1 and lines[0].count("&") == 1:
        before, after = lines[0].split("&")
        return f"{before.strip()} {after.strip()}".strip()
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


def equation(lhs: Any, rhs: Any, *, relation: str = "=", max_width: float = WIDTH) -> str:
    """``lhs = rhs``, broken across the lines of an ``aligned`` block when it is too wide."""
    return aligned([Row.of(lhs, rhs, relation)], max_width=max_width)


def inline_equation(lhs: Any, rhs: Any, *, relation: str = "=") -> str:
    """``lhs = rhs`` on one line, for running text."""
    return f"{latex(lhs, inline=True)} {relation} {latex(rhs, inline=True)}"


# ---------------------------------------------------------------------------------------------


def derivation_latex(derivation: Derivation) -> str:
    """A whole derivation for a notebook (``Derivation._repr_latex_``): chains, closed forms, δ."""
    rows: list[Row] = []
    total = sp.MatrixSymbol("E", 1, 1)
    for name, expansion in derivation.expansions.items():
        loss = m.E(derivation.config.steps) if derivation.config.loss_steps == "last" else total
        lhs = Partial(loss, expansion.weight)
        rows.append(Row.of(lhs, expansion))
        expanded = derivation.closed.expanded[name]
        rows.append(Row.of(None, sp.MatAdd(*expanded) if len(expanded) > 1 else expanded[0]))
    for line in derivation.closed.recurrence:
        rows.append(Row.of(line.target, line.expression))
    for name, expr in derivation.closed.collected.items():
        loss = m.E(derivation.config.steps) if derivation.config.loss_steps == "last" else total
        rows.append(Row.of(Partial(loss, derivation.expansions[name].weight), expr))
    return "$$\n" + aligned(rows) + "\n$$"
