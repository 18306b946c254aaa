"""The benchmark cases (issue 5) and their seeded float64 inputs and FLOP counts.

Every case is time-major with n_x = n_s = n_y = n and s̄_0 = 0, as the generated modules take it:
x (T, B, n), d (T, B, n), W_x, W_s, W_y (n, n). A case names its cell: the lecture's tanh RNN, or
a gated cell (GRU, LSTM) whose parameters are the table :data:`CELLS` holds, the contract of
generated/gru.py and generated/lstm.py (their ``PARAMS`` and ``STATES``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cell:
    """A recurrent cell as the benchmark sees it: its parameters in order (name → shape in terms
    of n_x, n_s, n_y), its states, and k, the products of x̄_t (and of s̄_(t−1)) with a weight
    per step: one per gate."""

    name: str
    label: str
    gates: int
    params: tuple[tuple[str, tuple[str, ...]], ...]
    states: tuple[str, ...]


# Row vectors, σ logistic, ⊙ entry-wise, PyTorch's conventions (its u is z):
#   GRU:  r = σ(x̄ W_xr + s̄_(t−1) W_sr + b_r), u = σ(x̄ W_xu + s̄_(t−1) W_su + b_u),
#         n = tanh(x̄ W_xn + b_n + r ⊙ (s̄_(t−1) W_sn + b_sn)), s̄_t = (1 − u) ⊙ n + u ⊙ s̄_(t−1)
#   LSTM: i, f, o = σ(x̄ W_x· + h̄_(t−1) W_h· + b_·), g = tanh(x̄ W_xg + h̄_(t−1) W_hg + b_g),
#         c̄_t = f ⊙ c̄_(t−1) + i ⊙ g, h̄_t = o ⊙ tanh(c̄_t)
#   both: ȳ_t = s̄_t W_y (h̄_t W_y), E_t = (d̄_t − ȳ_t)(d̄_t − ȳ_t)ᵀ summed over the batch.
_X, _S, _Y = "n_x", "n_s", "n_y"
CELLS: dict[str, Cell] = {
    "rnn": Cell(
        "rnn", "tanh RNN", 1, (("W_x", (_X, _S)), ("W_s", (_S, _S)), ("W_y", (_S, _Y))), ("s",)
    ),
    "gru": Cell(
        "gru",
        "GRU",
        3,
        (
            *((f"W_x{g}", (_X, _S)) for g in "run"),
            *((f"W_s{g}", (_S, _S)) for g in "run"),
            *((f"b_{g}", (_S,)) for g in ("r", "u", "n", "sn")),
            ("W_y", (_S, _Y)),
        ),
        ("s",),
    ),
    "lstm": Cell(
        "lstm",
        "LSTM",
        4,
        (
            *((f"W_x{g}", (_X, _S)) for g in "ifgo"),
            *((f"W_h{g}", (_S, _S)) for g in "ifgo"),
            *((f"b_{g}", (_S,)) for g in "ifgo"),
            ("W_y", (_S, _Y)),
        ),
        ("h", "c"),
    ),
}


@dataclass(frozen=True)
class Case:
    name: str
    T: int
    B: int
    n: int
    # E_T only (the lecture's E_3, what generated/bptt_e3.py computes) instead of Σ_t E_t.
    last_only: bool = False
    cell: str = "rnn"  # a key of CELLS

    @property
    def gated(self) -> bool:
        return self.cell != "rnn"

    def describe(self) -> str:
        loss = "E_T only" if self.last_only else "Σ_t E_t"
        what = f"{CELLS[self.cell].label}, " if self.gated else ""
        return f"{what}T = {self.T}, B = {self.B}, n = {self.n}, {loss}"

    def flops(self) -> tuple[int, int]:
        """Approximate FLOPs of (loss, gradients): the matrix products only, 2 per multiply-add,
        for a cell of k gates (the RNN k = 1, the GRU 3, the LSTM 4).

        loss:      2·T·B·(k·n_x·n_s + k·n_s·n_s + n_s·n_y)   (Eq. 33 and 34 at every step)
        gradients: the loss's products and more per step backward: g_t W_yᵀ,
                   δ_(t+1) W_sᵀ for each gate (T − 1 of them), and the weight gradients Σ s̄ᵀg,
                   Σ s̄_(t-1)ᵀδ and Σ x̄ᵀδ for each gate; with n_x = n_s = n_y = n that is
                   2·B·n²·((5k + 3)·T − k): 2·B·n²·(8T − 1) ≈ 8/3 × loss for the RNN.
        For E_T only, the output's products (ȳ_T, g_T W_yᵀ, s̄_Tᵀ g_T) happen at one step only.
        """
        T, B, n, k = self.T, self.B, self.n, CELLS[self.cell].gates
        out_steps = 1 if self.last_only else T
        forward = 2 * B * (T * (k * n * n + k * n * n) + out_steps * n * n)
        backward = (
            2 * B * ((T - 1) * k * n * n + T * k * n * n + T * k * n * n + 2 * out_steps * n * n)
        )
        return forward, forward + backward


FLOP_FORMULA = (
    "FLOPs count the matrix products only, 2 per multiply-add (tanh and the elementwise "
    "products are left out). loss: F = 2·T·B·(n_x·n_s + n_s·n_s + n_s·n_y). gradients: F plus "
    "the backward products g_t W_yᵀ, δ_(t+1) W_sᵀ (T − 1 steps), Σ_t s̄_tᵀ g_t, "
    "Σ_t s̄_(t−1)ᵀ δ_t, Σ_t x̄_tᵀ δ_t, i.e. 2·B·n²·(8T − 1) ≈ 8/3 · F for n_x = n_s = n_y = n. "
    "For E_3 only (bptt_e3), the output's products happen at the last step only."
)

CELL_FLOP_FORMULA = (
    "FLOPs count the matrix products only, 2 per multiply-add (σ, tanh and the entry-wise "
    "products of the gates are left out). A step of a cell with k gates (GRU k = 3: r, u, n; "
    "LSTM k = 4: i, f, g, o) multiplies x̄_t by k input weights and s̄_(t−1) (h̄_(t−1)) by k "
    "recurrent weights, and s̄_t by W_y. loss: F = 2·T·B·(k·n_x·n_s + k·n_s² + n_s·n_y). "
    "gradients: F plus, backward, the gates' adjoints times the k recurrent weights transposed "
    "(T − 1 steps), the weight gradients Σ_t x̄_tᵀ δ and Σ_t s̄_(t−1)ᵀ δ of each gate, and the "
    "output's g_t W_yᵀ and Σ_t s̄_tᵀ g_t, i.e. 2·B·n²·((5k + 3)·T − k) for n_x = n_s = n_y = n, "
    "≈ (5k + 3)/(2k + 1) · F: 18/7 ≈ 2.6 for the GRU, 23/9 ≈ 2.6 for the LSTM (k = 1 gives "
    "the RNN's count)."
)

CASES: dict[str, Case] = {
    "lecture": Case("lecture", T=3, B=1, n=3),
    "small": Case("small", T=50, B=32, n=64),
    "medium": Case("medium", T=100, B=64, n=256),
    "long": Case("long", T=1000, B=1, n=32),
    # generated/bptt_e3.py: the lecture's case with the lecture's loss E_3.
    "lecture-e3": Case("lecture-e3", T=3, B=1, n=3, last_only=True),
    # generated/gru.py and generated/lstm.py at the RNN's small and medium sizes.
    "gru-small": Case("gru-small", T=50, B=32, n=64, cell="gru"),
    "gru-medium": Case("gru-medium", T=100, B=64, n=256, cell="gru"),
    "lstm-small": Case("lstm-small", T=50, B=32, n=64, cell="lstm"),
    "lstm-medium": Case("lstm-medium", T=100, B=64, n=256, cell="lstm"),
}


@dataclass(frozen=True)
class Problem:
    """Seeded inputs of one case; s̄_0 = 0 everywhere (the generated modules' default)."""

    case: Case
    x: np.ndarray
    d: np.ndarray
    W_x: np.ndarray
    W_s: np.ndarray
    W_y: np.ndarray

    @property
    def weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.W_x, self.W_s, self.W_y


def problem(case: Case, seed: int = 20261125) -> Problem:
    """Standard-normal x and d; weights scaled by 1/√n so that tanh stays out of saturation."""
    if case.gated:
        raise ValueError(f"case: expected an RNN case, got {case.name} ({case.cell})")
    rng = np.random.default_rng(seed)
    T, B, n = case.T, case.B, case.n
    x = rng.standard_normal((T, B, n))
    d = rng.standard_normal((T, B, n))
    scale = 1.0 / np.sqrt(n)
    W_x, W_s, W_y = (rng.standard_normal((n, n)) * scale for _ in range(3))
    return Problem(case, x, d, W_x, W_s, W_y)


@dataclass(frozen=True)
class CellProblem:
    """Seeded inputs of a gated cell's case: x (T, B, n), d (T, B, n), and the parameters by
    name in the order of ``CELLS[case.cell].params``; every initial state is 0."""

    case: Case
    x: np.ndarray
    d: np.ndarray
    params: dict[str, np.ndarray]


def cell_problem(case: Case, seed: int = 20261125) -> CellProblem:
    """Standard-normal x and d; every parameter, biases included, N(0, 1/n) as in problem()."""
    if not case.gated:
        raise ValueError(f"case: expected a GRU or LSTM case, got {case.name} ({case.cell})")
    rng = np.random.default_rng(seed)
    T, B, n = case.T, case.B, case.n
    x = rng.standard_normal((T, B, n))
    d = rng.standard_normal((T, B, n))
    sizes = {"n_x": n, "n_s": n, "n_y": n}
    scale = 1.0 / np.sqrt(n)
    params = {
        name: rng.standard_normal(tuple(sizes[s] for s in shape)) * scale
        for name, shape in CELLS[case.cell].params
    }
    return CellProblem(case, x, d, params)


def inputs(case: Case, seed: int = 20261125) -> Problem | CellProblem:
    """The case's problem: :func:`problem` for the RNN, :func:`cell_problem` for a gated cell."""
    return cell_problem(case, seed) if case.gated else problem(case, seed)
