"""Stage 1: the model, stated once. The lecture's RNN (Eq. 33–35), or a gated cell (GRU, LSTM;
``Config.cell``) followed by the same output and loss, as per-step equations.

Contract: :func:`statement` turns a :class:`~derive.config.Config` into a :class:`Statement`:
the quantities of one step (their sizes, their roles, which of them the lecture's chain rule
names and which adjoints the backward sweep names), the weights, and the equations of a generic
step t, each a SymPy expression over the operations of :mod:`derive.ops`. Everything else is
derived from it: the explicit scalar model (:func:`explicit`, the ground truth), the chain rule,
the closed forms and δ recurrence, the forward pass of the generated code, the notes' tables.

Row-vector convention (the lecture's): x̄_t is 1×n_x, s̄_t is 1×n_s, ȳ_t is 1×n_y, and
  Eq. 33  z̄_t = x̄_t W_x + s̄_{t-1} W_s,  s̄_t = Φ(z̄_t)
  Eq. 34  ō_t = s̄_t W_y,  ȳ_t = ō_t (linear) or ȳ_t = softmax(ō_t)
  Eq. 35  E_t = c (d̄_t − ȳ_t)(d̄_t − ȳ_t)ᵀ
z̄_t and ō_t are names of ours for the pre-activations; the lecture writes them inline.

Step symbols: the quantity q at step k is the MatrixSymbol ``q_k`` (:func:`at`), where k is an int
or an expression in the step indices t, N, i (``s_t - 1`` is s̄_{t-1}); :func:`restep` renames
the steps of an expression.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import sympy as sp

from derive import activations as acts
from derive import labels, ops
from derive.activations import phi
from derive.config import Config

# Sizes of the dimension-free model, the weights, and the step indices.
n_x, n_s, n_y = sp.symbols("n_x n_s n_y", integer=True, positive=True)
W_x = sp.MatrixSymbol("W_x", n_x, n_s)
W_s = sp.MatrixSymbol("W_s", n_s, n_s)
W_y = sp.MatrixSymbol("W_y", n_s, n_y)
WEIGHTS: tuple[sp.MatrixSymbol, ...] = (W_x, W_s, W_y)
WEIGHT_NAMES: tuple[str, ...] = ("W_x", "W_s", "W_y")
t, N, i = sp.symbols("t N i", integer=True, positive=True)
INDICES = {str(v): v for v in (t, N, i)}

ROLES = ("input", "target", "state", "hidden", "output", "loss", "adjoint")


@dataclass(frozen=True)
class Quantity:
    """A row of one step: 1×size. ``shown``: an end of the lecture's chain-rule factors;
    ``adjoint``: the name the backward sweep gives ∂E/∂(this quantity)."""

    name: str
    size: Any
    role: str
    shown: bool = False
    adjoint: str | None = None


# The lecture's RNN: what one step holds.
QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity("x", n_x, "input"),
        Quantity("d", n_y, "target"),
        Quantity("s", n_s, "state", shown=True),
        Quantity("z", n_s, "hidden", adjoint="delta"),
        Quantity("o", n_y, "hidden", adjoint="g"),
        Quantity("y", n_y, "output", shown=True),
        Quantity("E", 1, "loss", shown=True),
        Quantity("delta", n_s, "adjoint"),
        Quantity("g", n_y, "adjoint"),
    )
}


# The gated cells' quantities (PyTorch's equations; issue 13). Pre-activations z̄^q_t of our own
# naming, each with its adjoint δ^q_t = ∂E/∂z̄^q_t named, as is every quantity a later step reads
# (the sweep at a generic step needs their names); the LSTM's letters ī f̄ ḡ ō are its own.
_GATED = (
    Quantity("h", n_s, "state", shown=True, adjoint="dh"),
    Quantity("c", n_s, "state", shown=True, adjoint="dc"),
    *(
        Quantity(f"z{q}", n_s, "hidden", adjoint=f"dz{q}")
        for q in ("r", "u", "n", "i", "f", "g", "o")
    ),
    *(Quantity(q, n_s, "hidden") for q in ("r", "u", "n", "ig", "fg", "gg", "og")),
    Quantity("m", n_s, "hidden", adjoint="dm"),
    *(Quantity(a, n_s, "adjoint") for a in ("ds", "dh", "dc", "dm")),
    *(Quantity(f"dz{q}", n_s, "adjoint") for q in ("r", "u", "n", "i", "f", "g", "o")),
)
# Every quantity any cell names, for step symbols' sizes (a statement holds its cell's own).
ALL_QUANTITIES: dict[str, Quantity] = {**QUANTITIES, **{q.name: q for q in _GATED}}


def at(name: str, step: Any, loss: Any = None) -> sp.MatrixSymbol:
    """The quantity ``name`` at ``step`` (an int or an expression in t, N, i); with ``loss`` u,
    an adjoint with respect to E_u alone (δ^(u)_t, truncated BPTT's per-loss-step sweeps)."""
    head = name if loss is None else f"{name}^{sp.sstr(loss)}"
    return sp.MatrixSymbol(f"{head}_{sp.sstr(step)}", 1, ALL_QUANTITIES[name].size)


def x(k: Any) -> sp.MatrixSymbol:
    """x̄_k, the input (1×n_x)."""
    return at("x", k)


def s(k: Any) -> sp.MatrixSymbol:
    """s̄_k, the state (1×n_s); s̄_0 is given."""
    return at("s", k)


def z(k: Any) -> sp.MatrixSymbol:
    """z̄_k = x̄_k W_x + s̄_{k-1} W_s, the state's pre-activation (1×n_s)."""
    return at("z", k)


def o(k: Any) -> sp.MatrixSymbol:
    """ō_k = s̄_k W_y, the output's pre-activation (1×n_y)."""
    return at("o", k)


def y(k: Any) -> sp.MatrixSymbol:
    """ȳ_k, the output (1×n_y)."""
    return at("y", k)


def d(k: Any) -> sp.MatrixSymbol:
    """d̄_k, the desired output (1×n_y)."""
    return at("d", k)


def E(k: Any) -> sp.MatrixSymbol:
    """E_k, the loss at step k (a 1×1 matrix, so it chains like the rows)."""
    return at("E", k)


def g(k: Any) -> sp.MatrixSymbol:
    """g_k = ∂E/∂ō_k, the gradient at the output's pre-activation (1×n_y)."""
    return at("g", k)


def delta(k: Any) -> sp.MatrixSymbol:
    """δ_k = ∂E/∂z̄_k, the gradient at the state's pre-activation (1×n_s)."""
    return at("delta", k)


def D(k: Any) -> sp.MatrixSymbol:
    """D_k = diag(Φ'(z̄_k)), the step's derivatives on a diagonal (n_s×n_s; our name)."""
    return sp.MatrixSymbol(f"D_{sp.sstr(k)}", n_s, n_s)


def _parts(symbol: Any) -> tuple[str, Any, Any] | None:
    head, sep, index = str(getattr(symbol, "name", "")).rpartition("_")
    base, hat, loss = head.partition("^")
    if not sep or base not in ALL_QUANTITIES or not index:
        return None
    return (
        base,
        sp.sympify(index, locals=INDICES),
        sp.sympify(loss, locals=INDICES) if hat else None,
    )


def step_of(symbol: Any) -> tuple[str, Any] | None:
    """(quantity, step) of a step symbol: ``s_t - 1`` → ("s", t − 1); None for any other."""
    found = _parts(symbol)
    return None if found is None else found[:2]


def loss_of(symbol: Any) -> Any:
    """u of an adjoint with respect to E_u alone (``delta^3_2`` → 3), else None."""
    found = _parts(symbol)
    return None if found is None else found[2]


def restep(expr: Any, rename: Callable[[Any], Any]) -> Any:
    """``expr`` with the step k (and a loss step u) of every step symbol replaced by
    ``rename(k)``."""
    mapping = {}
    for symbol in expr.atoms(sp.MatrixSymbol):
        found = _parts(symbol)
        if found is not None:
            name, step, loss = found
            new = (rename(step), None if loss is None else rename(loss))
            if new != (step, loss):
                mapping[symbol] = at(name, *new)
    return expr.xreplace(mapping)


def instantiate(expr: Any, values: Mapping[Any, Any]) -> Any:
    """Substitute into the steps: ``instantiate(s_{t-1}, {t: 3})`` is s̄_2."""
    return restep(expr, lambda k: sp.sympify(k).xreplace(dict(values)))


def renumber(expr: Any, steps: Mapping[int, Any]) -> Any:
    """Rename concrete steps: ``renumber(s_2, {2: t})`` is s̄_t."""
    return restep(expr, lambda k: steps.get(int(k), k) if sp.sympify(k).is_Integer else k)


@dataclass(frozen=True)
class Equation:
    """``target = rhs`` at the generic step t, under its equation label."""

    label: str
    target: sp.MatrixSymbol
    rhs: Any


@dataclass(frozen=True)
class Statement:
    """The model of one configuration: quantities, weights and the equations of step t."""

    config: Config
    quantities: Mapping[str, Quantity]
    weights: tuple[sp.MatrixSymbol, ...]
    equations: tuple[Equation, ...]

    def names(self, role: str) -> tuple[str, ...]:
        return tuple(q.name for q in self.quantities.values() if q.role == role)

    def equations_at(self, k: Any) -> tuple[Equation, ...]:
        """The equations at step k (s̄_{t-1} becomes s̄_{k-1})."""
        return tuple(
            Equation(e.label, instantiate(e.target, {t: k}), instantiate(e.rhs, {t: k}))
            for e in self.equations
        )

    def definitions(self) -> dict[sp.MatrixSymbol, Any]:
        """Every computed quantity of steps 1..N with its definition, in evaluation order."""
        return {
            e.target: e.rhs for k in range(1, self.config.steps + 1) for e in self.equations_at(k)
        }

    def numeric_forms(self) -> tuple[Any, ...]:
        """Every numeric form generated code runs for this model's operations."""
        forms: dict[str, Any] = {}
        for e in self.equations:
            for form in ops.numeric_forms(e.rhs, self.config.act):
                forms.setdefault(form.name, form)
        return tuple(forms.values())


def _output_and_loss(
    config: Config, quantities: dict[str, Quantity], state: sp.MatrixSymbol
) -> tuple[Equation, ...]:
    """Eq. 34–35 for the state the output reads (s̄_t, or the LSTM's h̄_t)."""
    output = o(t) if config.output == "linear" else ops.Softmax(o(t))
    if config.loss == "cross-entropy":
        # softmax and cross-entropy fused: the loss reads ō_t, and the chain rule starts there
        loss = ops.CrossEntropy(d(t), o(t), config.scale)
        quantities["o"] = replace(QUANTITIES["o"], shown=True)
    else:
        loss = ops.SquaredError(d(t), y(t), config.scale)
    return (
        Equation(labels.OUTPUT, o(t), state * W_y),
        Equation(labels.OUTPUT, y(t), output),
        Equation(labels.LOSS, E(t), loss),
    )


def statement(config: Config) -> Statement:
    """The model of ``config`` at the generic step t: the lecture's RNN (Eq. 33–35), or a gated
    cell's equations followed by the same output and loss."""
    if config.cell != "rnn":
        return CELLS[config.cell](config)
    quantities = dict(QUANTITIES)
    return Statement(
        config,
        quantities,
        WEIGHTS,
        (
            Equation(labels.STATE, z(t), x(t) * W_x + s(t - 1) * W_s),
            Equation(labels.STATE, s(t), phi(z(t))),
            *_output_and_loss(config, quantities, s(t)),
        ),
    )


# ---------------------------------------------------------------------------------------------
# The gated cells: their parameters and equations, over the same operations.


def weight(name: str, rows: Any, cols: Any = None) -> sp.MatrixSymbol:
    """A parameter: W_q (rows×cols), or a bias b̄_q, a row (1×rows) when ``cols`` is None."""
    return sp.MatrixSymbol(name, 1, rows) if cols is None else sp.MatrixSymbol(name, rows, cols)


def _quantities(*names: str) -> dict[str, Quantity]:
    return {n: ALL_QUANTITIES[n] for n in ("x", "d", *names, "o", "y", "E", "g")}


def _gate(label: str, q: str, state: str, fn: Callable[[Any], Any], out: str) -> list[Equation]:
    """z̄^q_t = x̄_t W_xq + (state)_{t−1} W_(state)q + b̄_q and its gate out_t = fn(z̄^q_t)."""
    pre = at(f"z{q}", t)
    rhs = x(t) * weight(f"W_x{q}", n_x, n_s) + at(state, t - 1) * weight(f"W_{state}{q}", n_s, n_s)
    return [
        Equation(label, pre, rhs + weight(f"b_{q}", n_s)),
        Equation(label, at(out, t), fn(pre)),
    ]


def gru(config: Config) -> Statement:
    """The GRU in PyTorch's convention, the reset gate acting after the recurrent product:
    r̄_t = σ(x̄_t W_xr + s̄_{t−1} W_sr + b̄_r), ū_t = σ(x̄_t W_xu + s̄_{t−1} W_su + b̄_u),
    n̄_t = tanh(x̄_t W_xn + b̄_n + r̄_t ⊙ (s̄_{t−1} W_sn + b̄_sn)), s̄_t = (1 − ū_t) ⊙ n̄_t + ū_t ⊙ s̄_{t−1}.
    m̄_t = s̄_{t−1} W_sn + b̄_sn is named: the reset gate's derivative reads it."""
    quantities = _quantities(
        "s", "ds", "zr", "dzr", "r", "zu", "dzu", "u", "m", "dm", "zn", "dzn", "n"
    )
    quantities["s"] = replace(quantities["s"], adjoint="ds")
    W_xn, W_sn = weight("W_xn", n_x, n_s), weight("W_sn", n_s, n_s)
    b_n, b_sn = weight("b_n", n_s), weight("b_sn", n_s)
    r, u, n, mm = at("r", t), at("u", t), at("n", t), at("m", t)
    equations = (
        *_gate(labels.GRU_RESET, "r", "s", acts.sigma, "r"),
        *_gate(labels.GRU_UPDATE, "u", "s", acts.sigma, "u"),
        Equation(labels.GRU_CANDIDATE, mm, s(t - 1) * W_sn + b_sn),
        Equation(labels.GRU_CANDIDATE, at("zn", t), x(t) * W_xn + b_n + sp.HadamardProduct(r, mm)),
        Equation(labels.GRU_CANDIDATE, n, acts.tanh(at("zn", t))),
        Equation(
            labels.GRU_STATE,
            s(t),
            sp.HadamardProduct(sp.OneMatrix(1, n_s) - u, n) + sp.HadamardProduct(u, s(t - 1)),
        ),
        *_output_and_loss(config, quantities, s(t)),
    )
    return Statement(config, quantities, _weights(equations, GRU_PARAMS), equations)


def lstm(config: Config) -> Statement:
    """The LSTM with a forget gate (Gers et al. 2000), PyTorch's equations:
    ī_t, f̄_t, ō_t = σ(x̄_t W_xq + h̄_{t−1} W_hq + b̄_q), ḡ_t = tanh(x̄_t W_xg + h̄_{t−1} W_hg + b̄_g),
    c̄_t = f̄_t ⊙ c̄_{t−1} + ī_t ⊙ ḡ_t, h̄_t = ō_t ⊙ tanh(c̄_t)."""
    quantities = _quantities(
        "h",
        "dh",
        "c",
        "dc",
        "zi",
        "dzi",
        "ig",
        "zf",
        "dzf",
        "fg",
        "zg",
        "dzg",
        "gg",
        "zo",
        "dzo",
        "og",
    )
    h, c = at("h", t), at("c", t)
    equations = (
        *_gate(labels.LSTM_INPUT, "i", "h", acts.sigma, "ig"),
        *_gate(labels.LSTM_FORGET, "f", "h", acts.sigma, "fg"),
        *_gate(labels.LSTM_CANDIDATE, "g", "h", acts.tanh, "gg"),
        *_gate(labels.LSTM_OUTPUT, "o", "h", acts.sigma, "og"),
        Equation(
            labels.LSTM_CELL,
            c,
            sp.HadamardProduct(at("fg", t), at("c", t - 1))
            + sp.HadamardProduct(at("ig", t), at("gg", t)),
        ),
        Equation(labels.LSTM_HIDDEN, h, sp.HadamardProduct(at("og", t), acts.tanh(c))),
        *_output_and_loss(config, quantities, h),
    )
    return Statement(config, quantities, _weights(equations, LSTM_PARAMS), equations)


# Each cell's parameters in the order of its modules' PARAMS (the issue's order).
GRU_PARAMS = ("W_xr", "W_xu", "W_xn", "W_sr", "W_su", "W_sn", "b_r", "b_u", "b_n", "b_sn", "W_y")
LSTM_PARAMS = (
    "W_xi",
    "W_xf",
    "W_xg",
    "W_xo",
    "W_hi",
    "W_hf",
    "W_hg",
    "W_ho",
    "b_i",
    "b_f",
    "b_g",
    "b_o",
    "W_y",
)


def _weights(
    equations: tuple[Equation, ...], order: tuple[str, ...]
) -> tuple[sp.MatrixSymbol, ...]:
    """The parameters the equations read, in ``order`` (every name must be read)."""
    found = {
        a.name: a for e in equations for a in e.rhs.atoms(sp.MatrixSymbol) if step_of(a) is None
    }
    missing = [n for n in order if n not in found]
    if missing or set(found) - set(order):
        raise ValueError(f"the cell's equations read {sorted(found)}, its parameters are {order}")
    return tuple(found[n] for n in order)


CELLS: dict[str, Callable[[Config], Statement]] = {"gru": gru, "lstm": lstm}


# ---------------------------------------------------------------------------------------------
# Explicit instantiation: every entry a scalar symbol, the ground truth's raw material.


def symbol_matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    """A rows×cols matrix of real symbols ``{name}_{i}_{j}`` (``{name}_{j}`` for a row)."""
    if rows == 1:
        return sp.Matrix(1, cols, lambda _, j: sp.Symbol(f"{name}_{j}", real=True))
    return sp.Matrix(rows, cols, lambda i_, j: sp.Symbol(f"{name}_{i_}_{j}", real=True))


@dataclass(frozen=True)
class Explicit:
    """The model at concrete sizes: every step symbol bound to an explicit matrix.

    ``values`` maps the weights, s̄_0, x̄_k, d̄_k (matrices of scalar symbols) and every computed
    quantity (explicit expressions in those symbols); ``loss`` is the scalar loss.
    """

    statement: Statement
    sizes: tuple[int, int, int]
    values: dict[sp.MatrixSymbol, sp.Matrix]
    loss: sp.Expr
    inputs: tuple[sp.MatrixSymbol, ...]  # weights, initial states, inputs, targets
    # Truncated BPTT: the constant rows that stand for s̄_{t−K} in E_t, and their values (the
    # entries of s̄_{t−K}), given to them after differentiating.
    constants: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return self.statement.config

    @property
    def dims(self) -> dict[Any, int]:
        return dict(zip((n_x, n_s, n_y), self.sizes, strict=True))

    @property
    def input_symbols(self) -> list[sp.Symbol]:
        """Every scalar symbol of the explicit model, weights first, in a fixed order."""
        return [entry for m in self.inputs for entry in self.values[m]]


def explicit(stmt: Statement, sizes: tuple[int, int, int]) -> Explicit:
    """The statement at sizes (n_x, n_s, n_y) with a scalar symbol per entry, for N steps.

    s̄_0 is a row of symbols too (zeros would hide the i = 1 term of ∂E/∂W_s).
    """
    dims = dict(zip((n_x, n_s, n_y), _check_sizes(sizes), strict=True))
    ctx = ops.Context(stmt.config.act, dims)
    values, given = _given(stmt, dims)
    for target, rhs in stmt.definitions().items():
        values[target] = ops.evaluate(rhs, values, ctx)
    (loss_name,) = stmt.names("loss")
    window = stmt.config.window
    constants: dict[sp.Symbol, sp.Expr] = {}
    loss = sp.Integer(0)
    for k in stmt.config.loss_terms:
        if window is None or k - window < 1:
            loss += values[at(loss_name, k)][0, 0]
            continue
        # Truncated at K: E_k sees s̄_{k−K} as a constant row of its own, and steps k−K+1 … k.
        local = dict(values)
        for name in stmt.names("state"):
            row = symbol_matrix(f"{name}{k - window}c{k}", 1, values[at(name, k - window)].cols)
            constants.update(zip(row, values[at(name, k - window)], strict=True))
            local[at(name, k - window)] = row
        for j in range(k - window + 1, k + 1):
            for eq in stmt.equations_at(j):
                local[eq.target] = ops.evaluate(eq.rhs, local, ctx)
        loss += local[at(loss_name, k)][0, 0]
    return Explicit(stmt, tuple(dims.values()), values, loss, tuple(given), constants)


@dataclass(frozen=True)
class ScalarGraph:
    """The model at concrete sizes as a graph of scalar definitions: every entry of every
    computed quantity is a symbol of its own, defined by its equation's entry over the entries
    it reads. Substituting the definitions into each other gives :attr:`Explicit.loss`; kept
    apart, each definition stays small, so ``sympy.diff`` of each is cheap where the explicit
    loss of a gated cell is too large to differentiate whole (about 200 s at N = 3).

    ``values`` maps every input (weights, s̄_0, x̄_k, d̄_k) to its matrix of entry symbols, as
    :func:`explicit` names them, and every computed quantity to its matrix of node symbols;
    ``definitions`` holds each node's expression, in evaluation order; ``loss`` the nodes whose
    sum is the loss.
    """

    statement: Statement
    sizes: tuple[int, int, int]
    values: dict[sp.MatrixSymbol, sp.Matrix]
    definitions: dict[sp.Symbol, sp.Expr]
    loss: tuple[sp.Symbol, ...]
    inputs: tuple[sp.MatrixSymbol, ...]

    @property
    def dims(self) -> dict[Any, int]:
        return dict(zip((n_x, n_s, n_y), self.sizes, strict=True))

    @property
    def input_symbols(self) -> list[sp.Symbol]:
        return [entry for m in self.inputs for entry in self.values[m]]


def scalar_graph(stmt: Statement, sizes: tuple[int, int, int]) -> ScalarGraph:
    """The statement at sizes (n_x, n_s, n_y), N steps, as a :class:`ScalarGraph` (full BPTT)."""
    if stmt.config.window is not None:
        raise ValueError(
            f"truncate: the scalar graph states full BPTT only, got truncate={stmt.config.truncate}"
        )
    dims = dict(zip((n_x, n_s, n_y), _check_sizes(sizes), strict=True))
    ctx = ops.Context(stmt.config.act, dims)
    values, given = _given(stmt, dims)
    definitions: dict[sp.Symbol, sp.Expr] = {}
    for target, rhs in stmt.definitions().items():
        entries = ops.evaluate(rhs, values, ctx)
        nodes = symbol_matrix(f"{target.name}:", entries.rows, entries.cols)
        definitions.update(zip(nodes, entries, strict=True))
        values[target] = nodes
    (loss_name,) = stmt.names("loss")
    loss = tuple(values[at(loss_name, k)][0, 0] for k in stmt.config.loss_terms)
    return ScalarGraph(stmt, tuple(dims.values()), values, definitions, loss, tuple(given))


def _given(
    stmt: Statement, dims: Mapping[Any, int]
) -> tuple[dict[sp.MatrixSymbol, sp.Matrix], list[sp.MatrixSymbol]]:
    """A matrix of scalar symbols for each input of N steps (weights, s̄_0, x̄_k, d̄_k), named
    ``Wx_0_1``, ``s0_2``, ``x1_0`` …, and the inputs in that order."""
    values: dict[sp.MatrixSymbol, sp.Matrix] = {}
    given: list[sp.MatrixSymbol] = []

    def give(symbol: sp.MatrixSymbol, name: str) -> None:
        rows, cols = (int(sp.sympify(v).xreplace(dims)) for v in symbol.shape)
        values[symbol] = symbol_matrix(name, rows, cols)
        given.append(symbol)

    for w in stmt.weights:
        give(w, w.name.replace("_", ""))
    for name in stmt.names("state"):
        give(at(name, 0), f"{name}0")
    for role in ("input", "target"):
        for name in stmt.names(role):
            for k in range(1, stmt.config.steps + 1):
                give(at(name, k), f"{name}{k}")
    return values, given


def _check_sizes(sizes: Any) -> tuple[int, int, int]:
    if not isinstance(sizes, tuple) or len(sizes) != 3:
        raise ValueError(f"sizes: expected a tuple (n_x, n_s, n_y), got {sizes!r}")
    for name, value in zip(("n_x", "n_s", "n_y"), sizes, strict=True):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"sizes: expected {name} to be an int ≥ 1, got {value!r}")
    return sizes
