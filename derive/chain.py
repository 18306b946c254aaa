"""Stage 2: the chain rule. The dependency graph E_t → ȳ_t → s̄_t → … → s̄_1 and the sum over paths.

Contract: :func:`expand` turns a :class:`~derive.model.Config` into one :class:`Expansion` per
weight: a sum of :class:`Term` s, each a product of :class:`Factor` s, exactly as the lecture
writes them (Eq. 36–47). Nothing here is a string; every factor keeps its Leibniz form (numerator,
denominator) for the notes together with its evaluated form.

Layout. A factor ∂ū/∂v̄ between row vectors is given as its Jacobian in the lecture's row layout,
J[a, b] = ∂u_b/∂v_a, so that ∂(v̄A)/∂v̄ = A. The chain is evaluated as a sweep of row gradients
from the loss back to the weight (reverse mode): each factor's ``pullback`` maps U = ∂E/∂ū (a
row) to ∂E/∂v̄ = U Jᵀ. A factor ∂s̄_i/∂W is a three-index object; it has no Jacobian matrix, only
its pullback, and it is the *immediate* partial: s̄_{i-1} is held fixed (the path through
s̄_{i-1} is a term of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive import model as m

KINDS = ("loss", "output", "state", "weight")


def placeholder(cols: object) -> sp.MatrixSymbol:
    """U, the incoming row gradient ∂E/∂(numerator) of a pullback."""
    return sp.MatrixSymbol("U", 1, cols)


@dataclass(frozen=True)
class Factor:
    """One link ∂numerator/∂denominator of the chain rule."""

    numerator: sp.MatrixSymbol
    denominator: sp.MatrixSymbol
    kind: str
    jacobian: sp.MatrixExpr | None  # row layout; None for ∂(vector)/∂(matrix)
    pullback: sp.MatrixExpr  # ∂E/∂denominator in terms of placeholder U = ∂E/∂numerator

    @property
    def placeholder(self) -> sp.MatrixSymbol:
        return placeholder(self.numerator.shape[1])

    def pull(self, upstream: sp.MatrixExpr) -> sp.MatrixExpr:
        """∂E/∂denominator given upstream = ∂E/∂numerator (the 1×1 identity starts a sweep)."""
        out = self.pullback.xreplace({self.placeholder: upstream})
        if upstream == sp.Identity(1) and isinstance(out, sp.MatMul):
            rest = [a for a in out.args if a != upstream]
            out = rest[0] if len(rest) == 1 else sp.MatMul(*rest)
        return out


@dataclass(frozen=True)
class Term:
    """One path of the chain rule: E_t → ȳ_t → s̄_t → … → s̄_i → W (a product of factors)."""

    loss_step: int  # t of E_t
    through: int  # i: the state s̄_i whose immediate partial ∂s̄_i/∂W ends the path (t for W_y)
    factors: tuple[Factor, ...]

    def evaluate(self) -> sp.MatrixExpr:
        """The term as one matrix expression shaped like W: the reverse sweep of the pullbacks."""
        grad: sp.MatrixExpr = sp.Identity(1)
        for factor in self.factors:
            grad = factor.pull(grad)
        return grad


@dataclass(frozen=True)
class Expansion:
    """∂E/∂W as the sum of its chain-rule terms (Eq. 36–47)."""

    weight: sp.MatrixSymbol
    terms: tuple[Term, ...]

    def evaluate(self) -> sp.MatrixExpr:
        return sp.MatAdd(*(t.evaluate() for t in self.terms))


# ---------------------------------------------------------------------------------------------
# The local derivatives, each next to the forward operation it differentiates.


def output_pullback(config: m.Config, t: int, upstream: sp.MatrixExpr) -> sp.MatrixExpr:
    """∂E/∂ō_t from ∂E/∂ȳ_t: identity for a linear output; the softmax Jacobian otherwise.

    softmax: ∂ȳ_b/∂ō_a = ȳ_b(δ_ab − ȳ_a), i.e. J = diag(ȳ) − ȳᵀȳ (symmetric), so
    U J = U ⊙ ȳ − (U ȳᵀ) ȳ.
    """
    if config.output == "linear":
        return upstream
    yt = m.y(t)
    return sp.hadamard_product(upstream, yt) - (upstream * yt.T) * yt


def output_jacobian(config: m.Config, t: int) -> sp.MatrixExpr:
    """∂ȳ_t/∂ō_t in the row layout."""
    if config.output == "linear":
        return sp.Identity(m.n_y)
    yt = m.y(t)
    return DiagMatrix(yt.T) - yt.T * yt


def loss_factor(config: m.Config, t: int) -> Factor:
    """∂E_t/∂ȳ_t from Eq. 35: E_t = c (d̄_t − ȳ_t)(d̄_t − ȳ_t)ᵀ gives −2c (d̄_t − ȳ_t)."""
    grad_row = sp.MatMul(-2 * config.scale, m.d(t) - m.y(t))
    u = placeholder(1)
    return Factor(m.E(t), m.y(t), "loss", sp.Transpose(grad_row), sp.MatMul(u, grad_row))


def output_factor(config: m.Config, t: int) -> Factor:
    """∂ȳ_t/∂s̄_t from Eq. 34: ȳ_t = f(s̄_t W_y) gives W_y · ∂ȳ_t/∂ō_t."""
    u = placeholder(m.n_y)
    jac = m.W_y * output_jacobian(config, t) if config.output == "softmax" else m.W_y
    return Factor(m.y(t), m.s(t), "output", jac, output_pullback(config, t, u) * m.W_y.T)


def state_factor(j: int) -> Factor:
    """∂s̄_j/∂s̄_{j-1} from Eq. 33: s̄_j = Φ(x̄_j W_x + s̄_{j-1} W_s) gives W_s · diag(Φ'(z̄_j))."""
    u = placeholder(m.n_s)
    dphi = m.dphi(m.z(j))
    jac = m.W_s * DiagMatrix(dphi.T)
    return Factor(m.s(j), m.s(j - 1), "state", jac, sp.hadamard_product(u, dphi) * m.W_s.T)


def state_weight_factor(i: int, weight: sp.MatrixSymbol) -> Factor:
    """∂s̄_i/∂W for W = W_s or W_x, the immediate partial (s̄_{i-1} held fixed), from Eq. 33.

    ∂s_{i,b}/∂W_{pq} = Φ'(z_{i,b}) r_p [b = q] with r̄ = s̄_{i-1} (W_s) or x̄_i (W_x), so the
    pullback of U is r̄ᵀ (U ⊙ Φ'(z̄_i)).
    """
    u = placeholder(m.n_s)
    row = m.s(i - 1) if weight == m.W_s else m.x(i)
    return Factor(m.s(i), weight, "weight", None, row.T * sp.hadamard_product(u, m.dphi(m.z(i))))


def output_weight_factor(config: m.Config, t: int) -> Factor:
    """∂ȳ_t/∂W_y from Eq. 34 (immediate): the pullback of U is s̄_tᵀ (∂E/∂ō_t)."""
    u = placeholder(m.n_y)
    return Factor(m.y(t), m.W_y, "weight", None, m.s(t).T * output_pullback(config, t, u))


# ---------------------------------------------------------------------------------------------


def paths(config: m.Config, weight: sp.MatrixSymbol) -> tuple[Term, ...]:
    """Every chain-rule path from the loss to ``weight``: through s̄_N first, as the lecture."""
    if weight not in m.WEIGHTS:
        raise ValueError(f"weight: expected one of {list(m.WEIGHT_NAMES)}, got {weight!r}")
    terms: list[Term] = []
    for t in config.loss_terms:
        if weight == m.W_y:  # Eq. 36/37: one step, no BPTT
            terms.append(Term(t, t, (loss_factor(config, t), output_weight_factor(config, t))))
            continue
        for i in range(t, 0, -1):  # Eq. 38–40 (W_s), 43–45 (W_x); Σ over i: Eq. 42, 47
            chain = tuple(state_factor(j) for j in range(t, i, -1))
            factors = (
                loss_factor(config, t),
                output_factor(config, t),
                *chain,
                state_weight_factor(i, weight),
            )
            terms.append(Term(t, i, factors))
    return tuple(terms)


def expand(config: m.Config) -> dict[str, Expansion]:
    """∂E/∂W_x, ∂E/∂W_s, ∂E/∂W_y as chain-rule expansions, keyed by weight name."""
    return {
        name: Expansion(w, paths(config, w))
        for name, w in zip(m.WEIGHT_NAMES, m.WEIGHTS, strict=True)
    }
