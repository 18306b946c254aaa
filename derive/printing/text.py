"""Stage 5 (console): a plain-text printer for the command line's summary of a derivation.

Contract: :func:`text` prints a matrix expression in the lecture's words, readable in a terminal:
Φ and Φ' by name, ⊙ for the Hadamard product, ᵀ for transposes, δ and ō spelled out.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from derive import model as m


class TextPrinter(StrPrinter):
    """StrPrinter with the model's own nodes written as in the lecture."""

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        """δ by its letter."""
        return str(expr.name).replace("delta_", "δ_")

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        """ᵀ as a superscript."""
        return f"{self.parenthesize(expr.arg, PRECEDENCE['Pow'])}ᵀ"

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        """⊙ between the factors."""
        return " ⊙ ".join(self.parenthesize(a, PRECEDENCE["Mul"], strict=False) for a in expr.args)

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        """Juxtaposition with a · for readability."""
        coeff, matrices = expr.as_coeff_matrices()
        body = " · ".join(self.parenthesize(a, PRECEDENCE["Mul"], strict=False) for a in matrices)
        if coeff == 1:
            return body
        return f"-{body}" if coeff == -1 else f"{self._print(coeff)}·{body}"

    def _print_ElementwiseApplyFunction(self, expr: ElementwiseApplyFunction) -> str:
        """Φ(z̄) and Φ'(z̄), not SymPy's Lambda notation."""
        fn = m.applied_function(expr)
        name = {m.Phi: "Φ", m.dPhi: "Φ'"}.get(fn, self._print(fn))
        return f"{name}({self._print(expr.expr)})"

    def _print_Trace(self, expr: sp.Trace) -> str:
        """tr(·) as in the notes."""
        return f"tr({self._print(expr.arg)})"

    def _print_Softmax(self, expr: Any) -> str:
        """softmax by name."""
        return f"softmax({self._print(expr.arg)})"


def text(expr: Any) -> str:
    return str(TextPrinter().doprint(expr))
