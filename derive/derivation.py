"""The public result: one configuration's model, chain-rule expansions and closed forms.

Contract: :func:`derive` validates nothing itself (:class:`~derive.model.Config` does) and runs
the stages in order, model → chain → closed forms; the :class:`Derivation` it returns is
immutable and holds SymPy objects only (printing is the printers' job).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive import chain, closed_form
from derive import model as m


@dataclass(frozen=True)
class Derivation:
    """Everything derived for one configuration.

    config       the configuration
    forward      Eq. 33–35 for a generic step t, as (label, symbol, definition)
    expansions   weight name → chain-rule expansion (Eq. 36–47)
    closed       the expanded and collected closed forms and the δ recurrence
    """

    config: m.Config
    forward: tuple[tuple[str, sp.MatrixSymbol, sp.MatrixExpr], ...]
    expansions: dict[str, chain.Expansion]
    closed: closed_form.ClosedForms

    def _repr_latex_(self) -> str:
        from derive.printing.latex import derivation_latex

        return derivation_latex(self)


def derive(config: m.Config | None = None) -> Derivation:
    """Derive ∂E/∂W_x, ∂E/∂W_s, ∂E/∂W_y for ``config`` (default: the lecture's case)."""
    if config is None:
        config = m.Config()
    if not isinstance(config, m.Config):
        raise TypeError(f"config: expected a derive.Config, got {type(config).__name__}")
    expansions = chain.expand(config)
    return Derivation(
        config,
        tuple(m.forward_equations(config)),
        expansions,
        closed_form.closed_forms(config, expansions),
    )
