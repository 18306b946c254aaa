"""The gated cells' implementations under test: the generated modules generated/gru.py and
generated/lstm.py, PyTorch's nn.GRU and nn.LSTM, and JAX's scan of a hand-written cell.

Each computes, in float64 with every initial state 0, the loss Σ_t E_t of the cell (the equations
beside :data:`bench.cases.CELLS`) with the linear output ȳ_t = s̄_t W_y (h̄_t W_y for the LSTM) and
E_t = (d̄_t − ȳ_t)(d̄_t − ȳ_t)ᵀ summed over the batch, and its gradients with respect to every
parameter. As in :mod:`bench.peers`, ``loss()`` and ``gradients()`` are the timed calls and
``named()`` gives (E, {parameter name: gradient}) as NumPy for the agreement check.

The generated modules' contract, as this file relies on it: ``PARAMS`` (name → shape in terms of
"n_x", "n_s", "n_y", in order), ``STATES``, ``init_params(n_x, n_s, n_y, rng=None)``,
``loss(x, d, params, s0=None, reduction="sum") -> float`` and ``gradients(x, d, params, s0=None,
reduction="sum")`` returning ``.loss`` and ``.params`` (name → array shaped like the parameter).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.cases import CELLS, CellProblem
from bench.impl import ContractError, Impl, Named, Unavailable, jax_compiled, jax_x64


def generated_module(cell: str) -> Any:
    """generated/<cell>.py, or Unavailable when the file does not exist (yet)."""
    name = f"generated.{cell}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the module exists but something it imports does not
            raise
        raise Unavailable(
            f"generated/{cell}.py does not exist yet (make derive writes it)"
        ) from exc


def check_contract(mod: Any, cell: str) -> None:
    """The module's PARAMS and STATES are the benchmark's table, and it has the functions."""
    expected = dict(CELLS[cell].params)
    params = {k: tuple(v) for k, v in dict(getattr(mod, "PARAMS", {})).items()}
    problems = []
    if list(params.items()) != list(expected.items()):
        problems.append(f"PARAMS {params} (expected {expected})")
    states = tuple(getattr(mod, "STATES", ()))
    if states != CELLS[cell].states:
        problems.append(f"STATES {states} (expected {CELLS[cell].states})")
    problems += [
        f"no {f}()"
        for f in ("loss", "gradients", "init_params")
        if not callable(getattr(mod, f, None))
    ]
    if problems:
        raise ContractError(f"{mod.__name__}: " + "; ".join(problems))


class CellImpl(Impl):
    """A gated cell's implementation: its values() are already (E, {name: gradient})."""

    def values(self) -> Named:
        raise NotImplementedError

    def named(self) -> Named:
        return self.values()


class GeneratedCell(CellImpl):
    """generated/gru.py or generated/lstm.py, public loss() and gradients() (input checks
    included); Unavailable while the file does not exist, ContractError if it breaks the
    contract."""

    def __init__(self, problem: CellProblem) -> None:
        super().__init__()
        cell = problem.case.cell
        self.mod = generated_module(cell)
        check_contract(self.mod, cell)
        self.args = (problem.x, problem.d, problem.params)

    def loss(self) -> float:
        return self.mod.loss(*self.args)

    def gradients(self) -> Any:
        return self.mod.gradients(*self.args)

    def values(self) -> Named:
        g = self.gradients()
        return float(g.loss), {k: np.asarray(v) for k, v in g.params.items()}


# ---------------------------------------------------------------------------------------------
# PyTorch (CPU, float64): nn.GRU / nn.LSTM for the recurrence, then ȳ = s̄ W_y, autograd.

# Per cell, PyTorch's stacked layout in its gate order (GRU r, z, n; LSTM i, f, g, o): the blocks
# of weight_ih_l0 and weight_hh_l0 (each the transposed weight), of bias_ih_l0 and bias_hh_l0
# (None: a zero block, PyTorch's second bias that the cell does not have).
TORCH_LAYOUT: dict[str, dict[str, tuple[str | None, ...]]] = {
    "gru": {
        "weight_ih_l0": ("W_xr", "W_xu", "W_xn"),
        "weight_hh_l0": ("W_sr", "W_su", "W_sn"),
        "bias_ih_l0": ("b_r", "b_u", "b_n"),
        "bias_hh_l0": (None, None, "b_sn"),
    },
    "lstm": {
        "weight_ih_l0": ("W_xi", "W_xf", "W_xg", "W_xo"),
        "weight_hh_l0": ("W_hi", "W_hf", "W_hg", "W_ho"),
        "bias_ih_l0": ("b_i", "b_f", "b_g", "b_o"),
        "bias_hh_l0": (None, None, None, None),
    },
}


class TorchCell(CellImpl):
    """PyTorch's nn.GRU or nn.LSTM (one layer, time-major, float64, CPU) for the recurrence,
    then ȳ = s̄ W_y and the loss in torch; the loss under no_grad, the gradients of its stacked
    parameters and W_y by torch.autograd.grad. The blocks of bias_hh the cell does not have (the
    GRU's r and z, all of the LSTM's) are 0 but parameters to PyTorch: their gradients are
    computed and dropped."""

    def __init__(self, problem: CellProblem) -> None:
        super().__init__()
        import torch

        self.torch = torch
        cell = problem.case.cell
        p = problem.params
        n_x, n_s = problem.x.shape[2], p["W_y"].shape[0]
        module = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
        self.rnn = module(n_x, n_s, dtype=torch.float64)
        self.layout = TORCH_LAYOUT[cell]
        with torch.no_grad():
            for attr, blocks in self.layout.items():
                value = np.concatenate(
                    [
                        np.zeros(n_s) if b is None else (p[b].T if p[b].ndim == 2 else p[b])
                        for b in blocks
                    ]
                )
                getattr(self.rnn, attr).copy_(torch.from_numpy(value))
        self.W_y = torch.from_numpy(p["W_y"]).requires_grad_(True)
        self.params = [*(getattr(self.rnn, a) for a in self.layout), self.W_y]
        self.x = torch.from_numpy(problem.x)
        self.d = torch.from_numpy(problem.d)
        self.n_s = n_s

    def _loss(self) -> Any:
        s, _ = self.rnn(self.x)
        return ((self.d - s @ self.W_y) ** 2).sum()

    def loss(self) -> Any:
        with self.torch.no_grad():
            return self._loss()

    def gradients(self) -> Any:
        E = self._loss()
        return E.detach(), *self.torch.autograd.grad(E, self.params)

    def values(self) -> Named:
        E, *stacked, g_y = self.gradients()
        n = self.n_s
        grads: dict[str, np.ndarray] = {}
        for blocks, g in zip(self.layout.values(), stacked, strict=True):
            g = g.numpy()
            for j, name in enumerate(blocks):
                if name is not None:
                    block = g[j * n : (j + 1) * n]
                    grads[name] = block.T if block.ndim == 2 else block
        grads["W_y"] = g_y.numpy()
        return float(E), grads


# ---------------------------------------------------------------------------------------------
# JAX (CPU, x64): the cell written by hand, lax.scan over time, jit(value_and_grad).


def _gru(jnp: Any, sigmoid: Any, p: dict[str, Any]) -> tuple[Any, Any, Callable[..., Any]]:
    """The GRU's input weights and biases stacked (one GEMM for every step's x̄ W_x·), its
    recurrent weights stacked (one GEMM per step), and its step on the carry (s̄,)."""
    W_x = jnp.concatenate([p["W_xr"], p["W_xu"], p["W_xn"]], axis=1)
    b = jnp.concatenate([p["b_r"], p["b_u"], p["b_n"]])
    W_s = jnp.concatenate([p["W_sr"], p["W_su"], p["W_sn"]], axis=1)
    b_sn = p["b_sn"]

    def step(carry: tuple[Any], xw_t: Any) -> tuple[tuple[Any], Any]:
        (s,) = carry
        xr, xu, xn = jnp.split(xw_t, 3, axis=-1)
        sr, su, sn = jnp.split(s @ W_s, 3, axis=-1)
        r = sigmoid(xr + sr)
        u = sigmoid(xu + su)
        n = jnp.tanh(xn + r * (sn + b_sn))
        s = (1.0 - u) * n + u * s
        return (s,), s

    return W_x, b, step


def _lstm(jnp: Any, sigmoid: Any, p: dict[str, Any]) -> tuple[Any, Any, Callable[..., Any]]:
    """The LSTM's stacked input weights and biases, and its step on the carry (h̄, c̄)."""
    gates = ("i", "f", "g", "o")
    W_x = jnp.concatenate([p[f"W_x{g}"] for g in gates], axis=1)
    b = jnp.concatenate([p[f"b_{g}"] for g in gates])
    W_h = jnp.concatenate([p[f"W_h{g}"] for g in gates], axis=1)

    def step(carry: tuple[Any, Any], xw_t: Any) -> tuple[tuple[Any, Any], Any]:
        h, c = carry
        zi, zf, zg, zo = jnp.split(xw_t + h @ W_h, 4, axis=-1)
        c = sigmoid(zf) * c + sigmoid(zi) * jnp.tanh(zg)
        h = sigmoid(zo) * jnp.tanh(c)
        return (h, c), h

    return W_x, b, step


JAX_CELLS = {"gru": _gru, "lstm": _lstm}


class JaxCell(CellImpl):
    """JAX: the cell by hand (the gates' weights stacked: x̄ W_x + b for all steps in one GEMM,
    one recurrent GEMM per step), lax.scan over time, ȳ = s̄ W_y for all steps at once;
    jit(loss) and jit(value_and_grad(loss)) over the parameter dict, lowered and compiled before
    timing, the compile times kept apart."""

    def __init__(self, problem: CellProblem) -> None:
        super().__init__()
        jax = jax_x64()
        jnp = jax.numpy
        cell = problem.case.cell
        B, n_s = problem.x.shape[1], problem.params["W_y"].shape[0]
        build = JAX_CELLS[cell]
        n_states = len(CELLS[cell].states)

        def loss_fn(params: dict[str, Any], x: Any, d: Any) -> Any:
            W_x, b, step = build(jnp, jax.nn.sigmoid, params)
            zero = jnp.zeros((B, n_s), x.dtype)
            _, states = jax.lax.scan(step, (zero,) * n_states, x @ W_x + b)
            return jnp.sum((d - states @ params["W_y"]) ** 2)

        self.jax = jax
        self.params = {k: jax.device_put(v) for k, v in problem.params.items()}
        self.x, self.d = jax.device_put(problem.x), jax.device_put(problem.d)
        args = (self.params, self.x, self.d)
        self._loss, self._grad = jax_compiled(jax, loss_fn, args, self.compile_seconds)

    def loss(self) -> Any:
        return self._loss(self.params, self.x, self.d).block_until_ready()

    def gradients(self) -> Any:
        return self.jax.block_until_ready(self._grad(self.params, self.x, self.d))

    def values(self) -> Named:
        E, grads = self.gradients()
        return float(E), {k: np.asarray(grads[k]) for k in self.params}  # jax sorts the keys
