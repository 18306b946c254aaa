"""Stage 5 (code): a NumPy printer for the derivation's matrix expressions.

Contract: :class:`BPTTNumPyPrinter` prints the dimension-free matrix expressions of
:mod:`derive.closed_form` as NumPy code over row-stacked arrays: matrix products as ``@``,
transposes as ``.T``, Hadamard products and powers elementwise, Φ and Φ' as NumPy functions of
the configured activation. It is strict: a node it does not know raises instead of printing
something that is not valid Python. ``numpy`` is printed as ``np``.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from derive import model as m

_MUL = PRECEDENCE["Mul"]


def _is_negated(term: sp.Basic) -> bool:
    if not isinstance(term, sp.MatMul):
        return False
    return bool(term.as_coeff_matrices()[0].is_negative)


class BPTTNumPyPrinter(NumPyPrinter):
    """NumPy printer with the activation Φ of one configuration bound to the generic Φ, Φ'."""

    def __init__(self, activation: m.Activation, settings: dict[str, Any] | None = None) -> None:
        super().__init__({"strict": True, **(settings or {})})
        self.activation = activation

    def _module_format(self, fqn: str, register: bool = True) -> str:
        """Generated modules import numpy as np."""
        name = super()._module_format(fqn, register)
        return "np." + name.removeprefix("numpy.") if name.startswith("numpy.") else name

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        """A matrix symbol is named by the code that holds it (``s_2``, ``delta[t + 1]``)."""
        return str(expr.name)

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        """Matrix products as ``@``; a scalar coefficient in front with ``*``."""
        coeff, matrices = expr.as_coeff_matrices()
        if (
            len(matrices) >= 2
            and matrices[0].shape[0] == 1
            and isinstance(matrices[1], sp.Transpose)
            and matrices[1].shape[1] == 1
        ):
            # ū v̄ᵀ of two row vectors is 1×1; generated code stacks a batch of rows, so it is a
            # dot product per row (B×1), which then scales the rest of the product row by row.
            u = self.parenthesize(matrices[0], _MUL, strict=False)
            v = self.parenthesize(matrices[1].arg, _MUL, strict=False)
            dot = f"np.sum({u} * {v}, axis=-1, keepdims=True)"
            if len(matrices) == 2:
                return dot if coeff == 1 else f"{self._print(coeff)} * {dot}"
            rest = (
                matrices[2]
                if len(matrices) == 3 and coeff == 1
                else sp.MatMul(coeff, *matrices[2:])
            )
            return f"{dot} * {self.parenthesize(rest, _MUL, strict=False)}"
        body = " @ ".join(self.parenthesize(a, _MUL, strict=False) for a in matrices)
        if coeff == 1:
            return body
        if coeff == -1:
            return f"-{body}"
        return f"{self._print(coeff)} * {body}"

    def _print_MatAdd(self, expr: sp.MatAdd) -> str:
        """Sums with subtraction for negated terms, positive terms first (d̄ − ȳ, not −ȳ + d̄)."""
        out = ""
        terms = sorted(expr.args, key=_is_negated)  # stable: SymPy's order within each group
        for i, term in enumerate(terms):
            if _is_negated(term):
                text = self._print(-term)
                out += f" - {text}" if i else f"-{text}"
            else:
                text = self._print(term)
                out += f" + {text}" if i else text
        return out

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        """``.T`` (a view: no copy)."""
        return f"{self.parenthesize(expr.arg, PRECEDENCE['Atom'], strict=True)}.T"

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        """The Hadamard product ⊙ is NumPy's elementwise ``*``; products inside get parentheses."""
        return " * ".join(self.parenthesize(a, _MUL, strict=False) for a in expr.args)

    def _print_HadamardPower(self, expr: sp.HadamardPower) -> str:
        """Elementwise power."""
        base = self.parenthesize(expr.base, PRECEDENCE["Pow"], strict=True)
        return f"{base} ** {self._print(expr.exp)}"

    def _elementwise_body(self, expr: ElementwiseApplyFunction) -> sp.Expr:
        """The scalar body of Φ, Φ' or a Lambda with its variable standing for the printed array."""
        fn = m.applied_function(expr)
        if fn == m.Phi:
            fn = self.activation.numeric_phi
        elif fn == m.dPhi:
            fn = self.activation.dphi
        if not isinstance(fn, sp.Lambda) or len(fn.variables) != 1:
            raise TypeError(f"cannot print the elementwise function {fn} as NumPy")
        (var,) = fn.variables
        if isinstance(fn.expr, sp.Function) and fn.expr.args == (var,):
            arg = self._print(expr.expr)  # np.tanh(a + b): the call's parentheses suffice
        else:
            arg = self.parenthesize(expr.expr, PRECEDENCE["Atom"], strict=True)
        return fn.expr.xreplace({var: sp.Symbol(arg)})

    def _print_ElementwiseApplyFunction(self, expr: ElementwiseApplyFunction) -> str:
        """Φ, Φ' (bound to the configuration's activation) or a Lambda, applied entry by entry."""
        return self._print(self._elementwise_body(expr))

    def parenthesize(self, item: Any, level: int, strict: bool = False) -> str:
        """An elementwise node binds like its printed body (1 − s² needs parentheses in ⊙)."""
        if isinstance(item, ElementwiseApplyFunction):
            item = self._elementwise_body(item)
        return str(super().parenthesize(item, level, strict))

    def _print_Softmax(self, expr: m.Softmax) -> str:
        """softmax along the last axis, by the module's stable helper (max subtracted first)."""
        return f"_softmax({self._print(expr.arg)})"

    def _print_Trace(self, expr: sp.Trace) -> str:
        """tr(e eᵀ) = tr(eᵀ e) = Σ of all squared entries of e: Eq. 35 summed over the batch."""
        arg = expr.arg
        if isinstance(arg, sp.MatMul) and len(arg.args) == 2 and arg.args[0].T == arg.args[1]:
            e = next(a for a in arg.args if a.shape[0] == 1)
            text = self._print(e)
            return f"np.vdot({text}, {text})"
        raise TypeError(f"only tr(e eᵀ) can be printed, got {expr}")

    def _print_Max(self, expr: sp.Max) -> str:
        """Elementwise maximum of two operands (ReLU)."""
        if len(expr.args) != 2:
            raise TypeError(f"only a two-argument Max can be printed, got {expr}")
        a, b = sorted(expr.args, key=lambda e: e.is_number)
        return f"np.maximum({self._print(a)}, {self._print(b)})"

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        """The step function with its value at 0 (ReLU's derivative)."""
        return f"np.heaviside({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Rational(self, expr: sp.Rational) -> str:
        """A rational as a float literal division (Python 3): ``1/2``."""
        return f"{expr.p}/{expr.q}"

    def _print_DiagMatrix(self, expr: Any) -> str:
        """Jacobians (diag) are for the notes; generated code uses ⊙ instead."""
        raise TypeError(f"a diagonal matrix reached the NumPy printer: {expr}")

    def _print_Identity(self, expr: sp.Identity) -> str:
        """Identities never reach generated code; refuse rather than emit a dense eye."""
        raise TypeError(f"an identity matrix reached the NumPy printer: {expr}")
