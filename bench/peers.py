"""The implementations under test: the generated modules and the peers they are measured against.

Every RNN implementation here computes, in float64, the loss of the lecture's tanh RNN with a
linear output and s̄_0 = 0, and the gradients ∂E/∂W_x, ∂E/∂W_s, ∂E/∂W_y; the loss is Σ_t E_t with
E_t = (d̄_t − ȳ_t)² summed over outputs and batch, or E_T alone when the case says so
(``last_only``, the lecture's E_3 of generated/bptt_e3.py). The GRU's and LSTM's implementations
live in :mod:`bench.gated`; :data:`SPECS` registers both kinds.

Each implementation is built once per case by its factory, which converts the inputs to its own
array type and compiles what it compiles; then ``loss()`` and ``gradients()`` are the timed calls
(they return the library's own types and wait for the result), and ``values()`` gives the loss
and gradients as NumPy for the agreement check. A peer whose package is missing is skipped.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench import gated
from bench.cases import Case, Problem
from bench.impl import Impl, jax_compiled, jax_x64

Values = tuple[float, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Spec:
    """An implementation's name, what it needs installed, and how to build it for a problem.

    ``factory`` takes the case's problem (bench.cases.inputs): a Problem for the RNN, a
    CellProblem for the gated cells; it raises impl.Unavailable to be skipped for that case.
    """

    key: str
    label: str
    factory: Callable[[Any], Impl]
    requires: tuple[str, ...] = ()
    # Computes Σ_t E_t even on an E_3 case: shown for comparison, not checked against the others.
    other_loss: bool = False
    note: str = ""
    cases: tuple[str, ...] = field(default=())  # empty: every case of its cells
    cells: tuple[str, ...] = ("rnn",)  # the cells it implements (keys of bench.cases.CELLS)


# ---------------------------------------------------------------------------------------------
# The generated modules (the reference of every ratio).


def _generated_module(problem: Problem, *, force_sum: bool = False) -> Any:
    if problem.case.last_only and not force_sum:
        from generated import bptt_e3

        return bptt_e3
    from generated import bptt

    return bptt


class Generated(Impl):
    """generated/bptt.py (Σ_t E_t, any T) or generated/bptt_e3.py (E_3, T = 3), public API."""

    def __init__(self, problem: Problem, *, force_sum: bool = False) -> None:
        super().__init__()
        self.mod = _generated_module(problem, force_sum=force_sum)
        self.args = (problem.x, problem.d, *problem.weights)

    def loss(self) -> float:
        return self.mod.loss(*self.args)

    def gradients(self) -> Any:
        return self.mod.gradients(*self.args)

    def values(self) -> Values:
        g = self.gradients()
        return float(g.loss), g.W_x, g.W_s, g.W_y


def _numba_module(problem: Problem) -> Any:
    if problem.case.last_only:
        from generated import bptt_e3_numba

        return bptt_e3_numba
    from generated import bptt_numba

    return bptt_numba


class GeneratedNumba(Generated):
    """generated/bptt_numba.py or bptt_e3_numba.py (the Numba backend), public API; the
    factory compiles its kernels (warmup(), timed) before any timing."""

    def __init__(self, problem: Problem) -> None:
        Impl.__init__(self)
        self.mod = _numba_module(problem)
        start = time.perf_counter()
        self.mod.warmup()
        self.compile_seconds = {"warmup": time.perf_counter() - start}
        self.args = (problem.x, problem.d, *problem.weights)


class GeneratedKernels(Impl):
    """The generated module's private _loss/_gradients on prepared arrays: no input checks."""

    def __init__(self, problem: Problem) -> None:
        super().__init__()
        self.mod = _generated_module(problem)
        a = self.mod._prepare(problem.x, problem.d, *problem.weights, None)
        self.args = (a.x, a.d, a.W_x, a.W_s, a.W_y, a.s_0)

    def loss(self) -> Any:
        return self.mod._loss(*self.args)

    def gradients(self) -> Any:
        return self.mod._gradients(*self.args)

    def values(self) -> Values:
        E, gx, gs, gy = self.gradients()
        return float(E), gx, gs, gy


# ---------------------------------------------------------------------------------------------
# Hand-written NumPy.


class NumpyEfficient(Impl):
    """BPTT by hand, written for speed: x̄ W_x for all steps in one GEMM, the two recurrences
    step by step into preallocated buffers (matmul/tanh with out=), each weight gradient one GEMM
    over the stacked time×batch axis, s̄_0 = 0 used to skip its zero terms."""

    def __init__(self, problem: Problem) -> None:
        super().__init__()
        p = problem
        self.last_only = p.case.last_only
        self.x, self.d = p.x, p.d
        self.W_x, self.W_s, self.W_y = p.weights
        T, B, n_x = p.x.shape
        n_s, n_y = self.W_s.shape[0], self.W_y.shape[1]
        self.T, self.B, self.n_s, self.n_y = T, B, n_s, n_y
        self.x2 = p.x.reshape(T * B, n_x)
        self.d2 = p.d.reshape(T * B, n_y)
        self.s = np.empty((T, B, n_s))
        self.tmp = np.empty((B, n_s))
        self.delta = np.empty((T, B, n_s))
        self.dphi = np.empty((T, B, n_s))

    def _forward(self) -> np.ndarray:
        s, tmp, W_s = self.s, self.tmp, self.W_s
        np.matmul(self.x2, self.W_x, out=s.reshape(self.T * self.B, self.n_s))
        np.tanh(s[0], out=s[0])
        for t in range(1, self.T):
            np.matmul(s[t - 1], W_s, out=tmp)
            s[t] += tmp
            np.tanh(s[t], out=s[t])
        return s

    def loss(self) -> float:
        s = self._forward()
        if self.last_only:
            e = s[-1] @ self.W_y
            e -= self.d[-1]
        else:
            e = s.reshape(self.T * self.B, self.n_s) @ self.W_y
            e -= self.d2
        return float(np.vdot(e, e))

    def gradients(self) -> Values:
        T, B, n_s = self.T, self.B, self.n_s
        s = self._forward()
        s2 = s.reshape(T * B, n_s)
        delta, dphi, tmp, W_sT = self.delta, self.dphi, self.tmp, self.W_s.T
        np.square(s, out=dphi)
        np.subtract(1.0, dphi, out=dphi)
        if self.last_only:
            g = s[-1] @ self.W_y
            g -= self.d[-1]
            E = float(np.vdot(g, g))
            g *= 2.0
            np.matmul(g, self.W_y.T, out=delta[-1])
            delta[-1] *= dphi[-1]
            for t in range(T - 2, -1, -1):
                np.matmul(delta[t + 1], W_sT, out=delta[t])
                delta[t] *= dphi[t]
            dW_y = s[-1].T @ g
        else:
            g = s2 @ self.W_y
            g -= self.d2
            E = float(np.vdot(g, g))
            g *= 2.0
            np.matmul(g, self.W_y.T, out=delta.reshape(T * B, n_s))
            delta[-1] *= dphi[-1]
            for t in range(T - 2, -1, -1):
                np.matmul(delta[t + 1], W_sT, out=tmp)
                delta[t] += tmp
                delta[t] *= dphi[t]
            dW_y = s2.T @ g
        delta2 = delta.reshape(T * B, n_s)
        dW_s = s2[:-B].T @ delta2[B:]  # s̄_0 = 0: the t = 1 term vanishes
        dW_x = self.x2.T @ delta2
        return E, dW_x, dW_s, dW_y

    def values(self) -> Values:
        return self.gradients()


class NumpyPerStep(Impl):
    """BPTT by hand in the per-step style of Karpathy's min-char-rnn: every product, the loss
    and every gradient contribution computed one step at a time, states kept in a dict."""

    def __init__(self, problem: Problem) -> None:
        super().__init__()
        p = problem
        self.last_only = p.case.last_only
        self.x, self.d = p.x, p.d
        self.W_x, self.W_s, self.W_y = p.weights
        self.T, self.B = p.x.shape[:2]

    def loss(self) -> float:
        W_x, W_s, W_y, x, d = self.W_x, self.W_s, self.W_y, self.x, self.d
        h = np.zeros((self.B, W_s.shape[0]))
        E = 0.0
        first = self.T - 1 if self.last_only else 0
        for t in range(self.T):
            h = np.tanh(x[t] @ W_x + h @ W_s)
            if t >= first:
                y = h @ W_y
                E += np.sum((d[t] - y) ** 2)
        return float(E)

    def gradients(self) -> Values:
        W_x, W_s, W_y, x, d = self.W_x, self.W_s, self.W_y, self.x, self.d
        T = self.T
        first = T - 1 if self.last_only else 0
        hs: dict[int, np.ndarray] = {-1: np.zeros((self.B, W_s.shape[0]))}
        ys: dict[int, np.ndarray] = {}
        E = 0.0
        for t in range(T):
            hs[t] = np.tanh(x[t] @ W_x + hs[t - 1] @ W_s)
            if t >= first:
                ys[t] = hs[t] @ W_y
                E += np.sum((d[t] - ys[t]) ** 2)
        dW_x, dW_s, dW_y = np.zeros_like(W_x), np.zeros_like(W_s), np.zeros_like(W_y)
        dh_next = np.zeros_like(hs[0])
        for t in reversed(range(T)):
            dh = dh_next
            if t >= first:
                dy = -2.0 * (d[t] - ys[t])
                dW_y += hs[t].T @ dy
                dh = dh + dy @ W_y.T
            dz = (1.0 - hs[t] * hs[t]) * dh
            dW_x += x[t].T @ dz
            dW_s += hs[t - 1].T @ dz
            dh_next = dz @ W_s.T
        return float(E), dW_x, dW_s, dW_y

    def values(self) -> Values:
        return self.gradients()


# ---------------------------------------------------------------------------------------------
# PyTorch (CPU, float64, eager autograd).


class _Torch(Impl):
    """What the PyTorch peers share: the loss under no_grad, the gradients of ``_loss()`` with
    respect to ``self.params`` by torch.autograd.grad."""

    torch: Any
    params: list[Any]

    def _loss(self) -> Any:
        raise NotImplementedError

    def loss(self) -> Any:
        with self.torch.no_grad():
            return self._loss()

    def gradients(self) -> Any:
        E = self._loss()
        return E.detach(), *self.torch.autograd.grad(E, self.params)


class TorchLoop(_Torch):
    """PyTorch autograd over a Python loop of the recurrence: x̄ W_x for all steps as one
    batched matmul, s̄_t = tanh(… + s̄_(t-1) W_s) step by step, ȳ for all steps at once; the loss
    under no_grad, the gradients by torch.autograd.grad."""

    def __init__(self, problem: Problem) -> None:
        super().__init__()
        import torch

        self.torch = torch
        p = problem
        self.last_only = p.case.last_only
        self.x = torch.from_numpy(p.x)
        self.d = torch.from_numpy(p.d)
        self.params = [torch.from_numpy(w).requires_grad_(True) for w in p.weights]
        self.s0 = torch.zeros(p.x.shape[1], p.W_s.shape[0], dtype=torch.float64)

    def _loss(self) -> Any:
        W_x, W_s, W_y = self.params
        xw = self.x @ W_x
        s = self.s0
        states = []
        for t in range(xw.shape[0]):
            s = self.torch.tanh(xw[t] + s @ W_s)
            states.append(s)
        if self.last_only:
            return ((self.d[-1] - s @ W_y) ** 2).sum()
        y = self.torch.stack(states) @ W_y
        return ((self.d - y) ** 2).sum()

    def values(self) -> Values:
        E, gx, gs, gy = self.gradients()
        return float(E), gx.numpy(), gs.numpy(), gy.numpy()


class TorchRNN(_Torch):
    """PyTorch's nn.RNN (tanh, no biases, float64) for the recurrence, then ȳ = s̄ W_y; its
    weights are stored transposed (weight_ih = W_xᵀ, weight_hh = W_sᵀ)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__()
        import torch

        self.torch = torch
        p = problem
        n_x, n_s = p.W_x.shape
        self.last_only = p.case.last_only
        self.rnn = torch.nn.RNN(n_x, n_s, nonlinearity="tanh", bias=False, dtype=torch.float64)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(torch.from_numpy(p.W_x.T))  # type: ignore[operator]
            self.rnn.weight_hh_l0.copy_(torch.from_numpy(p.W_s.T))  # type: ignore[operator]
        self.W_y = torch.from_numpy(p.W_y).requires_grad_(True)
        self.params = [self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.W_y]
        self.x = torch.from_numpy(p.x)
        self.d = torch.from_numpy(p.d)

    def _loss(self) -> Any:
        s, _ = self.rnn(self.x)
        if self.last_only:
            return ((self.d[-1] - s[-1] @ self.W_y) ** 2).sum()
        return ((self.d - s @ self.W_y) ** 2).sum()

    def values(self) -> Values:
        E, g_ih, g_hh, gy = self.gradients()
        return float(E), g_ih.numpy().T, g_hh.numpy().T, gy.numpy()


# ---------------------------------------------------------------------------------------------
# JAX (CPU, x64): jit(value_and_grad) over lax.scan, compiled ahead of time.


class Jax(Impl):
    """JAX: the loss as lax.scan over the recurrence (x̄ W_x and ȳ = s̄ W_y for all steps at
    once), jit(loss) and jit(value_and_grad(loss)) lowered and compiled before timing; the
    compile times (trace + lower + XLA compile) are kept apart."""

    def __init__(self, problem: Problem) -> None:
        super().__init__()
        jax = jax_x64()
        jnp = jax.numpy
        p = problem
        last_only = p.case.last_only
        B, n_s = p.x.shape[1], p.W_s.shape[0]

        def loss_fn(W: tuple[Any, Any, Any], x: Any, d: Any) -> Any:
            W_x, W_s, W_y = W

            def step(s: Any, xw_t: Any) -> tuple[Any, Any]:
                s = jnp.tanh(xw_t + s @ W_s)
                return s, s

            s_last, states = jax.lax.scan(step, jnp.zeros((B, n_s), x.dtype), x @ W_x)
            if last_only:
                return jnp.sum((d[-1] - s_last @ W_y) ** 2)
            return jnp.sum((d - states @ W_y) ** 2)

        self.jax = jax
        self.W = tuple(jax.device_put(w) for w in p.weights)
        self.x, self.d = jax.device_put(p.x), jax.device_put(p.d)
        args = (self.W, self.x, self.d)
        self._loss, self._grad = jax_compiled(jax, loss_fn, args, self.compile_seconds)

    def loss(self) -> Any:
        return self._loss(self.W, self.x, self.d).block_until_ready()

    def gradients(self) -> Any:
        return self.jax.block_until_ready(self._grad(self.W, self.x, self.d))

    def values(self) -> Values:
        E, (gx, gs, gy) = self.gradients()
        return float(E), np.asarray(gx), np.asarray(gs), np.asarray(gy)


# ---------------------------------------------------------------------------------------------
# HIPS autograd.


class Autograd(Impl):
    """HIPS autograd: the loss written with autograd.numpy as a Python loop of the recurrence
    (x̄ W_x for all steps at once), value_and_grad over the tuple of weights."""

    def __init__(self, problem: Problem) -> None:
        super().__init__()
        import autograd
        import autograd.numpy as anp

        p = problem
        last_only = p.case.last_only
        T, B, n_x = p.x.shape
        n_s = p.W_s.shape[0]
        x2 = p.x.reshape(T * B, n_x)
        d = p.d

        def loss_fn(W: tuple[Any, Any, Any]) -> Any:
            W_x, W_s, W_y = W
            xw = anp.reshape(anp.dot(x2, W_x), (T, B, n_s))
            s = anp.zeros((B, n_s))
            states = []
            for t in range(T):
                s = anp.tanh(xw[t] + anp.dot(s, W_s))
                states.append(s)
            if last_only:
                return anp.sum((d[-1] - anp.dot(s, W_y)) ** 2)
            y = anp.dot(anp.reshape(anp.stack(states), (T * B, n_s)), W_y)
            return anp.sum((d.reshape(T * B, -1) - y) ** 2)

        self._loss = loss_fn
        self._grad = autograd.value_and_grad(loss_fn)
        self.W = p.weights

    def loss(self) -> Any:
        return self._loss(self.W)

    def gradients(self) -> Any:
        return self._grad(self.W)

    def values(self) -> Values:
        E, (gx, gs, gy) = self.gradients()
        return float(E), gx, gs, gy


# ---------------------------------------------------------------------------------------------
# The registry, in table order; the first of each cell is the reference of its ratios.

REFERENCE = "generated"
# Per cell, the implementation every other one is checked against and divided by.
REFERENCES = {"rnn": REFERENCE, "gru": "generated-cell", "lstm": "generated-cell"}

SPECS: tuple[Spec, ...] = (
    Spec(
        "generated",
        "generated (bptt.py / bptt_e3.py)",
        Generated,
        note="the generated module's public loss() and gradients(), input checks included",
    ),
    Spec(
        "generated-numba",
        "generated, Numba (bptt_numba.py / bptt_e3_numba.py)",
        GeneratedNumba,
        requires=("numba",),
        note="the Numba backend's module (`--backend numba`), public loss() and gradients(), "
        "input checks included; its kernels compiled (or loaded from numba's cache) first",
    ),
    Spec(
        "generated-kernels",
        "generated, no input checks",
        GeneratedKernels,
        note="the same module's _loss/_gradients on already prepared arrays",
    ),
    Spec(
        "generated-sum",
        "generated bptt.py (Σ_t E_t)",
        lambda p: Generated(p, force_sum=True),
        other_loss=True,
        note="on the E_3 case: bptt.py computes Σ_t E_t, a different loss; not checked, shown "
        "for scale",
        cases=("lecture-e3",),
    ),
    Spec("numpy-efficient", "NumPy, efficient (hand)", NumpyEfficient),
    Spec("numpy-per-step", "NumPy, per step (min-char-rnn)", NumpyPerStep),
    Spec("torch", "PyTorch autograd, loop", TorchLoop, requires=("torch",)),
    Spec("torch-rnn", "PyTorch nn.RNN", TorchRNN, requires=("torch",)),
    Spec("jax", "JAX jit(value_and_grad), scan", Jax, requires=("jax",)),
    Spec("autograd", "HIPS autograd", Autograd, requires=("autograd",)),
    Spec(
        "generated-cell",
        "generated (gru.py / lstm.py)",
        gated.GeneratedCell,
        cells=("gru", "lstm"),
        note="generated/gru.py or generated/lstm.py, public loss() and gradients() with the "
        "parameters as a dict, input checks included; skipped while the module does not exist",
    ),
    Spec(
        "torch-cell",
        "PyTorch nn.GRU / nn.LSTM",
        gated.TorchCell,
        requires=("torch",),
        cells=("gru", "lstm"),
    ),
    Spec(
        "jax-cell",
        "JAX jit(value_and_grad), scan of the cell",
        gated.JaxCell,
        requires=("jax",),
        cells=("gru", "lstm"),
    ),
)


def applies(spec: Spec, case: Case) -> bool:
    """Whether ``spec`` implements ``case``'s cell (and, if it names cases, this one)."""
    return case.cell in spec.cells and (not spec.cases or case.name in spec.cases)


def missing(spec: Spec) -> str | None:
    """Why ``spec`` cannot run here (its package does not import), or None."""
    for module in spec.requires:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} not importable ({exc})"
    return None


def describe(spec: Spec) -> str:
    """One line on what the implementation does: the spec's note or its class docstring."""
    doc = spec.note or (getattr(spec.factory, "__doc__", None) or "")
    return " ".join(doc.split())
