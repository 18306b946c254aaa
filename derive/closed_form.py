"""Stage 3: closed forms. Dimension-free matrix results and the δ recurrence.

Contract: :func:`closed_forms` gives, for each weight, (1) the *expanded* form, the sum of the
chain-rule terms of :mod:`derive.chain` swept into one matrix expression each, as the lecture
writes them (for N = 3 three explicit terms), and (2) the *collected* form, where the shared
prefixes of those terms are named: g_t = ∂E/∂ō_t and δ_t = ∂E/∂z̄_t, with

    δ_N = (g_N W_yᵀ) ⊙ Φ'(z̄_N),   δ_t = (δ_{t+1} W_sᵀ [+ g_t W_yᵀ]) ⊙ Φ'(z̄_t),
    ∂E/∂W_s = Σ_i s̄_{i-1}ᵀ δ_i,  ∂E/∂W_x = Σ_i x̄_iᵀ δ_i,  ∂E/∂W_y = Σ_t s̄_tᵀ g_t,

where g_t W_yᵀ enters δ_t only for the steps t whose E_t is in the loss. Both forms are built from
the same model symbols; the expanded form is swept from the factors' pullbacks, the collected form
names their shared prefixes. Both are proven equal to the ground truth in :mod:`derive.verify`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive import chain
from derive import model as m


@dataclass(frozen=True)
class Definition:
    """``target = expression``: one line of the backward recurrence."""

    target: sp.MatrixSymbol
    expression: sp.MatrixExpr


@dataclass(frozen=True)
class ClosedForms:
    """The closed forms of one configuration.

    expanded     weight name → (term per path, in the order of :func:`chain.paths`)
    recurrence   g_t and δ_t definitions, in evaluation order (g's, then δ_N … δ_1)
    collected    weight name → ∂E/∂W in terms of g_t and δ_t
    """

    expanded: dict[str, tuple[sp.MatrixExpr, ...]]
    recurrence: tuple[Definition, ...]
    collected: dict[str, sp.MatrixExpr]


def output_gradient(config: m.Config, t: int) -> sp.MatrixExpr:
    """g_t = ∂E/∂ō_t: the loss factor's row swept through the output nonlinearity."""
    loss_row = chain.loss_factor(config, t).pull(sp.Identity(1))
    return chain.output_pullback(config, t, loss_row)


def recurrence(config: m.Config) -> tuple[Definition, ...]:
    """g_t for each t in the loss, then δ_N, δ_{N-1}, …, δ_1 (the backward sweep)."""
    n = config.steps
    lines = [Definition(m.g(t), output_gradient(config, t)) for t in config.loss_terms]
    # ∂E/∂s̄_t is the path through s̄_{t+1} (δ_{t+1} W_sᵀ) plus, when E_t is in the loss, the
    # direct path g_t W_yᵀ; δ_t multiplies it by Φ'(z̄_t) (Eq. 33).
    for t in range(n, 0, -1):
        parts: list[sp.MatrixExpr] = []
        if t < n:
            parts.append(m.delta(t + 1) * m.W_s.T)
        if t in config.loss_terms:
            parts.append(m.g(t) * m.W_y.T)
        upstream = parts[0] if len(parts) == 1 else sp.MatAdd(*parts)
        lines.append(Definition(m.delta(t), sp.hadamard_product(upstream, m.dphi(m.z(t)))))
    return tuple(lines)


def collected(config: m.Config) -> dict[str, sp.MatrixExpr]:
    """∂E/∂W as sums over steps of (row)ᵀ · (named gradient)."""
    n = config.steps
    return {
        "W_x": sp.MatAdd(*(m.x(i).T * m.delta(i) for i in range(n, 0, -1))),
        "W_s": sp.MatAdd(*(m.s(i - 1).T * m.delta(i) for i in range(n, 0, -1))),
        "W_y": sp.MatAdd(*(m.s(t).T * m.g(t) for t in reversed(config.loss_terms))),
    }


def closed_forms(config: m.Config, expansions: dict[str, chain.Expansion]) -> ClosedForms:
    expanded = {name: tuple(t.evaluate() for t in e.terms) for name, e in expansions.items()}
    return ClosedForms(expanded, recurrence(config), collected(config))
