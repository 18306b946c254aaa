"""Stage 0: the operations the model is built from, each with its local derivative rule.

Contract: the per-step equations of :mod:`derive.model` are SymPy matrix expressions over a small
set of node types: the matrix product and sum, the entry-wise product, an entry-wise function
(Φ), :class:`Softmax` and the loss :class:`SquaredError`. For each type an :class:`Operation`
holds, in one place, the local derivative rule in the numerator layout (the Jacobian
J = ∂out/∂operand, J[a, b] = ∂out_a/∂operand_b, and the pullback U ↦ U J of a row gradient
U = ∂E/∂out), and its explicit evaluation at concrete sizes (the ground truth's raw material).
The node classes of our own also carry their printed forms (``_bptt_latex``, ``_bptt_text``,
``_bptt_numpy``, called by the printers) and, where generated code runs another form
(softmax with its row maximum subtracted), that form as a :class:`NumericForm` which the proof
checks against the definition.

:func:`vjp` and :func:`jacobian` compose the rules through an expression (following named
intermediates through ``definitions`` where asked); :func:`evaluate` instantiates an expression
given explicit matrices for its symbols. Nothing here knows the RNN: :mod:`derive.model` states
it with these operations, and the chain rule and the sweep only call the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive import activations as acts
from derive.activations import NumericForm
from derive.errors import DeriveError

Expr = Any  # a SymPy matrix expression


def is_matrix(e: object) -> bool:
    return bool(getattr(e, "is_Matrix", False))


def mul(*factors: Expr) -> Expr:
    """A flat product, its number in front, identity factors dropped (the seed 1 of a sweep,
    the I of a linear output)."""
    coeff: Any = sp.Integer(1)
    matrices: list[Expr] = []

    def take(f: Expr) -> None:
        nonlocal coeff
        if isinstance(f, sp.MatMul):
            for a in f.args:
                take(a)
        elif not is_matrix(f):
            coeff *= f
        elif not isinstance(f, sp.Identity):
            matrices.append(f)

    for f in factors:
        take(f)
    if not matrices:
        identities = [f for f in factors if isinstance(f, sp.Identity)]
        matrices = identities[:1]
    if coeff == 1:
        return matrices[0] if len(matrices) == 1 else sp.MatMul(*matrices)
    return sp.MatMul(coeff, *matrices)


def tidy(e: Expr) -> Expr:
    """Every product in ``e`` made flat, with identities dropped (after a substitution)."""
    if not is_matrix(e) or isinstance(e, sp.MatrixSymbol) or not e.args:
        return e
    args = [tidy(a) for a in e.args]
    if isinstance(e, sp.MatMul):
        return mul(*args)
    return e.func(*args) if args != list(e.args) else e


def add(terms: list[Expr]) -> Expr | None:
    return None if not terms else terms[0] if len(terms) == 1 else sp.MatAdd(*terms)


# ---------------------------------------------------------------------------------------------
# Node types of our own.


class RowMax(sp.MatrixExpr):
    """Every entry of a row replaced by the row's maximum (a shape-keeping reduction)."""

    def __new__(cls, arg: Expr) -> RowMax:
        return super().__new__(cls, arg)

    @property
    def shape(self) -> tuple[Any, Any]:
        return self.args[0].shape

    def _bptt_numpy(self, printer: Any) -> str:
        return f"np.max({printer._print(self.args[0])}, axis=-1, keepdims=True)"

    def _bptt_text(self, printer: Any) -> str:
        return f"max({printer._print(self.args[0])})"


class RowSum(sp.MatrixExpr):
    """Every entry of a row replaced by the row's sum (a shape-keeping reduction)."""

    def __new__(cls, arg: Expr) -> RowSum:
        return super().__new__(cls, arg)

    @property
    def shape(self) -> tuple[Any, Any]:
        return self.args[0].shape

    def _bptt_numpy(self, printer: Any) -> str:
        return f"np.sum({printer._print(self.args[0])}, axis=-1, keepdims=True)"

    def _bptt_text(self, printer: Any) -> str:
        return f"Σ({printer._print(self.args[0])})"


class Softmax(sp.MatrixExpr):
    """softmax of a row, ȳ = exp(ō) / Σ_k exp(ō_k) (not entry-wise, so a node of its own)."""

    def __new__(cls, arg: Expr) -> Softmax:
        return super().__new__(cls, arg)

    @property
    def arg(self) -> Expr:
        return self.args[0]

    @property
    def shape(self) -> tuple[Any, Any]:
        return self.arg.shape

    @staticmethod
    def stable(o: Expr) -> Expr:
        """exp(ō − max ō) / Σ exp(ō − max ō): equal to softmax, and exp cannot overflow."""
        shifted = elementwise_exp(sp.MatAdd(o, sp.MatMul(-1, RowMax(o))))
        return sp.HadamardProduct(shifted, sp.HadamardPower(RowSum(shifted), -1))

    def _bptt_latex(self, printer: Any) -> str:
        # the lecture's σ would read as the sigmoid
        return rf"\operatorname{{softmax}}({printer._print(self.arg)})"

    def _bptt_text(self, printer: Any) -> str:
        return f"softmax({printer._print(self.arg)})"

    def _bptt_numpy(self, printer: Any) -> str:
        return f"_softmax({printer._print(self.arg)})"


class SquaredError(sp.MatrixExpr):
    """Eq. 35, E = c (d̄ − ȳ)(d̄ − ȳ)ᵀ: the sum of squares over outputs (a 1×1 matrix)."""

    def __new__(cls, d: Expr, y: Expr, scale: Any = 1) -> SquaredError:
        return super().__new__(cls, d, y, sp.sympify(scale))

    @property
    def residual(self) -> Expr:
        """d̄ − ȳ."""
        return self.args[0] - self.args[1]

    @property
    def scale(self) -> Any:
        return self.args[2]

    @property
    def shape(self) -> tuple[Any, Any]:
        return (sp.Integer(1), sp.Integer(1))

    def lowered(self, residual: Expr | None = None) -> Expr:
        """c e eᵀ with e = d̄ − ȳ (or the given symbol for it)."""
        e = self.residual if residual is None else residual
        et = sp.Transpose(e)
        return sp.MatMul(self.scale, e, et) if self.scale != 1 else sp.MatMul(e, et)

    # The code form: what the value and the pullback share, computed once, and the value over a
    # batch of rows (tr(e eᵀ) sums every row's squares).
    @property
    def shared(self) -> Expr:
        return self.residual

    def total(self, shared: Expr | None) -> Any:
        e = self.residual if shared is None else shared
        return self.scale * sp.Trace(sp.MatMul(e, sp.Transpose(e)))

    def _bptt_latex(self, printer: Any) -> str:
        return printer._print(self.lowered())

    def _bptt_text(self, printer: Any) -> str:
        return printer._print(self.lowered())


class LogSoftmax(sp.MatrixExpr):
    """log softmax of a row, ō − log Σ_k exp(ō_k): what cross-entropy's value needs."""

    def __new__(cls, arg: Expr) -> LogSoftmax:
        return super().__new__(cls, arg)

    @property
    def arg(self) -> Expr:
        return self.args[0]

    @property
    def shape(self) -> tuple[Any, Any]:
        return self.arg.shape

    @staticmethod
    def stable(o: Expr) -> Expr:
        """ō − max ō − log Σ exp(ō − max ō): equal to log softmax, and exp cannot overflow."""
        shifted = sp.MatAdd(o, sp.MatMul(-1, RowMax(o)))
        total = RowSum(elementwise_exp(shifted))
        return sp.MatAdd(shifted, sp.MatMul(-1, acts.elementwise(sp.log, total)))

    def _bptt_latex(self, printer: Any) -> str:
        return rf"\log \operatorname{{softmax}}({printer._print(self.arg)})"

    def _bptt_text(self, printer: Any) -> str:
        return f"log softmax({printer._print(self.arg)})"

    def _bptt_numpy(self, printer: Any) -> str:
        return f"_log_softmax({printer._print(self.arg)})"


class CrossEntropy(sp.MatrixExpr):
    """E = −c Σ_k d_k log softmax(ō)_k: softmax and cross-entropy fused into one operation, so
    that its pullback is c (ȳ Σ_k d_k − d̄) with ȳ = softmax(ō) (a 1×1 matrix)."""

    def __new__(cls, d: Expr, o: Expr, scale: Any = 1) -> CrossEntropy:
        return super().__new__(cls, d, o, sp.sympify(scale))

    @property
    def scale(self) -> Any:
        return self.args[2]

    @property
    def shape(self) -> tuple[Any, Any]:
        return (sp.Integer(1), sp.Integer(1))

    def lowered(self) -> Expr:
        """−c d̄ (log softmax ō)ᵀ."""
        d, o = self.args[0], self.args[1]
        return sp.MatMul(-self.scale, d, sp.Transpose(LogSoftmax(o)))

    # The code form: nothing shared with the pullback; the value over a batch of rows, from the
    # overflow-safe log-softmax (logits of magnitude 1000 stay finite).
    shared = None

    def total(self, shared: Expr | None) -> Any:
        d, o = self.args[0], self.args[1]
        return -self.scale * sp.Trace(sp.MatMul(d, sp.Transpose(LogSoftmax(o))))

    def _bptt_latex(self, printer: Any) -> str:
        return printer._print(self.lowered())

    def _bptt_text(self, printer: Any) -> str:
        return printer._print(self.lowered())


def elementwise_exp(m: Expr) -> ElementwiseApplyFunction:
    return acts.elementwise(sp.exp, m)


# ---------------------------------------------------------------------------------------------
# The operations: local derivative rules (numerator layout) and explicit evaluation.


@dataclass(frozen=True)
class Context:
    """What an explicit evaluation binds: the activation behind Φ, Φ' and the sizes n_x, n_s …"""

    activation: acts.Activation
    dims: Mapping[Any, int]


class Operation:
    """The rules of one node type. ``out`` names the node's value where an equation names it."""

    def operands(self, e: Expr) -> tuple[Expr, ...]:
        return tuple(a for a in e.args if is_matrix(a))

    def pullback(self, e: Expr, k: int, u: Expr, out: Expr) -> Expr:
        """∂E/∂operand_k given u = ∂E/∂e: u J for a row operand, the contraction otherwise."""
        raise DeriveError(f"no derivative rule for a {type(e).__name__}")

    def jacobian(self, e: Expr, k: int, out: Expr) -> Expr | None:
        """J = ∂e/∂operand_k in the numerator layout; None when the operand is not a row."""
        return None

    def explicit(self, e: Expr, values: list[Any], ctx: Context) -> sp.Matrix:
        raise DeriveError(f"cannot instantiate a {type(e).__name__}: {e}")


class _Sum(Operation):
    def pullback(self, e: Expr, k: int, u: Expr, out: Expr) -> Expr:
        return u

    def jacobian(self, e: Expr, k: int, out: Expr) -> Expr:
        return sp.Identity(e.shape[1])

    def explicit(self, e: Expr, values: list[Any], ctx: Context) -> sp.Matrix:
        total = values[0]
        for v in values[1:]:
            total = total + v
        return total


class _Product(Operation):
    """c A_1 ⋯ A_m: ∂E/∂A_k = c (A_1 ⋯ A_{k-1})ᵀ U (A_{k+1} ⋯ A_m)ᵀ; for ū B, J = c Bᵀ."""

    def pullback(self, e: Expr, k: int, u: Expr, out: Expr) -> Expr:
        coeff, ms = e.as_coeff_matrices()
        before = [a.T for a in reversed(ms[:k])]
        after = [a.T for a in reversed(ms[k + 1 :])]
        return mul(*([coeff] if coeff != 1 else []), *before, u, *after)

    def jacobian(self, e: Expr, k: int, out: Expr) -> Expr | None:
        coeff, ms = e.as_coeff_matrices()
        if k != 0 or ms[0].shape[0] != 1:
            return None
        rest = [a.T for a in reversed(ms[1:])]
        return mul(*([coeff] if coeff != 1 else []), *rest)

    def explicit(self, e: Expr, values: list[Any], ctx: Context) -> sp.Matrix:
        coeff = e.as_coeff_matrices()[0]
        result = values[0]
        for v in values[1:]:
            result = result * v
        return result.applyfunc(lambda q: coeff * q) if coeff != 1 else result


class _Hadamard(Operation):
    def pullback(self, e: Expr, k: int, u: Expr, out: Expr) -> Expr:
        others = [a for j, a in enumerate(e.args) if j != k]
        return sp.HadamardProduct(u, *others)

    def jacobian(self, e: Expr, k: int, out: Expr) -> Expr:
        others = [a for j, a in enumerate(e.args) if j != k]
        other = others[0] if len(others) == 1 else sp.HadamardProduct(*others)
        return DiagMatrix(other.T)

    def explicit(self, e: Expr, values: list[Any], ctx: Context) -> sp.Matrix:
        total = values[0]
        for v in values[1:]:
            total = total.multiply_elementwise(v)
        return total


def derivative(fn: Any) -> Any:
    """f' of an entry-wise function: Φ' for Φ, the derivative of a Lambda's body."""
    if fn in acts.DERIVATIVES:
        return acts.DERIVATIVES[fn]
    if isinstance(fn, sp.Lambda) and len(fn.variables) == 1:
        (v,) = fn.variables
        return sp.Lambda(v, sp.diff(fn.expr, v))
    raise DeriveError(f"no derivative rule for the entry-wise function {fn}")


class _Elementwise(Operation):
    """f applied entry by entry: U ↦ U ⊙ f'(a), J = diag(f'(a))."""

    def operands(self, e: Expr) -> tuple[Expr, ...]:
        return (e.expr,)

    def _slope(self, e: Expr) -> Expr:
        return acts.elementwise(derivative(acts.applied_function(e)), e.expr)

    def pullback(self, e: Expr, k: int, u: Expr, out: Expr) -> Expr:
        return sp.HadamardProduct(u, self._slope(e))

    def jacobian(self, e: Expr, k: int, out: Expr) -> Expr:
        return DiagMatrix(self._slope(e).T)

    def explicit(self, e: Expr, values: list[Any], ctx: Context) -> sp.Matrix:
        fn = acts.bound(acts.applied_function(e), ctx.activation)
        return values[0].applyfunc(fn)


class _Softmax(Operation):
    """J = diag(ȳ) − ȳᵀȳ (symmetric), so U ↦ U ⊙ ȳ − (U ȳᵀ) ȳ, with ȳ the node's value."""

    def pullback(self, e: Expr, k: int, u: Expr, out: Expr) -> Expr:
        return sp.MatAdd(sp.HadamardProduct(u, out), mul(-1, u, out.T, out))

    def jacobian(self, e: Expr, k: int, out: Expr) -> Expr:
        return sp.MatAdd(DiagMatrix(out.T), mul(-1, out.T, out))

    def explicit(self, e: Expr, values: list[Any], ctx: Context) -> sp.Matrix:
        return softmax_row(values[0])


class _SquaredError(Operation):
    """E = c (d̄ − ȳ)(d̄ − ȳ)ᵀ: ∂E/∂ȳ = −2c (d̄ − ȳ) (a row), ∂E/∂d̄ = 2c (d̄ − ȳ)."""

    def operands(self, e: Expr) -> tuple[Expr, ...]:
        return (e.args[0], e.args[1])

    def jacobian(self, e: Expr, k: int, out: Expr) -> Expr:
        return sp.MatMul(2 * e.scale if k == 0 else -2 * e.scale, e.residual)

    def pullback(self, e: Expr, k: int, u: Expr, out: Expr) -> Expr:
        return mul(u, self.jacobian(e, k, out))

    def explicit(self, e: Expr, values: list[Any], ctx: Context) -> sp.Matrix:
        err = values[0] - values[1]
        return sp.Matrix([[e.scale * sum(v**2 for v in err)]])


class _CrossEntropy(Operation):
    """E = −c Σ_k d_k log softmax(ō)_k: ∂E/∂ō = c (ȳ Σ_k d_k − d̄), a row, with ȳ = softmax(ō);
    ∂E/∂d̄ = −c log softmax(ō)."""

    def operands(self, e: Expr) -> tuple[Expr, ...]:
        return (e.args[0], e.args[1])

    def jacobian(self, e: Expr, k: int, out: Expr) -> Expr:
        d, o = e.args[0], e.args[1]
        if k == 0:
            return sp.MatMul(-e.scale, LogSoftmax(o))
        return sp.MatMul(e.scale, sp.MatAdd(sp.HadamardProduct(RowSum(d), Softmax(o)), -d))

    def pullback(self, e: Expr, k: int, u: Expr, out: Expr) -> Expr:
        return mul(u, self.jacobian(e, k, out))

    def explicit(self, e: Expr, values: list[Any], ctx: Context) -> sp.Matrix:
        d, o = values
        total = sum(sp.exp(v) for v in o)
        return sp.Matrix(
            [[-e.scale * sum(dk * (ok - sp.log(total)) for dk, ok in zip(d, o, strict=True))]]
        )


class _Explicit(Operation):
    """Nodes of results and numeric forms that are evaluated but never differentiated."""

    def __init__(self, fn: Callable[[Expr, list[Any], Context], sp.Matrix]) -> None:
        self.fn = fn

    def explicit(self, e: Expr, values: list[Any], ctx: Context) -> sp.Matrix:
        return self.fn(e, values, ctx)


def _row_reduce(reduce: Callable[[list[Any]], Any]) -> _Explicit:
    def fn(e: Expr, values: list[Any], ctx: Context) -> sp.Matrix:
        m = values[0]
        return sp.Matrix(m.rows, m.cols, lambda r, _: reduce(list(m.row(r))))

    return _Explicit(fn)


OPERATIONS: dict[type, Operation] = {
    sp.MatAdd: _Sum(),
    sp.MatMul: _Product(),
    sp.HadamardProduct: _Hadamard(),
    ElementwiseApplyFunction: _Elementwise(),
    Softmax: _Softmax(),
    SquaredError: _SquaredError(),
    CrossEntropy: _CrossEntropy(),
    LogSoftmax: _Explicit(lambda e, v, c: softmax_row(v[0]).applyfunc(sp.log)),
    sp.Transpose: _Explicit(lambda e, v, c: v[0].T),
    DiagMatrix: _Explicit(lambda e, v, c: sp.diag(*v[0])),
    sp.HadamardPower: _Explicit(lambda e, v, c: v[0].applyfunc(lambda q: q**e.exp)),
    RowMax: _row_reduce(lambda row: sp.Max(*row)),
    RowSum: _row_reduce(lambda row: sum(row)),
}


def operation(e: Expr) -> Operation:
    for kind in type(e).__mro__:
        if kind in OPERATIONS:
            return OPERATIONS[kind]
    raise DeriveError(f"no operation for a {type(e).__name__}: {e}")


def softmax_row(m: sp.Matrix) -> sp.Matrix:
    e = m.applyfunc(sp.exp)
    total = sum(e)
    return e.applyfunc(lambda v: v / total)


# ---------------------------------------------------------------------------------------------
# The rules composed through an expression.

Definitions = Mapping[Any, Expr]


# Constant matrices: the ones of a gate's complement 1 − ū (the GRU's), the identity, zeros.
CONSTANTS = (sp.OneMatrix, sp.Identity, sp.ZeroMatrix)


def depends(e: Expr, wrt: Expr, definitions: Definitions | None = None) -> bool:
    """Whether ``e`` depends on the symbol ``wrt`` (through ``definitions`` of intermediates)."""
    if e == wrt:
        return True
    if isinstance(e, CONSTANTS):
        return False
    if isinstance(e, sp.MatrixSymbol):
        return (
            definitions is not None
            and e in definitions
            and depends(definitions[e], wrt, definitions)
        )
    return any(depends(a, wrt, definitions) for a in operation(e).operands(e))


def vjp(
    e: Expr, wrt: Expr, u: Expr, definitions: Definitions | None = None, out: Expr | None = None
) -> Expr | None:
    """∂E/∂wrt given u = ∂E/∂e, through the operations of ``e``; None if e ignores wrt.

    A symbol defined in ``definitions`` is followed into its definition, whose value it names.
    """
    if e == wrt:
        return u
    if isinstance(e, sp.MatrixSymbol):
        if definitions is not None and e in definitions:
            return vjp(definitions[e], wrt, u, definitions, out=e)
        return None
    op = operation(e)
    parts = []
    for k, operand in enumerate(op.operands(e)):
        if depends(operand, wrt, definitions):
            pulled = op.pullback(e, k, u, e if out is None else out)
            part = vjp(operand, wrt, pulled, definitions)
            if part is not None:
                parts.append(part)
    return add(parts)


def jacobian(
    e: Expr, wrt: Expr, definitions: Definitions | None = None, out: Expr | None = None
) -> Expr | None:
    """∂e/∂wrt in the numerator layout (None where a factor has three indices or e ignores wrt).

    The chain rule as a literal product: ∂e/∂wrt = Σ_k ∂e/∂operand_k · ∂operand_k/∂wrt.
    """
    if e == wrt:
        return sp.Identity(wrt.shape[1])
    if isinstance(e, sp.MatrixSymbol):
        if definitions is not None and e in definitions:
            return jacobian(definitions[e], wrt, definitions, out=e)
        return None
    op = operation(e)
    parts = []
    for k, operand in enumerate(op.operands(e)):
        if depends(operand, wrt, definitions):
            local = op.jacobian(e, k, e if out is None else out)
            inner = jacobian(operand, wrt, definitions)
            if local is None or inner is None:
                return None
            parts.append(mul(local, inner))
    return add(parts)


def evaluate(e: Expr, binding: Mapping[Any, sp.Matrix], ctx: Context) -> sp.Matrix:
    """The explicit matrix of ``e`` given explicit matrices for its symbols."""

    def ev(x: Expr) -> Any:
        if isinstance(x, sp.MatrixSymbol):
            if x not in binding:
                raise DeriveError(f"cannot instantiate {x}: no explicit value bound to it")
            return binding[x]
        if isinstance(x, sp.Identity):
            return sp.eye(int(x.rows.xreplace(ctx.dims)))
        if isinstance(x, sp.OneMatrix):
            return sp.ones(int(x.rows.xreplace(ctx.dims)), int(x.cols.xreplace(ctx.dims)))
        if isinstance(x, sp.ZeroMatrix):
            return sp.zeros(int(x.rows.xreplace(ctx.dims)), int(x.cols.xreplace(ctx.dims)))
        op = operation(x)
        if isinstance(op, _Explicit | _Elementwise):
            values = [ev(a) for a in x.args if is_matrix(a)]
        else:
            values = [ev(a) for a in op.operands(x)]
        return op.explicit(x, values, ctx)

    result = ev(e)
    if not isinstance(result, sp.MatrixBase):
        raise DeriveError(f"instantiating {e} gave {type(result).__name__}, not a matrix")
    return sp.Matrix(result)


def numeric_forms(e: Expr, activation: acts.Activation) -> tuple[NumericForm, ...]:
    """The numeric forms generated code runs for the operations in ``e``: Φ's (and a gated
    cell's σ's and tanh's), softmax's and cross-entropy's (log-softmax)."""
    forms: list[NumericForm] = []
    nodes = list(sp.preorder_traversal(e))
    applied = {acts.applied_function(n) for n in nodes if isinstance(n, ElementwiseApplyFunction)}
    for fn in acts.DERIVATIVES:  # Φ's forms, then σ's and tanh's where a gated cell applies them
        found = acts.named(fn, activation)
        if fn in applied and found is not None:
            forms.extend(found[0].numeric_forms())
    a = acts.ARGUMENT
    if any(isinstance(n, Softmax) for n in nodes):
        forms.append(
            NumericForm("softmax: row maximum subtracted", Softmax.stable(a), Softmax(a), a)
        )
    if any(isinstance(n, CrossEntropy | LogSoftmax) for n in nodes):
        forms.append(
            NumericForm(
                "log-softmax: row maximum subtracted", LogSoftmax.stable(a), LogSoftmax(a), a
            )
        )
    return tuple(forms)
