"""Stage 5 (code): a scalar printer for the Numba backend's kernels.

Contract: :class:`BPTTNumbaPrinter` prints *scalar* SymPy expressions, one entry of a row at a
time, as code Numba compiles: the kernels of :mod:`derive.codegen.numba_kernels` turn every
matrix expression into loops over entries whose bodies are scalars, with leaves that are already
the text of an array entry (``s[t + 1, b, j]``). Functions print as ``math`` calls, ``Max`` and
``Min`` as the built-ins, the step function as a conditional expression. Φ and Φ' are bound to
the configuration's activation in its proven numeric forms, as in the NumPy printer. Strict: a
node it does not know raises.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from derive import activations as acts

__all__ = ["BPTTNumbaPrinter"]


class BPTTNumbaPrinter(PythonCodePrinter):
    """Scalar Python for ``@njit`` kernels: ``math`` functions, float literals."""

    def __init__(self, activation: acts.Activation, settings: dict[str, Any] | None = None) -> None:
        super().__init__({"strict": True, "fully_qualified_modules": True, **(settings or {})})
        self.activation = activation

    def scalar_function(self, fn: Any) -> sp.Lambda:
        """Φ, Φ' (bound to the activation, Φ in its entry-by-entry form) or a Lambda."""
        fn = acts.bound(fn, self.activation, "entrywise_phi")
        if not isinstance(fn, sp.Lambda) or len(fn.variables) != 1:
            raise TypeError(f"cannot print the elementwise function {fn} for Numba")
        return fn

    def scalar_body(self, fn: Any, argument: sp.Expr) -> sp.Expr:
        """The scalar body of Φ, Φ' or a Lambda applied to ``argument``."""
        fn = self.scalar_function(fn)
        (var,) = fn.variables
        return fn.expr.xreplace({var: argument})

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        """A leaf is the text of an array entry or a local (``s[t + 1, b, j]``), printed as is."""
        return str(expr.name)

    def _print_Max(self, expr: sp.Max) -> str:
        """The built-in max of two scalars (ReLU)."""
        if len(expr.args) != 2:
            raise TypeError(f"only a two-argument Max can be printed, got {expr}")
        a, b = sorted(expr.args, key=lambda e: e.is_number)
        return f"max({self._print(a)}, {self._print(b)})"

    def _print_Min(self, expr: sp.Min) -> str:
        """The built-in min of two scalars (the overflow-safe sigmoid)."""
        if len(expr.args) != 2:
            raise TypeError(f"only a two-argument Min can be printed, got {expr}")
        a, b = sorted(expr.args, key=lambda e: e.is_number)
        return f"min({self._print(a)}, {self._print(b)})"

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        """The step function with its value at 0, as a conditional expression (ReLU's Φ')."""
        u, at0 = expr.args
        arg = self._print(u)
        if at0 == 0:
            return f"(1.0 if {arg} > 0.0 else 0.0)"
        return f"(1.0 if {arg} > 0.0 else ({self._print(sp.Float(at0))} if {arg} == 0.0 else 0.0))"

    def _print_Integer(self, expr: sp.Integer) -> str:
        """Integers as float literals: a kernel's arithmetic stays in floating point."""
        return f"{int(expr)}.0"

    def _print_Rational(self, expr: sp.Rational) -> str:
        """A rational as a float literal division: ``1.0/2.0``."""
        return f"({expr.p}.0/{expr.q}.0)"

    def _print_Float(self, expr: sp.Float) -> str:
        """A float literal by its shortest repr."""
        return repr(float(expr))

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        """Integer powers by repeated products (a**2 → a*a); other powers by ``**``."""
        base, exp = expr.args
        if exp.is_Integer and 2 <= int(exp) <= 4:
            b = self.parenthesize(base, 60, strict=True)
            return "*".join([b] * int(exp))
        if exp == -1:
            return f"1.0/{self.parenthesize(base, 60, strict=True)}"
        return str(super()._print_Pow(expr, rational))
