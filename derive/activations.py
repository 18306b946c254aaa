"""Stage 0: the activations Φ, one table entry each, with the numeric forms generated code runs.

Contract: :data:`ACTIVATIONS` maps a name to an :class:`Activation`: Φ and Φ' as univariate SymPy
``Lambda`` s and, where generated code uses them, Φ' written in terms of Φ's output (1 − s² for
tanh) and an overflow-safe form of Φ. :meth:`Activation.numeric_forms` lists every numeric form
with the symbolic definition it must equal; :func:`derive.verify.prove` checks each one, so a
wrong numeric form fails the proof. A new activation is one entry here (and its tests).

The generic Φ and Φ' of the dimension-free derivation are the undefined functions :data:`Phi`
and :data:`dPhi`, applied entry by entry by :func:`phi` and :func:`dphi`; a configuration binds
them to an :class:`Activation` when an expression is evaluated or printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.codegen.cfunctions import expm1
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

Phi = sp.Function("Phi")
dPhi = sp.Function("dPhi")
# The gated cells' fixed functions (GRU, LSTM): σ, the logistic function, and tanh, with their
# derivatives. Undefined like Φ, so derivations, printed notes and code name them as such; they
# are bound to the activations of the same names (σ to 'sigmoid', tanh to 'tanh').
Sigma = sp.Function("sigma")
dSigma = sp.Function("dsigma")
Tanh = sp.Function("Tanh")
dTanh = sp.Function("dTanh")
# Each named entry-wise function and its derivative.
DERIVATIVES = {Phi: dPhi, Sigma: dSigma, Tanh: dTanh}
# What stands behind the fixed ones (Φ is the configuration's activation).
FIXED = {Sigma: "sigmoid", Tanh: "tanh"}

# A fixed variable (SymPy would wrap the function in a Lambda of a fresh Dummy, and two
# Φ'(z̄_2) nodes would then not compare equal, defeating equality tests and cse).
_w = sp.Symbol("w")


def elementwise(body: sp.Lambda | sp.FunctionClass, m: sp.MatrixExpr) -> ElementwiseApplyFunction:
    """A univariate function applied entry by entry (a function class is wrapped in a Lambda)."""
    if not isinstance(body, sp.Lambda):
        body = sp.Lambda(_w, body(_w))
    return ElementwiseApplyFunction(body, m)


def phi(m: sp.MatrixExpr) -> ElementwiseApplyFunction:
    """Φ applied entry by entry."""
    return elementwise(Phi, m)


def dphi(m: sp.MatrixExpr) -> ElementwiseApplyFunction:
    """Φ' applied entry by entry."""
    return elementwise(dPhi, m)


def sigma(m: sp.MatrixExpr) -> ElementwiseApplyFunction:
    """σ, the logistic function, applied entry by entry (a gate)."""
    return elementwise(Sigma, m)


def tanh(m: sp.MatrixExpr) -> ElementwiseApplyFunction:
    """tanh applied entry by entry (a cell's candidate or output)."""
    return elementwise(Tanh, m)


def applied_function(node: ElementwiseApplyFunction) -> Any:
    """The function an elementwise node applies: Phi, dPhi, or its Lambda."""
    fn = node.function
    if isinstance(fn, sp.Lambda) and isinstance(fn.expr, sp.core.function.AppliedUndef):
        if fn.expr.args == fn.variables:
            return fn.expr.func
    return fn


@dataclass(frozen=True)
class NumericForm:
    """A form generated code evaluates, and the definition it must equal, both functions of a row
    ``argument`` (the proof evaluates both at random points)."""

    name: str
    numeric: Any
    definition: Any
    argument: sp.MatrixSymbol


ARGUMENT = sp.MatrixSymbol("a", 1, sp.Symbol("n", integer=True, positive=True))


@dataclass(frozen=True)
class Activation:
    """Φ as a univariate SymPy Lambda, with Φ' in the pre-activation and, when it exists, in Φ."""

    name: str
    phi: sp.Lambda
    dphi: sp.Lambda
    # Φ'(z) written in terms of Φ(z) (1 − s² for tanh): generated code reuses s̄_t for it.
    dphi_of_output: sp.Lambda | None = None
    # An equal form of Φ that cannot overflow in floating point, for generated code.
    stable_phi: sp.Lambda | None = None
    # An equal form for code that evaluates one entry at a time (the Numba kernels), where it
    # is faster than the libm function (tanh: expm1 costs about 60 % of tanh in glibc).
    scalar_phi: sp.Lambda | None = None

    @property
    def entrywise_phi(self) -> sp.Lambda:
        """Φ as entry-by-entry (compiled) code evaluates it."""
        return self.scalar_phi if self.scalar_phi is not None else self.numeric_phi

    @property
    def numeric_phi(self) -> sp.Lambda:
        """Φ as generated code evaluates it."""
        return self.stable_phi if self.stable_phi is not None else self.phi

    def numeric_forms(self) -> tuple[NumericForm, ...]:
        """Every form generated code runs in place of Φ or Φ', with what it must equal."""
        a = ARGUMENT
        forms = []
        if self.stable_phi is not None:
            forms.append(
                NumericForm(
                    f"{self.name}: the overflow-safe form",
                    elementwise(self.stable_phi, a),
                    elementwise(self.phi, a),
                    a,
                )
            )
        if self.scalar_phi is not None:
            forms.append(
                NumericForm(
                    f"{self.name}: the entry-by-entry form",
                    elementwise(self.scalar_phi, a),
                    elementwise(self.phi, a),
                    a,
                )
            )
            if self.dphi_of_output is not None:
                forms.append(
                    NumericForm(
                        f"{self.name}: the derivative from the entry-by-entry output",
                        elementwise(self.dphi_of_output, elementwise(self.scalar_phi, a)),
                        elementwise(self.dphi, a),
                        a,
                    )
                )
        if self.dphi_of_output is not None:
            # Φ' as code runs it: from the output Φ computed in its numeric form
            forms.append(
                NumericForm(
                    f"{self.name}: the derivative from the output",
                    elementwise(self.dphi_of_output, elementwise(self.numeric_phi, a)),
                    elementwise(self.dphi, a),
                    a,
                )
            )
        return tuple(forms)


_u = sp.Symbol("u", real=True)
_v = sp.Symbol("v", real=True)
_sig = 1 / (1 + sp.exp(-_u))

ACTIVATIONS: dict[str, Activation] = {
    # Entry by entry: tanh u = −sign(u) e / (e + 2) with e = expm1(−2|u|) ∈ (−1, 0]: no
    # overflow, accurate to a few ulp near 0 (expm1, not exp), one libm call.
    "tanh": Activation(
        "tanh",
        sp.Lambda(_u, sp.tanh(_u)),
        sp.Lambda(_u, 1 - sp.tanh(_u) ** 2),
        sp.Lambda(_v, 1 - _v**2),
        scalar_phi=sp.Lambda(
            _u, -sp.sign(_u) * expm1(-2 * sp.Abs(_u)) / (expm1(-2 * sp.Abs(_u)) + 2)
        ),
    ),
    # 1/(1 + e^{-u}) overflows e^{-u} for u < -710; e^{min(u, 0)} / (1 + e^{-|u|}) is equal,
    # cannot overflow, and keeps its relative accuracy in both tails ((1 + tanh(u/2))/2, also
    # overflow-safe, loses it for u ≪ 0: 1.7e-4 relative at u = −30).
    "sigmoid": Activation(
        "sigmoid",
        sp.Lambda(_u, _sig),
        sp.Lambda(_u, _sig * (1 - _sig)),
        sp.Lambda(_v, _v * (1 - _v)),
        sp.Lambda(_u, sp.exp(sp.Min(_u, 0)) / (1 + sp.exp(-sp.Abs(_u)))),
    ),
    # Φ'(0) is taken as 0 (the subgradient every framework uses).
    "relu": Activation(
        "relu",
        sp.Lambda(_u, sp.Max(_u, 0)),
        sp.Lambda(_u, sp.Heaviside(_u, 0)),
        sp.Lambda(_v, sp.Heaviside(_v, 0)),
    ),
    "identity": Activation(
        "identity",
        sp.Lambda(_u, _u),
        sp.Lambda(_u, sp.Integer(1)),
        sp.Lambda(_v, sp.Integer(1)),
    ),
}


def named(fn: Any, act: Activation) -> tuple[Activation, bool] | None:
    """(the activation behind a named entry-wise function, whether ``fn`` is its derivative):
    Φ and Φ' are ``act``'s; σ, tanh and theirs are fixed. None for any other function."""
    for f, df in DERIVATIVES.items():
        if fn in (f, df):
            return (act if f == Phi else ACTIVATIONS[FIXED[f]]), fn == df
    return None


def bound(fn: Any, act: Activation, form: str = "phi") -> Any:
    """The Lambda behind ``fn`` for ``act``: for a named function its activation's ``form``
    ('phi', 'numeric_phi', 'entrywise_phi'), for a derivative its Φ'; any other ``fn`` itself."""
    found = named(fn, act)
    if found is None:
        return fn
    activation, prime = found
    return activation.dphi if prime else getattr(activation, form)


def make_activation(value: str | sp.Lambda) -> Activation:
    """The :class:`Activation` for a built-in name or a univariate SymPy ``Lambda``."""
    if isinstance(value, str):
        if value not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {sorted(ACTIVATIONS)} or a univariate sympy.Lambda, "
                f"got {value!r}"
            )
        return ACTIVATIONS[value]
    if not isinstance(value, sp.Lambda):
        raise TypeError(
            f"activation: expected a name {sorted(ACTIVATIONS)} or a univariate sympy.Lambda, "
            f"got {type(value).__name__}"
        )
    if len(value.variables) != 1:
        raise ValueError(
            f"activation: expected a univariate sympy.Lambda, got one of {len(value.variables)} "
            f"variables: {value}"
        )
    (var,) = value.variables
    if not value.expr.free_symbols <= {var}:
        extra = sorted(str(v) for v in value.expr.free_symbols - {var})
        raise ValueError(
            f"activation: expected a univariate sympy.Lambda, got {value} which also depends on "
            f"{', '.join(extra)}"
        )
    body = value.expr.xreplace({var: _u})
    return Activation(f"Lambda({value})", sp.Lambda(_u, body), sp.Lambda(_u, sp.diff(body, _u)))
