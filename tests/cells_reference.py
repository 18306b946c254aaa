"""Reference values for the generated GRU and LSTM modules (tests/test_cells_numeric.py).

torch.nn.GRU / torch.nn.LSTM autograd with our parameters mapped onto PyTorch's, and central
differences over every entry of every parameter. Like tests/gradcheck.py, these return values
rather than asserting, so a test can show that a check *fails* on a wrong gradient.

The mapping. Our weights multiply row vectors (x W), PyTorch's column vectors (W x), so each of
ours is a transposed block of PyTorch's; PyTorch stacks the blocks in the gate order r, z, n
(GRU; our u is its z) and i, f, g, o (LSTM):
    GRU   weight_ih_l0 = [W_xrᵀ; W_xuᵀ; W_xnᵀ]   weight_hh_l0 = [W_srᵀ; W_suᵀ; W_snᵀ]
          bias_ih_l0   = [b_r, b_u, b_n]         bias_hh_l0   = [0, 0, b_sn]
    LSTM  weight_ih_l0 = [W_xiᵀ; W_xfᵀ; W_xgᵀ; W_xoᵀ]   weight_hh_l0 = [W_hiᵀ; W_hfᵀ; W_hgᵀ; W_hoᵀ]
          bias_ih_l0   = [b_i, b_f, b_g, b_o]          bias_hh_l0   = 0
PyTorch's two biases of a gate only add, except the GRU's n gate, where r multiplies b_hn alone:
our b_r stands for b_ir + b_hr (its gradient is either one's; we take bias_ih's block), and b_n,
b_sn are b_in, b_hn. PyTorch's h0 (and the LSTM's c0) is our s0. PyTorch has no output layer:
y = out W_y and the loss E = Σ_t Σ_batch ‖d_t − y_t‖² (divided by B for reduction="mean") are
computed in torch from its outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

CELLS = ("gru", "lstm")
GATES = {"gru": ("r", "u", "n"), "lstm": ("i", "f", "g", "o")}
STATES = {"gru": ("s",), "lstm": ("h", "c")}
# The state a gate's recurrent weight multiplies: W_sr for the GRU, W_hi for the LSTM.
_RECURRENT = {"gru": "s", "lstm": "h"}
# Biases beyond one per gate: the GRU's b_sn, inside r ⊙ (s W_sn + b_sn).
_EXTRA_BIASES = {"gru": ("b_sn",), "lstm": ()}


def params_table(cell: str) -> dict[str, tuple[str, ...]]:
    """Our parameter names → shapes in n_x, n_s, n_y, in the generated modules' order."""
    gates, rec = GATES[cell], _RECURRENT[cell]
    return {
        **{f"W_x{g}": ("n_x", "n_s") for g in gates},
        **{f"W_{rec}{g}": ("n_s", "n_s") for g in gates},
        **{f"b_{g}": ("n_s",) for g in gates},
        **{b: ("n_s",) for b in _EXTRA_BIASES[cell]},
        "W_y": ("n_s", "n_y"),
    }


def random_problem(
    cell: str,
    rng: np.random.Generator,
    T: int,
    sizes: tuple[int, int, int],
    batch: int | None,
    with_s0: bool,
    scale: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """Seeded float64 inputs: x, d, params, s0 (None when not used)."""
    n = dict(zip(("n_x", "n_s", "n_y"), sizes, strict=True))
    lead = (T,) if batch is None else (T, batch)
    x = rng.standard_normal((*lead, n["n_x"]))
    d = rng.standard_normal((*lead, n["n_y"]))
    params = {
        name: rng.standard_normal(tuple(n[k] for k in shape)) * scale
        for name, shape in params_table(cell).items()
    }
    s0 = None
    if with_s0:
        shape = (n["n_s"],) if batch is None else (batch, n["n_s"])
        s0 = {name: rng.standard_normal(shape) * 0.5 for name in STATES[cell]}
    return x, d, params, s0


def to_torch(cell: str, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch's layer-0 parameters (weight_ih_l0 …) from ours, as float64 arrays."""
    gates, rec = GATES[cell], _RECURRENT[cell]
    zero = np.zeros_like(params[f"b_{gates[0]}"])
    hh_bias = [params["b_sn"] if cell == "gru" and g == "n" else zero for g in gates]
    return {
        "weight_ih_l0": np.concatenate([params[f"W_x{g}"].T for g in gates]),
        "weight_hh_l0": np.concatenate([params[f"W_{rec}{g}"].T for g in gates]),
        "bias_ih_l0": np.concatenate([params[f"b_{g}"] for g in gates]),
        "bias_hh_l0": np.concatenate(hh_bias),
    }


def from_torch(cell: str, grads: dict[str, np.ndarray], W_y: np.ndarray) -> dict[str, np.ndarray]:
    """Our parameters' gradients from those of PyTorch's stacked parameters (and W_y's)."""
    gates, rec = GATES[cell], _RECURRENT[cell]
    blocks = {k: np.split(v, len(gates)) for k, v in grads.items()}
    out = {}
    for k, g in enumerate(gates):
        out[f"W_x{g}"] = blocks["weight_ih_l0"][k].T
        out[f"W_{rec}{g}"] = blocks["weight_hh_l0"][k].T
        out[f"b_{g}"] = blocks["bias_ih_l0"][k]
    if cell == "gru":
        out["b_sn"] = blocks["bias_hh_l0"][gates.index("n")]
    out["W_y"] = W_y
    return {name: out[name] for name in params_table(cell)}


def _torch_problem(
    cell: str, x: Any, params: dict[str, np.ndarray], s0: dict[str, np.ndarray] | None
) -> tuple[Any, Any, Any, Any]:
    """torch, the float64 nn.GRU / nn.LSTM holding our parameters, x as a tensor, and its
    initial state (None for zeros; a tensor, or the LSTM's (h0, c0))."""
    # torch is optional (the bench extra) and only these functions need it: imported here so the
    # central differences below work without it.
    import torch

    x64 = np.asarray(x, dtype=np.float64)
    n_x, n_s = x64.shape[-1], params["W_y"].shape[0]
    kind = torch.nn.GRU if cell == "gru" else torch.nn.LSTM
    net = kind(n_x, n_s, dtype=torch.float64)
    with torch.no_grad():
        for name, value in to_torch(cell, params).items():
            getattr(net, name).copy_(torch.from_numpy(np.asarray(value, dtype=np.float64)))
    hx = None
    if s0 is not None:
        # PyTorch's initial states carry a leading layer axis: (1, n_s) or (1, B, n_s).
        h0 = [torch.from_numpy(np.asarray(s0[k], dtype=np.float64)[None]) for k in STATES[cell]]
        hx = h0[0] if cell == "gru" else (h0[0], h0[1])
    return torch, net, torch.from_numpy(x64), hx


def torch_forward(
    cell: str, x: Any, params: dict[str, np.ndarray], s0: dict[str, np.ndarray] | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """PyTorch's forward pass in float64: (states, y, final).

    states: {state name: (T, [B,] n_s)} at steps 1 … T, from one call per step (nn.LSTM returns
    c only for the last step); y = out W_y, (T, [B,] n_y), from one call over the whole
    sequence; final: that call's h_n (and c_n), {state name: ([B,] n_s)}.
    """
    torch, net, xt, hx = _torch_problem(cell, x, params, s0)
    W_y = torch.from_numpy(np.asarray(params["W_y"], dtype=np.float64))
    with torch.no_grad():
        out, last = net(xt, hx)
        steps: dict[str, list[Any]] = {k: [] for k in STATES[cell]}
        state = hx
        for t in range(xt.shape[0]):
            _, state = net(xt[t : t + 1], state)
            for k, v in zip(STATES[cell], (state,) if cell == "gru" else state, strict=True):
                steps[k].append(v[0])
    finals = (last,) if cell == "gru" else last
    return (
        {k: torch.stack(v).numpy() for k, v in steps.items()},
        (out @ W_y).numpy(),
        {k: v[0].numpy() for k, v in zip(STATES[cell], finals, strict=True)},
    )


def torch_gradients(
    cell: str,
    x: Any,
    d: Any,
    params: dict[str, np.ndarray],
    s0: dict[str, np.ndarray] | None = None,
    reduction: str = "sum",
) -> tuple[float, dict[str, np.ndarray]]:
    """(E, {name: ∂E/∂name}) by PyTorch's autograd in float64, in our names and shapes."""
    torch, net, xt, hx = _torch_problem(cell, x, params, s0)
    W_y = torch.tensor(np.asarray(params["W_y"], dtype=np.float64), requires_grad=True)
    dt = torch.from_numpy(np.asarray(d, dtype=np.float64))
    out, _ = net(xt, hx)
    E = ((dt - out @ W_y) ** 2).sum()
    if reduction == "mean":
        E = E / (xt.shape[1] if xt.dim() == 3 else 1)
    named = dict(net.named_parameters())
    grads = torch.autograd.grad(E, [*named.values(), W_y])
    stacked = {k: g.numpy() for k, g in zip(named, grads[:-1], strict=True)}
    return float(E.item()), from_torch(cell, stacked, grads[-1].numpy())


def central_differences_params(
    loss_fn: Callable[..., float],
    x: Any,
    d: Any,
    params: dict[str, np.ndarray],
    s0: Any,
    h: float,
) -> dict[str, np.ndarray]:
    """(E(p + h e_k) − E(p − h e_k)) / 2h for every entry k of every parameter p, where
    E = loss_fn(x, d, params, s0)."""
    out = {}
    for name, p in params.items():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            plus, minus = dict(params), dict(params)
            plus[name], minus[name] = p.copy(), p.copy()
            plus[name][idx] += h
            minus[name][idx] -= h
            g[idx] = (loss_fn(x, d, plus, s0) - loss_fn(x, d, minus, s0)) / (2 * h)
        out[name] = g
    return out
