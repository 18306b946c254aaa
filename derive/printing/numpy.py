"""Stage 5 (code): a NumPy printer for the derivation's matrix expressions.

Contract: :class:`BPTTNumPyPrinter` prints the dimension-free matrix expressions of
:mod:`derive.closed_form` as NumPy code over row-stacked arrays: matrix products as ``@``,
transposes as ``.T``, Hadamard products and powers elementwise, Φ and Φ' as NumPy functions of
the configured activation (in the numeric forms :mod:`derive.activations` lists, which the proof
checks). Nodes of :mod:`derive.ops` print themselves (``_bptt_numpy``). It is strict: a node it
does not know raises instead of printing something that is not valid Python. ``numpy`` is
printed as ``np``.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from derive import activations as acts

_MUL = PRECEDENCE["Mul"]


def _is_leaf(e: Any) -> bool:
    return isinstance(e, sp.MatrixSymbol) or (
        isinstance(e, sp.Transpose) and isinstance(e.arg, sp.MatrixSymbol)
    )


def _is_row_dot(matrices: Any) -> bool:
    """ū v̄ᵀ … : the product starts with a 1×1 inner product of two row vectors."""
    return (
        len(matrices) >= 2
        and matrices[0].shape[0] == 1
        and isinstance(matrices[1], sp.Transpose)
        and matrices[1].shape[1] == 1
    )


def _is_reciprocal(e: Any) -> bool:
    return isinstance(e, sp.HadamardPower) and e.exp == -1


def _is_negated(term: sp.Basic) -> bool:
    if not isinstance(term, sp.MatMul):
        return False
    return bool(term.as_coeff_matrices()[0].is_negative)


def _only_called(body: sp.Expr, var: sp.Symbol) -> bool:
    """Whether ``var`` occurs in ``body`` only as an argument of function calls."""
    if body == var:
        return False
    for node in sp.preorder_traversal(body):
        if var in node.args and not isinstance(node, sp.core.function.Application):
            return False
    return True


class BPTTNumPyPrinter(NumPyPrinter):
    """NumPy printer with the activation Φ of one configuration bound to the generic Φ, Φ'."""

    printmethod = "_bptt_numpy"

    def __init__(self, activation: acts.Activation, settings: dict[str, Any] | None = None) -> None:
        super().__init__({"strict": True, **(settings or {})})
        self.printmethod = BPTTNumPyPrinter.printmethod  # NumPyPrinter sets "_numpycode"
        self.activation = activation

    def _module_format(self, fqn: str, register: bool = True) -> str:
        """Generated modules import numpy as np."""
        name = super()._module_format(fqn, register)
        return "np." + name.removeprefix("numpy.") if name.startswith("numpy.") else name

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        """The row of ones of a gate's complement, 1 − ū: the number 1, broadcast."""
        return "1"

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        """A matrix symbol is named by the code that holds it (``s_2``, ``delta[t + 1]``)."""
        return str(expr.name)

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        """Matrix products as ``@``; a scalar coefficient in front with ``*``."""
        coeff, matrices = expr.as_coeff_matrices()
        if _is_row_dot(matrices):
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
        if isinstance(matrices[0], sp.DiagMatrix) and len(matrices) > 1:
            # diag(v̄ᵀ) M of a stack of rows v̄ (B, n): one Jacobian per row, (B, n, n), each row
            # of M scaled by an entry of v̄ (state_jacobian_norms' factors, R6)
            diag = self._diag_column(matrices[0])
            if coeff == 1 and len(matrices) == 2:
                return f"{diag}[..., :, None] * {self._print(matrices[1])}"
            rest = sp.MatMul(coeff, *matrices[1:])
            return f"{diag}[..., :, None] * ({self._print(rest)})"
        body = " @ ".join(self.parenthesize(a, _MUL, strict=False) for a in matrices)
        if coeff == 1:
            return body
        if len(matrices) > 1:  # c·(A @ B): scale the product, not the (maybe large) operand A
            return f"{body} * {self._print(coeff)}"
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
        """The Hadamard product ⊙ is NumPy's elementwise ``*``; products inside get parentheses;
        a factor to the power −1 divides."""
        num = [a for a in expr.args if not _is_reciprocal(a)]
        den = [a.base for a in expr.args if _is_reciprocal(a)]
        text = " * ".join(self.parenthesize(a, _MUL, strict=False) for a in num)
        for a in den:
            text += f" / {self.parenthesize(a, PRECEDENCE['Pow'], strict=True)}"
        return text

    def _print_HadamardPower(self, expr: sp.HadamardPower) -> str:
        """Elementwise power."""
        base = self.parenthesize(expr.base, PRECEDENCE["Pow"], strict=True)
        return f"{base} ** {self._print(expr.exp)}"

    def _elementwise_body(self, expr: ElementwiseApplyFunction) -> sp.Expr:
        """The scalar body of Φ, Φ' or a Lambda with its variable standing for the printed array."""
        fn = acts.bound(acts.applied_function(expr), self.activation, "numeric_phi")
        if not isinstance(fn, sp.Lambda) or len(fn.variables) != 1:
            raise TypeError(f"cannot print the elementwise function {fn} as NumPy")
        (var,) = fn.variables
        if _only_called(fn.expr, var):
            # np.tanh(a + b), np.minimum(a + b, 0): the call's parentheses suffice
            arg = self._print(expr.expr)
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

    def _print_Trace(self, expr: sp.Trace) -> str:
        """tr(a bᵀ) = Σ of the entries of a ⊙ b, over a batch's rows too: Eq. 35 as a dot
        product (tr(e eᵀ) is the sum of the squared residuals)."""
        arg = expr.arg
        if isinstance(arg, sp.MatMul) and len(arg.args) == 2:
            a, b = arg.args
            if isinstance(b, sp.Transpose) and a.shape[0] == 1:
                return f"np.vdot({self._print(a)}, {self._print(b.arg)})"
        raise TypeError(f"only tr(a bᵀ) of two rows can be printed, got {expr}")

    def _print_Max(self, expr: sp.Max) -> str:
        """Elementwise maximum of two operands (ReLU)."""
        if len(expr.args) != 2:
            raise TypeError(f"only a two-argument Max can be printed, got {expr}")
        a, b = sorted(expr.args, key=lambda e: e.is_number)
        return f"np.maximum({self._print(a)}, {self._print(b)})"

    def _print_Min(self, expr: sp.Min) -> str:
        """Elementwise minimum of two operands (the overflow-safe sigmoid)."""
        if len(expr.args) != 2:
            raise TypeError(f"only a two-argument Min can be printed, got {expr}")
        a, b = sorted(expr.args, key=lambda e: e.is_number)
        return f"np.minimum({self._print(a)}, {self._print(b)})"

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        """The step function with its value at 0 (ReLU's derivative)."""
        return f"np.heaviside({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Rational(self, expr: sp.Rational) -> str:
        """A rational as a float literal division (Python 3): ``1/2``."""
        return f"{expr.p}/{expr.q}"

    # -----------------------------------------------------------------------------------------
    # In-place statements: the recurrences write each step into preallocated memory.

    def inplace(self, out: str, expr: Any) -> list[str]:
        """Lines that compute ``expr`` into the existing array ``out`` without temporaries
        where NumPy allows it (``np.dot(..., out=)``, ``+=``, ``*=``, ufuncs with ``out=``).

        Falls back to ``out[...] = expr`` for a node it cannot write in place, and refuses to
        write in place when ``expr`` reads ``out`` itself.
        """
        if out in {str(s.name) for s in expr.atoms(sp.MatrixSymbol)}:
            return [f"{out}[...] = {self._print(expr)}"]
        return self._inplace(out, expr)

    def _inplace(self, out: str, expr: Any) -> list[str]:
        p = self._print
        if _is_leaf(expr):
            return [f"np.copyto({out}, {p(expr)})"]
        if isinstance(expr, sp.MatAdd):
            terms = sorted(expr.args, key=lambda a: (_is_negated(a), not isinstance(a, sp.MatMul)))
            first, rest = terms[0], terms[1:]
            if _is_leaf(first) and rest and (_is_leaf(rest[0]) or _is_leaf(-rest[0])):
                op, other = ("subtract", -rest[0]) if _is_negated(rest[0]) else ("add", rest[0])
                lines, rest = [f"np.{op}({p(first)}, {p(other)}, out={out})"], rest[1:]
            else:
                lines = self._inplace(out, first)
            for a in rest:
                lines.append(f"{out} -= {p(-a)}" if _is_negated(a) else f"{out} += {p(a)}")
            return lines
        if isinstance(expr, sp.MatMul):
            coeff, matrices = expr.as_coeff_matrices()
            if len(matrices) == 2 and not _is_row_dot(matrices):
                a, b = (self.parenthesize(x, _MUL, strict=False) for x in matrices)
                lines = [f"np.dot({a}, {b}, out={out})"]  # for 2-D arrays, cheaper than matmul
                return lines if coeff == 1 else [*lines, f"{out} *= {p(coeff)}"]
            if coeff != 1 and len(matrices) == 1:
                if _is_leaf(matrices[0]):
                    return [f"np.multiply({p(matrices[0])}, {p(coeff)}, out={out})"]
                return [*self._inplace(out, matrices[0]), f"{out} *= {p(coeff)}"]
        if isinstance(expr, sp.HadamardProduct):
            args = sorted(expr.args, key=_is_leaf)  # the compound factor is written first
            if len(args) == 2 and all(_is_leaf(a) for a in args):
                return [f"np.multiply({p(args[0])}, {p(args[1])}, out={out})"]
            lines = self._inplace(out, args[0])
            lines.extend(f"{out} *= {p(a)}" for a in args[1:])
            return lines
        if isinstance(expr, ElementwiseApplyFunction) and _is_leaf(expr.expr):
            fn = acts.applied_function(expr)
            lam = acts.bound(fn, self.activation, "numeric_phi")
            scalar = self._inplace_scalar(out, lam.expr, lam.variables[0], p(expr.expr))
            if scalar is not None:
                return scalar
        if isinstance(expr, ElementwiseApplyFunction):
            body = self._elementwise_body(expr)
            ufunc = self._kf.get(type(body).__name__) if isinstance(body, sp.Function) else None
            if ufunc is not None and len(body.args) == 1:  # Φ = tanh: np.tanh(out, out=out)
                name = self._module_format(ufunc)
                return [*self._inplace(out, expr.expr), f"{name}({out}, out={out})"]
        return [f"{out}[...] = {p(expr)}"]

    def _inplace_scalar(self, out: str, body: Any, var: sp.Symbol, arg: str) -> list[str] | None:
        """An elementwise body of the array ``arg`` (1 − v², v(1 − v), tanh v, …) written into
        ``out`` by ufuncs with ``out=``; None when the body has another shape."""
        if body == var:
            return [f"np.copyto({out}, {arg})"]
        if body.is_number:
            return [f"{out}.fill({self._print(body)})"]
        if isinstance(body, sp.Pow) and body.base == var and body.exp == 2:
            return [f"np.multiply({arg}, {arg}, out={out})"]
        if isinstance(body, sp.Heaviside) and body.args[0] == var:
            return [f"np.heaviside({arg}, {self._print(body.args[1])}, out={out})"]
        if isinstance(body, sp.Function) and body.args == (var,):
            ufunc = self._kf.get(type(body).__name__)
            return None if ufunc is None else [f"{self._module_format(ufunc)}({arg}, out={out})"]
        if isinstance(body, sp.Add | sp.Mul):
            number, rest = body.as_independent(var, as_Add=isinstance(body, sp.Add))
            if isinstance(body, sp.Add) and number != 0:
                if isinstance(rest, sp.Mul) and rest.as_coeff_Mul()[0] == -1:  # c − X
                    inner = self._inplace_scalar(out, -rest, var, arg)
                    c = self._print(number)
                    return (
                        None if inner is None else [*inner, f"np.subtract({c}, {out}, out={out})"]
                    )
                inner = self._inplace_scalar(out, rest, var, arg)
                return None if inner is None else [*inner, f"{out} += {self._print(number)}"]
            if isinstance(body, sp.Mul) and number != 1:
                inner = self._inplace_scalar(out, rest, var, arg)
                return None if inner is None else [*inner, f"{out} *= {self._print(number)}"]
            if isinstance(body, sp.Mul) and len(body.args) == 2 and var in body.args:
                other = next(a for a in body.args if a != var)
                inner = self._inplace_scalar(out, other, var, arg)
                return None if inner is None else [*inner, f"{out} *= {arg}"]
        return None

    def _diag_column(self, expr: Any) -> str:
        """The row v̄ of diag(v̄ᵀ), printed."""
        (column,) = expr.args
        if not isinstance(column, sp.Transpose):
            raise TypeError(f"expected diag(v̄ᵀ) of a row v̄, got {expr}")
        row = column.arg
        if (
            isinstance(row, ElementwiseApplyFunction)
            and not self._elementwise_body(row).free_symbols
        ):
            # a constant Φ' (the identity's 1) still needs the rows' shape
            return f"np.full_like({self._print(row.expr)}, {self._print(row)})"
        return self.parenthesize(row, PRECEDENCE["Atom"], strict=True)

    def _print_DiagMatrix(self, expr: Any) -> str:
        """Alone, a diagonal matrix is not printed: code scales rows instead (see MatMul)."""
        raise TypeError(f"a diagonal matrix reached the NumPy printer: {expr}")

    def _print_Identity(self, expr: sp.Identity) -> str:
        """Identities never reach generated code; refuse rather than emit a dense eye."""
        raise TypeError(f"an identity matrix reached the NumPy printer: {expr}")
