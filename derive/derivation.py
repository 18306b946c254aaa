"""The public result: one configuration's model, chain-rule expansions and closed forms.

Contract: :func:`derive` validates nothing itself (:class:`~derive.config.Config` does) and runs
the stages in order, model → chain → closed forms; the :class:`Derivation` it returns is
immutable and holds SymPy objects only (printing is the printers' job). Every later stage (the
proof, the code plans, the notes) takes a Derivation and never calls back into these stages.
"""

from __future__ import annotations

from dataclasses import dataclass

from derive import chain, closed_form
from derive import model as m
from derive.config import Config


@dataclass(frozen=True)
class Derivation:
    """Everything derived for one configuration.

    config       the configuration
    statement    the model's equations at a generic step t (Eq. 33–35), stated once
    expansions   weight name → chain-rule expansion (Eq. 36–47)
    closed       the expanded and collected closed forms, the δ recurrence, the generic step
    transitions  ∂s̄_t/∂s̄_{t−1} at a generic step t, one per state (vanishing gradients)
    """

    config: Config
    statement: m.Statement
    expansions: dict[str, chain.Expansion]
    closed: closed_form.ClosedForms
    transitions: tuple[chain.Factor, ...] = ()

    @property
    def forward(self) -> tuple[m.Equation, ...]:
        """Eq. 33–35 at the generic step t."""
        return self.statement.equations

    def _repr_latex_(self) -> str:
        # The documented exception to "no stage imports a later one": notebook display.
        from derive.printing.latex import derivation_latex

        return derivation_latex(self)


def derive(config: Config | None = None) -> Derivation:
    """Derive ∂E/∂W for every weight of ``config`` (default: the lecture's case)."""
    if config is None:
        config = Config()
    if not isinstance(config, Config):
        raise TypeError(f"config: expected a derive.Config, got {type(config).__name__}")
    stmt = m.statement(config)
    expansions = chain.expand(stmt)
    closed = closed_form.closed_forms(stmt, expansions)
    return Derivation(config, stmt, expansions, closed, chain.transitions(stmt))
