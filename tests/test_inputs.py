"""The generated modules' contract for inputs: shapes, dtypes, and a clear error for bad input."""

from __future__ import annotations

import warnings
from typing import Any

import numba_modules
import numpy as np
import pytest
from gradcheck import random_problem

from generated import bptt, bptt_e3
from generated import bptt_tanh_linear_se_all_c1_Tany_K5 as truncated
from generated import bptt_tanh_softmax_ce_all_c1_Tany as classifier

# The NumPy modules and the Numba backend's (the same contract, checks and error texts).
MODULES = pytest.mark.parametrize(
    "mod",
    [
        pytest.param(bptt, id="bptt"),
        pytest.param(bptt_e3, id="bptt_e3"),
        pytest.param(classifier, id="classifier"),
        pytest.param(truncated, id="truncated"),
        *numba_modules.params(),
    ],
)


def _problem(batch: int | None = None, with_s0: bool = True) -> tuple[Any, ...]:
    x, d, weights, s0 = random_problem(np.random.default_rng(0), 3, (2, 3, 4), batch, with_s0)
    return x, d, *weights, s0


@MODULES
def test_interface(mod: Any) -> None:
    x, d, W_x, W_s, W_y, s0 = _problem(batch=5)
    s, y = mod.forward(x, W_x, W_s, W_y, s0)
    assert s.shape == (3, 5, 3) and y.shape == (3, 5, 4)
    g = mod.gradients(x, d, W_x, W_s, W_y, s0)
    assert g._fields == ("loss", "W_x", "W_s", "W_y")
    assert (g.W_x.shape, g.W_s.shape, g.W_y.shape) == ((2, 3), (3, 3), (3, 4))
    assert isinstance(g.loss, float) and g.loss == mod.loss(x, d, W_x, W_s, W_y, s0)
    assert set(mod.CONFIG) >= {"steps", "activation", "output", "scale", "loss_steps", "backend"}
    xu, _, *w, s0u = _problem(batch=None)
    s, y = mod.forward(xu, *w, s0u)
    assert s.shape == (3, 3) and y.shape == (3, 4)


def test_configs() -> None:
    assert bptt_e3.CONFIG == {
        "steps": 3,
        "activation": "tanh",
        "output": "linear",
        "loss": "squared-error",
        "scale": 1.0,
        "loss_steps": "last",
        "truncate": None,
        "backend": "numpy",
    }
    assert bptt.CONFIG == {
        "steps": None,
        "activation": "tanh",
        "output": "linear",
        "loss": "squared-error",
        "scale": 1.0,
        "loss_steps": "all",
        "truncate": None,
        "backend": "numpy",
    }


@MODULES
def test_batch_sums_the_losses(mod: Any) -> None:
    x, d, W_x, W_s, W_y, s0 = _problem(batch=3)
    g = mod.gradients(x, d, W_x, W_s, W_y, s0)
    parts = [mod.gradients(x[:, b], d[:, b], W_x, W_s, W_y, s0[b]) for b in range(3)]
    assert g.loss == pytest.approx(sum(p.loss for p in parts), rel=1e-12)
    for name in ("W_x", "W_s", "W_y"):
        np.testing.assert_allclose(
            getattr(g, name), sum(getattr(p, name) for p in parts), rtol=1e-12, atol=1e-14
        )


@MODULES
def test_s0_defaults_to_zeros(mod: Any) -> None:
    x, d, W_x, W_s, W_y, _ = _problem(batch=2)
    a = mod.gradients(x, d, W_x, W_s, W_y)
    b = mod.gradients(x, d, W_x, W_s, W_y, np.zeros((2, 3)))
    assert a.loss == b.loss
    np.testing.assert_array_equal(a.W_s, b.W_s)


@MODULES
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtypes_are_kept(mod: Any, dtype: type) -> None:
    args = [a.astype(dtype) for a in _problem(batch=2)]
    s, y = mod.forward(args[0], *args[2:])
    g = mod.gradients(*args)
    assert s.dtype == y.dtype == dtype
    assert g.W_x.dtype == g.W_s.dtype == g.W_y.dtype == dtype
    if dtype is np.float32:  # the float32 result is the float64 one, rounded
        g64 = mod.gradients(*[a.astype(np.float64) for a in args])
        np.testing.assert_allclose(g.W_s, g64.W_s, rtol=1e-3, atol=1e-4)


@MODULES
def test_integers_and_nested_lists_become_float64(mod: Any) -> None:
    x = np.arange(6).reshape(3, 2) % 3 - 1
    d = [[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]]
    W_x = [[1, 0, 0], [0, 1, 0]]
    W_s = (np.eye(3, dtype=np.int32) // 2).tolist()
    W_y = np.ones((3, 4), dtype=np.int64)
    g = mod.gradients(x, d, W_x, W_s, W_y)
    assert g.W_x.dtype == np.float64
    ref = mod.gradients(*(np.asarray(a, dtype=float) for a in (x, d, W_x, W_s, W_y)))
    np.testing.assert_array_equal(g.W_s, ref.W_s)


@MODULES
def test_inputs_are_not_modified_and_views_work(mod: Any) -> None:
    x, d, W_x, W_s, W_y, s0 = _problem(batch=4)
    args = [x, d, W_x, W_s, W_y, s0]
    copies = [a.copy() for a in args]
    for a in args:
        a.setflags(write=False)
    expected = mod.gradients(*copies)
    got = mod.gradients(*args)
    for a, c in zip(args, copies, strict=True):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_allclose(got.W_s, expected.W_s, rtol=1e-14)
    # non-contiguous views: every other batch row, weights in Fortran order
    wide_x = np.repeat(x, 2, axis=1)[:, ::2]
    fortran = [np.asfortranarray(w) for w in (W_x, W_s, W_y)]
    assert not wide_x.flags.c_contiguous and not any(w.flags.c_contiguous for w in fortran)
    view = mod.gradients(wide_x, d, *fortran, s0)
    for name in ("W_x", "W_s", "W_y"):
        np.testing.assert_allclose(getattr(view, name), getattr(expected, name), rtol=1e-13)


@MODULES
def test_valid_input_raises_no_warning(mod: Any) -> None:
    x, d, *w, s0 = _problem(batch=2)
    big = [10 * a for a in w]  # saturated tanh
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mod.gradients(x * 100, d, *big, s0)


def _err(exc: type, mod: Any, fn: str, args: list[Any], words: list[str]) -> None:
    with pytest.raises(exc) as info:
        getattr(mod, fn)(*args)
    message = str(info.value)
    for w in words:
        assert w in message, message


def _bad_cases() -> list[tuple[str, type, int, Any, list[str]]]:
    """(case, error, argument index in gradients(), replacement, words in the message)."""
    return [
        ("x rank 1", ValueError, 0, np.zeros(3), ["x:", "(T, n_x) or (T, B, n_x)", "(3,)"]),
        ("x rank 4", ValueError, 0, np.zeros((3, 1, 1, 2)), ["x:", "(3, 1, 1, 2)"]),
        ("x T = 0", ValueError, 0, np.zeros((0, 2)), ["x:", "T ≥ 1", "(0, 2)"]),
        ("W_x rows", ValueError, 2, np.zeros((3, 3)), ["W_x:", "(2, n_s)", "(3, 3)"]),
        ("W_x rank", ValueError, 2, np.zeros(6), ["W_x:", "(6,)"]),
        ("W_s square", ValueError, 3, np.zeros((3, 2)), ["W_s:", "(3, 3)", "(3, 2)"]),
        ("W_s size", ValueError, 3, np.zeros((4, 4)), ["W_s:", "(3, 3)", "(4, 4)"]),
        ("W_y rows", ValueError, 4, np.zeros((2, 4)), ["W_y:", "(3, n_y)", "(2, 4)"]),
        ("d n_y", ValueError, 1, np.zeros((3, 5)), ["d:", "(3, 4)", "(3, 5)"]),
        ("d T", ValueError, 1, np.zeros((4, 4)), ["d:", "(3, 4)", "(4, 4)"]),
        ("d rank", ValueError, 1, np.zeros((3, 1, 4)), ["d:", "(3, 4)", "(3, 1, 4)"]),
        ("s0 batched shape", ValueError, 5, np.zeros((1, 3)), ["s0:", "(3,)", "(1, 3)"]),
        ("s0 size", ValueError, 5, np.zeros(4), ["s0:", "(3,)", "(4,)"]),
        ("nan in W_s", ValueError, 3, np.full((3, 3), np.nan), ["W_s:", "finite"]),
        ("inf in x", ValueError, 0, np.full((3, 2), np.inf), ["x:", "finite"]),
        ("nan in d", ValueError, 1, np.full((3, 4), np.nan), ["d:", "finite"]),
        ("nan in s0", ValueError, 5, np.full(3, np.nan), ["s0:", "finite"]),
        ("complex", TypeError, 2, np.zeros((2, 3), complex), ["W_x:", "complex128"]),
        ("bool", TypeError, 4, np.zeros((3, 4), bool), ["W_y:", "bool"]),
        ("object", TypeError, 3, np.zeros((3, 3), object), ["W_s:", "object"]),
        ("string", TypeError, 1, "abc", ["d:", "<U3"]),
        ("ragged", ValueError, 0, [[1.0, 2.0], [3.0], [4.0, 5.0]], ["x:", "rectangular"]),
        ("None W_y", TypeError, 4, None, ["W_y:", "object"]),
    ]


@MODULES
@pytest.mark.parametrize(
    ("case", "exc", "index", "value", "words"), _bad_cases(), ids=[c[0] for c in _bad_cases()]
)
def test_bad_input_is_refused_clearly(
    mod: Any, case: str, exc: type, index: int, value: Any, words: list[str]
) -> None:
    args = list(_problem(batch=None))
    args[index] = value
    _err(exc, mod, "gradients", args, words)
    if index != 1:  # forward takes no d
        fargs = [a for i, a in enumerate(args) if i != 1]
        _err(exc, mod, "forward", fargs, words)


@MODULES
def test_batched_shape_errors(mod: Any) -> None:
    x, d, W_x, W_s, W_y, s0 = _problem(batch=2)
    _err(
        ValueError,
        mod,
        "gradients",
        [x, d[:, :1], W_x, W_s, W_y, s0],
        ["d:", "(3, 2, 4)", "(3, 1, 4)"],
    )
    _err(ValueError, mod, "gradients", [x, d, W_x, W_s, W_y, s0[0]], ["s0:", "(2, 3)", "(3,)"])
    _err(ValueError, mod, "loss", [x, d[:, :, 0], W_x, W_s, W_y, s0], ["d:", "(3, 2, 4)", "(3, 2)"])


def test_bptt_e3_needs_exactly_three_steps() -> None:
    x, d, w, s0 = random_problem(np.random.default_rng(0), 4, (2, 3, 4), None, True)
    _err(ValueError, bptt_e3, "gradients", [x, d, *w, s0], ["x:", "T = 3", "(4, 2)"])
    with pytest.raises(ValueError, match=r"exactly 3"):
        bptt_e3.loss(x, d, *w, s0)


def test_bptt_accepts_any_length() -> None:
    for T in (1, 4, 50):
        x, d, w, s0 = random_problem(np.random.default_rng(T), T, (2, 3, 4), 2, True)
        assert np.isfinite(bptt.loss(x, d, *w, s0))


def test_scratch_reuse_across_shapes_and_threads() -> None:
    """loss()/gradients() reuse per-thread scratch arrays: results must not depend on the calls
    before them, returned arrays must not alias the scratch, and threads must not interfere."""
    from concurrent.futures import ThreadPoolExecutor

    problems = [
        random_problem(np.random.default_rng(i), T, (2, 3, 4), batch, True)
        for i, (T, batch) in enumerate([(5, 2), (3, 4), (7, None), (5, 2)])
    ]
    first = [bptt.gradients(x, d, *w, s0) for x, d, w, s0 in problems]
    again = [bptt.gradients(x, d, *w, s0) for x, d, w, s0 in reversed(problems)][::-1]
    for a, b in zip(first, again, strict=True):
        assert a.loss == b.loss
        for name in ("W_x", "W_s", "W_y"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.shares_memory(first[0].W_s, first[3].W_s)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: bptt.gradients(p[0], p[1], *p[2], p[3]), problems * 8))
    for got, want in zip(results, first * 8, strict=True):
        assert got.loss == want.loss
        np.testing.assert_array_equal(got.W_s, want.W_s)


@MODULES
def test_huge_finite_values_are_not_taken_for_infinities(mod: Any) -> None:
    """The cheap finiteness test (Σ a² overflows) falls back to the exact one, silently."""
    x, _, W_x, W_s, W_y, s0 = _problem(batch=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mod.forward(np.full_like(x, 1e200), W_x, W_s, W_y, s0)
    with pytest.raises(ValueError, match="x: expected finite values"):
        mod.forward(np.where(np.eye(3, 2) > 0, np.inf, 1e200), W_x, W_s, W_y, s0)


@MODULES
def test_d_none_is_refused(mod: Any) -> None:
    """loss() and gradients() need the desired outputs: None is not "no targets"."""
    x, _, W_x, W_s, W_y, s0 = _problem(batch=2)
    for fn in (mod.loss, mod.gradients):
        with pytest.raises(TypeError, match=r"^d: expected the desired outputs.*got None$"):
            fn(x, None, W_x, W_s, W_y, s0)
    s, _ = mod.forward(x, W_x, W_s, W_y, s0)  # forward() takes no d
    assert s.shape == (3, 2, 3)
