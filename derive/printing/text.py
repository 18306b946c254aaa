"""Stage 5 (plain text): a printer for the command line and for comments in generated code.

Contract: :func:`text` prints a matrix expression in the lecture's words, readable in a terminal
and in a code comment: symbols by :mod:`derive.notation` (s̄_3, δ_t, s̄_(t-1)), Φ and Φ' by
name, ⊙ for the Hadamard product, ᵀ for transposes. A name the notation table does not know
(a temporary of the generated code, ``_t0``) prints as itself.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from derive import activations as acts
from derive import notation
from derive.errors import GenerationError


class TextPrinter(StrPrinter):
    """StrPrinter with the model's own nodes written as in the lecture."""

    printmethod = "_bptt_text"

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        """The lecture's notation where it has one (s_3 → s̄_3), else the code's name."""
        try:
            return notation.text_name(str(expr.name))
        except GenerationError:
            return str(expr.name)

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        """ᵀ as a superscript."""
        return f"{self.parenthesize(expr.arg, PRECEDENCE['Pow'])}ᵀ"

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        """⊙ between the factors."""
        return " ⊙ ".join(self.parenthesize(a, PRECEDENCE["Mul"], strict=False) for a in expr.args)

    def _print_DiagMatrix(self, expr: Any) -> str:
        """diag(v̄) for the diagonal matrix of a row v̄ (SymPy holds it as diag(v̄ᵀ))."""
        (arg,) = expr.args
        arg = arg.arg if isinstance(arg, sp.Transpose) else arg
        return f"diag({self._print(arg)})"

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        """Juxtaposition with a · for readability."""
        coeff, matrices = expr.as_coeff_matrices()
        body = " · ".join(self.parenthesize(a, PRECEDENCE["Mul"], strict=False) for a in matrices)
        if coeff == 1:
            return body
        return f"-{body}" if coeff == -1 else f"{self._print(coeff)}·{body}"

    def _print_MatAdd(self, expr: sp.MatAdd) -> str:
        """A negated term as a subtraction (d̄ − ȳ)."""
        out = ""
        for k, term in enumerate(sorted(expr.args, key=_order)):
            if _negated(term):
                out += (
                    f" − {self.parenthesize(-term, PRECEDENCE['Add'])}"
                    if k
                    else f"−{self._print(-term)}"
                )
            else:
                out += f" + {self._print(term)}" if k else self._print(term)
        return out

    def _print_ElementwiseApplyFunction(self, expr: ElementwiseApplyFunction) -> str:
        """Φ(z̄) and Φ'(z̄), not SymPy's Lambda notation."""
        fn = acts.applied_function(expr)
        entry = notation.function(fn)
        name = None if entry is None else entry.text
        if name is None:
            return str(
                self._print(fn.expr.xreplace({fn.variables[0]: sp.Symbol(self._print(expr.expr))}))
            )
        return f"{name}({self._print(expr.expr)})"

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        """The row of ones of a gate's complement, 1 − ū."""
        return "1"

    def _print_Trace(self, expr: sp.Trace) -> str:
        """tr(·) as in the notes."""
        return f"tr({self._print(expr.arg)})"


def _order(term: Any) -> tuple[bool, int]:
    """The lecture's order (x̄_t W_x before s̄_(t-1) W_s), subtractions last."""
    first = next((s for s in sp.preorder_traversal(term) if isinstance(s, sp.MatrixSymbol)), None)
    return (_negated(term), notation.rank(str(first.name)) if first is not None else 0)


def _negated(term: Any) -> bool:
    return isinstance(term, sp.MatMul) and bool(term.as_coeff_matrices()[0].is_negative)


def text(expr: Any) -> str:
    return str(TextPrinter().doprint(expr))
