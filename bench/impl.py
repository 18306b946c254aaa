"""What every implementation under test is: the :class:`Impl` interface the harness times and
checks, how a factory declines to run (:class:`Unavailable`) or reports a broken contract
(:class:`ContractError`), and the one way the peers import JAX.

:mod:`bench.peers` (the RNN's implementations and the registry) and :mod:`bench.gated` (the GRU's
and LSTM's) both build on it; it imports neither.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

# The RNN's weights, in the order of Impl.values()'s gradients.
WEIGHTS = ("W_x", "W_s", "W_y")

Named = tuple[float, dict[str, np.ndarray]]


class Unavailable(Exception):
    """Raised by a factory whose implementation cannot run for this case (its generated module
    does not exist yet): the harness skips it with this message as the reason."""


class ContractError(Exception):
    """An implementation exists but does not follow the contract the benchmark relies on."""


class Impl:
    """One implementation prepared for one problem."""

    compile_seconds: dict[str, float]

    def __init__(self) -> None:
        self.compile_seconds = {}

    def loss(self) -> Any:
        raise NotImplementedError

    def gradients(self) -> Any:
        raise NotImplementedError

    def values(self) -> Any:
        raise NotImplementedError

    def named(self) -> Named:
        """The loss and the gradients by parameter name, as NumPy, for the agreement check; an
        RNN implementation's values() are (E, ∂E/∂W_x, ∂E/∂W_s, ∂E/∂W_y)."""
        E, *grads = self.values()
        return float(E), dict(zip(WEIGHTS, grads, strict=True))


def jax_x64() -> Any:
    """JAX on the CPU with float64 (x64 must be on before any array is made)."""
    # CPU only, and no probing for accelerators.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def jax_compiled(jax: Any, loss_fn: Any, args: tuple[Any, ...], seconds: dict[str, float]) -> Any:
    """jit(loss_fn) and jit(value_and_grad(loss_fn)), lowered and compiled for ``args`` before
    any timing; their compile times go into ``seconds`` ("loss", "gradients")."""
    start = time.perf_counter()
    loss = jax.jit(loss_fn).lower(*args).compile()
    seconds["loss"] = time.perf_counter() - start
    start = time.perf_counter()
    grad = jax.jit(jax.value_and_grad(loss_fn)).lower(*args).compile()
    seconds["gradients"] = time.perf_counter() - start
    return loss, grad
