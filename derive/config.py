"""Stage 0: one configuration of the model, validated.

Contract: :class:`Config` checks every field when it is made (bad fields raise ``ValueError`` or
``TypeError`` naming the field, what was expected and what came) and is immutable; the defaults
are the lecture's case. It says *which* model, not what the model is: :mod:`derive.model` states
the equations for a configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import sympy as sp

from derive.activations import Activation, make_activation

CELLS = ("rnn", "gru", "lstm")
OUTPUTS = ("linear", "softmax")
LOSS_STEPS = ("last", "all")
LOSSES = ("squared-error", "cross-entropy")


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
    scale       κ in E_t (the notes write κ: c̄ is the LSTM's cell); the lecture uses 1, mentions ½.
    loss_steps  'last': the lecture's E_N; 'all': the total Σ_t E_t.
    loss        'squared-error': E_t = κ (d̄_t − ȳ_t)(d̄_t − ȳ_t)ᵀ (Eq. 35);
                'cross-entropy': E_t = −κ Σ_k d_{t,k} log ȳ_{t,k} (needs output='softmax').
    truncate    None: full BPTT; K ≥ 1: each E_t is back-propagated through s̄_t … s̄_{t−K+1}
                only (s̄_{t−K} a constant for E_t; Williams and Peng's BPTT(K; 1)).
    cell        'rnn': the lecture's (Eq. 33); 'gru' | 'lstm': a gated cell, PyTorch's equations
                (its functions σ and tanh are fixed: ``activation`` must stay 'tanh').
    """

    steps: int = 3
    activation: str | sp.Lambda = "tanh"
    output: str = "linear"
    scale: Any = 1
    loss_steps: str = "last"
    loss: str = "squared-error"
    truncate: int | None = None
    cell: str = "rnn"
    act: Activation = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise TypeError(f"steps: expected an int ≥ 1, got {type(self.steps).__name__}")
        if self.steps < 1:
            raise ValueError(f"steps: expected an int ≥ 1, got {self.steps}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output: expected one of {list(OUTPUTS)}, got {self.output!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell: expected one of {list(CELLS)}, got {self.cell!r}")
        if self.cell != "rnn" and self.activation != "tanh":
            raise ValueError(
                f"activation: the {self.cell.upper()} cell's functions are fixed (σ and tanh); "
                f"leave activation at 'tanh', got {self.activation!r}"
            )
        if self.loss_steps not in LOSS_STEPS:
            raise ValueError(
                f"loss_steps: expected one of {list(LOSS_STEPS)}, got {self.loss_steps!r}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {list(LOSSES)}, got {self.loss!r}")
        if self.loss == "cross-entropy" and self.output != "softmax":
            raise ValueError(
                f"loss: 'cross-entropy' needs output='softmax' (ȳ_t a distribution), got "
                f"output={self.output!r}"
            )
        if self.truncate is not None:
            if isinstance(self.truncate, bool) or not isinstance(self.truncate, int):
                raise TypeError(
                    f"truncate: expected None or an int ≥ 1, got {type(self.truncate).__name__}"
                )
            if self.truncate < 1:
                raise ValueError(f"truncate: expected None or an int ≥ 1, got {self.truncate}")
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

    @property
    def window(self) -> int | None:
        """K when truncation cuts anything at N steps (K < N), else None (full BPTT)."""
        return self.truncate if self.truncate is not None and self.truncate < self.steps else None

    def with_steps(self, steps: int) -> Config:
        """The same model at another number of steps."""
        return replace(self, steps=steps)

    def describe(self) -> str:
        cell = "" if self.cell == "rnn" else f"cell={self.cell}, "
        return (
            f"N={self.steps}, {cell}activation={self.activation_name}, output={self.output}, "
            f"loss={self.loss}, scale={self.scale}, loss_steps={self.loss_steps}, "
            f"truncate={self.truncate}"
        )
