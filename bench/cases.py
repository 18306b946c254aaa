"""The benchmark cases (issue 5) and their seeded float64 inputs and FLOP counts.

Every case is time-major with n_x = n_s = n_y = n and s̄_0 = 0, as the generated modules take it:
x (T, B, n), d (T, B, n), W_x, W_s, W_y (n, n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    T: int
    B: int
    n: int
    # E_T only (the lecture's E_3, what generated/bptt_e3.py computes) instead of Σ_t E_t.
    last_only: bool = False

    def describe(self) -> str:
        loss = "E_T only" if self.last_only else "Σ_t E_t"
        return f"T = {self.T}, B = {self.B}, n = {self.n}, {loss}"

    def flops(self) -> tuple[int, int]:
        """Approximate FLOPs of (loss, gradients): the matrix products only, 2 per multiply-add.

        loss:      2·T·B·(n_x·n_s + n_s·n_s + n_s·n_y)   (Eq. 33 and 34 at every step)
        gradients: the loss's products and five more per step backward: g_t W_yᵀ,
                   δ_(t+1) W_sᵀ (T − 1 of them), and the weight gradients Σ s̄ᵀg, Σ s̄_(t-1)ᵀδ,
                   Σ x̄ᵀδ; with n_x = n_s = n_y = n that is 2·B·n²·(8T − 1) ≈ 8/3 × loss.
        For E_T only, the output's products (ȳ_T, g_T W_yᵀ, s̄_Tᵀ g_T) happen at one step only.
        """
        T, B, n = self.T, self.B, self.n
        out_steps = 1 if self.last_only else T
        forward = 2 * B * (T * (n * n + n * n) + out_steps * n * n)
        backward = 2 * B * ((T - 1) * n * n + T * n * n + T * n * n + 2 * out_steps * n * n)
        return forward, forward + backward


FLOP_FORMULA = (
    "FLOPs count the matrix products only, 2 per multiply-add (tanh and the elementwise "
    "products are left out). loss: F = 2·T·B·(n_x·n_s + n_s·n_s + n_s·n_y). gradients: F plus "
    "the backward products g_t W_yᵀ, δ_(t+1) W_sᵀ (T − 1 steps), Σ_t s̄_tᵀ g_t, "
    "Σ_t s̄_(t−1)ᵀ δ_t, Σ_t x̄_tᵀ δ_t, i.e. 2·B·n²·(8T − 1) ≈ 8/3 · F for n_x = n_s = n_y = n. "
    "For E_3 only (bptt_e3), the output's products happen at the last step only."
)

CASES: dict[str, Case] = {
    "lecture": Case("lecture", T=3, B=1, n=3),
    "small": Case("small", T=50, B=32, n=64),
    "medium": Case("medium", T=100, B=64, n=256),
    "long": Case("long", T=1000, B=1, n=32),
    # generated/bptt_e3.py: the lecture's case with the lecture's loss E_3.
    "lecture-e3": Case("lecture-e3", T=3, B=1, n=3, last_only=True),
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
    rng = np.random.default_rng(seed)
    T, B, n = case.T, case.B, case.n
    x = rng.standard_normal((T, B, n))
    d = rng.standard_normal((T, B, n))
    scale = 1.0 / np.sqrt(n)
    W_x, W_s, W_y = (rng.standard_normal((n, n)) * scale for _ in range(3))
    return Problem(case, x, d, W_x, W_s, W_y)
