"""Equation labels shared by the notes and the generated code (one table, used by both).

The lecture's numbers (../shared/lecture/EQUATIONS.md) are cited as ``Eq. 33`` … ``Eq. 47``.
Results of our own that the lecture does not number get labels ``R1`` … ``R5``, which cannot be
mistaken for the lecture's. In generated Python a label is cited in a comment line of the form
``# Eq. 38: …`` or ``# R2: …``; the notes define every label they cite (``\\tag{38}``,
``\\tag{R2}``) and a test checks that the two sets agree.
"""

from __future__ import annotations

import re

# Lecture equations (row-vector notation).
STATE = "Eq. 33"
OUTPUT = "Eq. 34"
LOSS = "Eq. 35"
W_Y_LECTURE = "Eq. 36"  # ∂E_3/∂W_y
W_Y_GENERAL = "Eq. 37"  # ∂E_N/∂W_y
W_S_TERMS = ("Eq. 38", "Eq. 39", "Eq. 40")  # through s̄_3, s̄_2, s̄_1
W_S_SUM = "Eq. 41"
W_S_GENERAL = "Eq. 42"
W_X_TERMS = ("Eq. 43", "Eq. 44", "Eq. 45")  # numbers inferred in EQUATIONS.md
W_X_SUM = "Eq. 46"
W_X_GENERAL = "Eq. 47"

MINI_BATCH = "Eq. 61"  # δ_ij = (1/M) Σ_k δ_ij_k, the gradient averaged over a mini-batch

# The gated cells' equations (issue 13; PyTorch's conventions), per cell.
GRU_RESET, GRU_UPDATE, GRU_CANDIDATE, GRU_STATE = "G1", "G2", "G3", "G4"
LSTM_INPUT, LSTM_FORGET, LSTM_CANDIDATE, LSTM_OUTPUT = "L1", "L2", "L3", "L4"
LSTM_CELL, LSTM_HIDDEN = "L5", "L6"

# Our own results.
OUTPUT_GRADIENT = "R1"  # γ_t = ∂E/∂v̄_t
DELTA = "R2"  # δ_N = (γ_N W_yᵀ) ⊙ Φ'(z̄_N), δ_t = (δ_{t+1} W_sᵀ [+ γ_t W_yᵀ]) ⊙ Φ'(z̄_t)
W_Y_COLLECTED = "R3"  # ∂E/∂W_y = Σ_t s̄_tᵀ γ_t
W_S_COLLECTED = "R4"  # ∂E/∂W_s = Σ_i s̄_{i-1}ᵀ δ_i
W_X_COLLECTED = "R5"  # ∂E/∂W_x = Σ_i x̄_iᵀ δ_i
PARAMETER_COLLECTED = "R7"  # ∂E/∂θ of a gated cell's parameter, a sum over steps
TRANSITION = "R6"  # ∂s̄_t/∂s̄_{t-1} = D_t W_sᵀ and ∂s̄_T/∂s̄_{T-k}, their product (vanishing gradients)

# The labels a sum over steps of ∂E/∂W cites: the lecture's general form and our collected one.
SUM_LABELS = {
    "W_y": (W_Y_GENERAL, W_Y_COLLECTED),
    "W_s": (W_S_GENERAL, W_S_COLLECTED),
    "W_x": (W_X_GENERAL, W_X_COLLECTED),
}

OURS = {
    OUTPUT_GRADIENT: "output gradient γ_t = ∂E/∂v̄_t",
    DELTA: "δ recurrence",
    W_Y_COLLECTED: "∂E/∂W_y collected, Σ_t s̄_tᵀ γ_t",
    W_S_COLLECTED: "∂E/∂W_s collected, Σ_i s̄_(i-1)ᵀ δ_i",
    W_X_COLLECTED: "∂E/∂W_x collected, Σ_i x̄_iᵀ δ_i",
    TRANSITION: "∂s̄_T/∂s̄_(T-k) as a product of the factors ∂s̄_t/∂s̄_(t-1)",
}

# A label cited in a comment line of generated Python.
CODE_LABEL = re.compile(r"^\s*# (Eq\. \d+|R\d+|[GL]\d+):", re.MULTILINE)


def tag(label: str) -> str:
    """The text inside ``\\tag{…}`` for a label: ``Eq. 38`` → ``38``, ``R2`` → ``R2``."""
    return label.removeprefix("Eq. ")


def cited_in_code(source: str) -> list[tuple[int, str]]:
    """(1-based line number, label) for every label comment in a generated module."""
    out = []
    for match in CODE_LABEL.finditer(source):
        out.append((source.count("\n", 0, match.start()) + 1, match.group(1)))
    return out
