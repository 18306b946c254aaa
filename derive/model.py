"""Stage 1: the RNN of Eq. 33–35 as SymPy objects, and its configuration.

Contract: :class:`Config` validates a configuration (bad fields raise ``ValueError``/``TypeError``
naming the field); the dimension-free symbols (``x(t)``, ``s(t)``, ``W_s`` …) name every quantity
of the model in the lecture's row-vector convention; :func:`forward_equations` gives Eq. 33–35 as
dimension-free definitions; :func:`explicit` instantiates the model at concrete sizes with a
scalar symbol per entry and builds the explicit scalar loss, the ground truth of ``verify``.

Row-vector convention (the lecture's): x̄_t is 1×n_x, s̄_t is 1×n_s, ȳ_t is 1×n_y, and
  Eq. 33  z̄_t = x̄_t W_x + s̄_{t-1} W_s,  s̄_t = Φ(z̄_t)
  Eq. 34  ō_t = s̄_t W_y,  ȳ_t = ō_t (linear) or ȳ_t = softmax(ō_t)
  Eq. 35  E_t = c (d̄_t − ȳ_t)(d̄_t − ȳ_t)ᵀ
z̄_t and ō_t are names of ours for the pre-activations; the lecture writes them inline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from derive import labels

# Sizes of the dimension-free model.
n_x, n_s, n_y = sp.symbols("n_x n_s n_y", integer=True, positive=True)

W_x = sp.MatrixSymbol("W_x", n_x, n_s)
W_s = sp.MatrixSymbol("W_s", n_s, n_s)
W_y = sp.MatrixSymbol("W_y", n_s, n_y)
WEIGHTS: tuple[sp.MatrixSymbol, ...] = (W_x, W_s, W_y)
WEIGHT_NAMES: tuple[str, ...] = ("W_x", "W_s", "W_y")

# The generic activation Φ and its derivative Φ'; a configuration binds them to concrete functions
# when the closed forms are instantiated or printed.
Phi = sp.Function("Phi")
dPhi = sp.Function("dPhi")

OUTPUTS = ("linear", "softmax")
LOSS_STEPS = ("last", "all")


def x(t: int) -> sp.MatrixSymbol:
    """x̄_t, the input at step t (1×n_x)."""
    return sp.MatrixSymbol(f"x_{t}", 1, n_x)


def s(t: int) -> sp.MatrixSymbol:
    """s̄_t, the state at step t (1×n_s); s̄_0 is given."""
    return sp.MatrixSymbol(f"s_{t}", 1, n_s)


def z(t: int) -> sp.MatrixSymbol:
    """z̄_t = x̄_t W_x + s̄_{t-1} W_s, the state's pre-activation (1×n_s)."""
    return sp.MatrixSymbol(f"z_{t}", 1, n_s)


def o(t: int) -> sp.MatrixSymbol:
    """ō_t = s̄_t W_y, the output's pre-activation (1×n_y)."""
    return sp.MatrixSymbol(f"o_{t}", 1, n_y)


def y(t: int) -> sp.MatrixSymbol:
    """ȳ_t, the output at step t (1×n_y)."""
    return sp.MatrixSymbol(f"y_{t}", 1, n_y)


def d(t: int) -> sp.MatrixSymbol:
    """d̄_t, the desired output at step t (1×n_y)."""
    return sp.MatrixSymbol(f"d_{t}", 1, n_y)


def E(t: int) -> sp.MatrixSymbol:
    """E_t, the loss at step t (a 1×1 matrix, so it chains like the other rows)."""
    return sp.MatrixSymbol(f"E_{t}", 1, 1)


def g(t: int) -> sp.MatrixSymbol:
    """g_t = ∂E/∂ō_t, the gradient at the output's pre-activation (1×n_y)."""
    return sp.MatrixSymbol(f"g_{t}", 1, n_y)


def delta(t: int) -> sp.MatrixSymbol:
    """δ_t = ∂E/∂z̄_t, the gradient at the state's pre-activation (1×n_s)."""
    return sp.MatrixSymbol(f"delta_{t}", 1, n_s)


# A fixed variable (SymPy would wrap the function in a Lambda of a fresh Dummy, and two
# Φ'(z̄_2) nodes would then not compare equal, defeating equality tests and cse).
_w = sp.Symbol("w")


def phi(m: sp.MatrixExpr) -> ElementwiseApplyFunction:
    """Φ applied entry by entry."""
    return ElementwiseApplyFunction(sp.Lambda(_w, Phi(_w)), m)


def dphi(m: sp.MatrixExpr) -> ElementwiseApplyFunction:
    """Φ' applied entry by entry."""
    return ElementwiseApplyFunction(sp.Lambda(_w, dPhi(_w)), m)


def applied_function(node: ElementwiseApplyFunction) -> Any:
    """The function class (Phi or dPhi) an elementwise node applies; SymPy wraps it in a Lambda."""
    fn = node.function
    if isinstance(fn, sp.Lambda) and isinstance(fn.expr, sp.core.function.AppliedUndef):
        return fn.expr.func
    return fn


class Softmax(sp.MatrixExpr):
    """softmax of a row, ȳ = exp(ō) / Σ_k exp(ō_k) (not elementwise, so a node of its own)."""

    def __new__(cls, arg: sp.MatrixExpr) -> Softmax:
        return super().__new__(cls, arg)

    @property
    def arg(self) -> sp.MatrixExpr:
        return self.args[0]

    @property
    def shape(self) -> tuple[Any, Any]:
        return self.arg.shape


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

    @property
    def numeric_phi(self) -> sp.Lambda:
        return self.stable_phi if self.stable_phi is not None else self.phi


_u = sp.Symbol("u", real=True)
_v = sp.Symbol("v", real=True)


def _builtin_activations() -> dict[str, Activation]:
    sig = 1 / (1 + sp.exp(-_u))
    return {
        "tanh": Activation(
            "tanh",
            sp.Lambda(_u, sp.tanh(_u)),
            sp.Lambda(_u, 1 - sp.tanh(_u) ** 2),
            sp.Lambda(_v, 1 - _v**2),
        ),
        # 1/(1 + e^{-u}) overflows e^{-u} for u < -710; (1 + tanh(u/2))/2 is equal and cannot.
        "sigmoid": Activation(
            "sigmoid",
            sp.Lambda(_u, sig),
            sp.Lambda(_u, sig * (1 - sig)),
            sp.Lambda(_v, _v * (1 - _v)),
            sp.Lambda(_u, (1 + sp.tanh(_u / 2)) / 2),
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


ACTIVATIONS: dict[str, Activation] = _builtin_activations()


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


def _to_rational(value: Any) -> sp.Rational:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Fraction, sp.Rational)):
        raise TypeError(
            f"scale: expected a positive number such as 1 or 1/2, got {type(value).__name__}"
        )
    try:
        r = sp.Rational(str(value)) if isinstance(value, (float, str)) else sp.Rational(value)
    except (TypeError, ValueError, sp.SympifyError) as exc:
        raise ValueError(
            f"scale: expected a positive number such as 1 or 1/2, got {value!r}"
        ) from exc
    if not r.is_finite or r <= 0:
        raise ValueError(f"scale: expected a positive number such as 1 or 1/2, got {value!r}")
    return r


@dataclass(frozen=True)
class Config:
    """One configuration of the model. The defaults are the lecture's case.

    steps       N, the number of time steps (an int ≥ 1); the lecture trains at N = 3.
    activation  Φ: 'tanh' | 'sigmoid' | 'relu' | 'identity' | a univariate sympy.Lambda.
    output      'linear' (ȳ = s̄ W_y) | 'softmax' (ȳ = softmax(s̄ W_y)).
    scale       c in E_t = c (d̄_t − ȳ_t)²; the lecture uses 1 and mentions ½.
    loss_steps  'last': the lecture's E_N; 'all': the total Σ_t E_t.
    """

    steps: int = 3
    activation: str | sp.Lambda = "tanh"
    output: str = "linear"
    scale: Any = 1
    loss_steps: str = "last"
    act: Activation = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise TypeError(f"steps: expected an int ≥ 1, got {type(self.steps).__name__}")
        if self.steps < 1:
            raise ValueError(f"steps: expected an int ≥ 1, got {self.steps}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output: expected one of {list(OUTPUTS)}, got {self.output!r}")
        if self.loss_steps not in LOSS_STEPS:
            raise ValueError(
                f"loss_steps: expected one of {list(LOSS_STEPS)}, got {self.loss_steps!r}"
            )
        object.__setattr__(self, "scale", _to_rational(self.scale))
        object.__setattr__(self, "act", make_activation(self.activation))

    @property
    def activation_name(self) -> str:
        return self.act.name

    @property
    def loss_terms(self) -> tuple[int, ...]:
        """The steps t whose E_t enter the loss."""
        n = self.steps
        return (n,) if self.loss_steps == "last" else tuple(range(1, n + 1))

    def describe(self) -> str:
        return (
            f"N={self.steps}, activation={self.activation_name}, output={self.output}, "
            f"scale={self.scale}, loss_steps={self.loss_steps}"
        )


# The quantities of a generic step t (Eq. 33–35 are stated once for all t).
X_T = sp.MatrixSymbol("x_t", 1, n_x)
S_PREV = sp.MatrixSymbol("s_prev_t", 1, n_s)  # s̄_{t-1}
Z_T = sp.MatrixSymbol("z_t", 1, n_s)
S_T = sp.MatrixSymbol("s_t", 1, n_s)
O_T = sp.MatrixSymbol("o_t", 1, n_y)
Y_T = sp.MatrixSymbol("y_t", 1, n_y)
D_T = sp.MatrixSymbol("d_t", 1, n_y)
E_T = sp.MatrixSymbol("E_t", 1, 1)


def forward_equations(config: Config) -> list[tuple[str, sp.MatrixSymbol, sp.MatrixExpr]]:
    """Eq. 33–35 for a generic step t, as (equation label, defined symbol, definition)."""
    output = O_T if config.output == "linear" else Softmax(O_T)
    err = D_T - Y_T
    return [
        (labels.STATE, Z_T, X_T * W_x + S_PREV * W_s),
        (labels.STATE, S_T, phi(Z_T)),
        (labels.OUTPUT, O_T, S_T * W_y),
        (labels.OUTPUT, Y_T, output),
        (labels.LOSS, E_T, sp.MatMul(config.scale, err, err.T)),
    ]


# ---------------------------------------------------------------------------------------------
# Explicit instantiation: every entry a scalar symbol, the ground truth's raw material.


def symbol_matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    """A rows×cols matrix of real symbols ``{name}_{i}_{j}`` (``{name}_{j}`` for a row)."""
    if rows == 1:
        return sp.Matrix(1, cols, lambda _, j: sp.Symbol(f"{name}_{j}", real=True))
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}_{j}", real=True))


def softmax_row(m: sp.Matrix) -> sp.Matrix:
    e = m.applyfunc(sp.exp)
    total = sum(e)
    return e.applyfunc(lambda v: v / total)


@dataclass(frozen=True)
class Explicit:
    """The model at concrete sizes: a binding of every dimension-free symbol to an explicit matrix.

    ``values`` maps W_x, W_s, W_y, x_t, d_t, s_0 (matrices of scalar symbols) and z_t, s_t, o_t,
    y_t, E_t (explicit expressions in those symbols). ``loss`` is the scalar loss of the config.
    """

    config: Config
    sizes: tuple[int, int, int]
    values: dict[sp.MatrixSymbol, sp.Matrix]
    loss: sp.Expr

    @property
    def weight_matrices(self) -> dict[str, sp.Matrix]:
        return {name: self.values[w] for name, w in zip(WEIGHT_NAMES, WEIGHTS, strict=True)}

    @property
    def input_symbols(self) -> list[sp.Symbol]:
        """Every scalar symbol of the explicit model, weights first, in a fixed order."""
        out: list[sp.Symbol] = []
        for w in WEIGHTS:
            out.extend(self.values[w])
        n = self.config.steps
        for m in [s(0)] + [x(t) for t in range(1, n + 1)] + [d(t) for t in range(1, n + 1)]:
            out.extend(self.values[m])
        return out


def explicit(config: Config, sizes: tuple[int, int, int]) -> Explicit:
    """Instantiate Eq. 33–35 at sizes (n_x, n_s, n_y) with a scalar symbol per entry.

    s̄_0 is a vector of symbols too (zeros would hide the i = 1 term of ∂E/∂W_s).
    """
    nx_, ns_, ny_ = _check_sizes(sizes)
    act = config.act
    v: dict[sp.MatrixSymbol, sp.Matrix] = {
        W_x: symbol_matrix("Wx", nx_, ns_),
        W_s: symbol_matrix("Ws", ns_, ns_),
        W_y: symbol_matrix("Wy", ns_, ny_),
        s(0): symbol_matrix("s0", 1, ns_),
    }
    loss = sp.Integer(0)
    for t in range(1, config.steps + 1):
        v[x(t)] = symbol_matrix(f"x{t}", 1, nx_)
        v[d(t)] = symbol_matrix(f"d{t}", 1, ny_)
        v[z(t)] = v[x(t)] * v[W_x] + v[s(t - 1)] * v[W_s]  # Eq. 33
        v[s(t)] = v[z(t)].applyfunc(act.phi)
        v[o(t)] = v[s(t)] * v[W_y]  # Eq. 34
        v[y(t)] = v[o(t)] if config.output == "linear" else softmax_row(v[o(t)])
        err = v[d(t)] - v[y(t)]
        v[E(t)] = sp.Matrix([[config.scale * sum(e**2 for e in err)]])  # Eq. 35
        if t in config.loss_terms:
            loss += v[E(t)][0, 0]
    return Explicit(config, (nx_, ns_, ny_), v, loss)


def _check_sizes(sizes: Any) -> tuple[int, int, int]:
    if not isinstance(sizes, tuple) or len(sizes) != 3:
        raise ValueError(f"sizes: expected a tuple (n_x, n_s, n_y), got {sizes!r}")
    for name, value in zip(("n_x", "n_s", "n_y"), sizes, strict=True):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"sizes: expected {name} to be an int ≥ 1, got {value!r}")
    return sizes
