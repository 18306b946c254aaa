"""What the lecture names for training: cross-entropy, the mini-batch mean (Eq. 61), truncated
BPTT and gradient clipping, derived, proven and generated (the variant modules of generated/)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from typing import Any

import numpy as np
import pytest
import sympy as sp
from conftest import ROOT
from gradcheck import random_problem

from derive import Config, derive, ops, prove
from derive import model as m
from derive.__main__ import main
from derive.check import truncated_objective
from derive.verify import CANDIDATES
from generated import bptt, bptt_e3
from generated import bptt_tanh_linear_se_all_c1_Tany_K5 as truncated
from generated import bptt_tanh_softmax_ce_all_c1_Tany as classifier

MODULES = [bptt, bptt_e3, classifier, truncated]
IDS = ["bptt", "bptt_e3", "classifier", "truncated"]
ACTIVATIONS = ["tanh", "sigmoid", "relu", "identity"]
COMBINATIONS = [
    (act, out, loss)
    for act, out, loss in itertools.product(
        ACTIVATIONS, ["linear", "softmax"], ["squared-error", "cross-entropy"]
    )
    if not (loss == "cross-entropy" and out == "linear")
]


# --- the proof ------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2, 3])
@pytest.mark.parametrize(("activation", "output", "loss"), COMBINATIONS)
def test_every_activation_output_and_loss_is_proven(
    steps: int, activation: str, output: str, loss: str
) -> None:
    config = Config(steps=steps, activation=activation, output=output, loss=loss, scale="1/2")
    sizes = (2, 3, 2) if steps < 3 else (1, 2, 2)
    proof = prove(derive(config), sizes, points=1)
    assert proof.ok, "\n".join(proof.lines())


@pytest.mark.parametrize("truncate", [1, 2])
@pytest.mark.parametrize(
    ("loss_steps", "output", "loss"),
    [("all", "linear", "squared-error"), ("last", "softmax", "squared-error"),
     ("all", "softmax", "cross-entropy")],
)  # fmt: skip
def test_truncation_is_proven_against_its_own_ground_truth(
    truncate: int, loss_steps: str, output: str, loss: str
) -> None:
    config = Config(steps=3, truncate=truncate, loss_steps=loss_steps, output=output, loss=loss)
    proof = prove(derive(config), (2, 3, 2), points=1)
    assert proof.ok, "\n".join(proof.lines())


def test_the_truncated_ground_truth_is_not_full_bptt() -> None:
    """The full derivation fails against the truncated objective's ground truth."""
    full = derive(Config(steps=3, loss_steps="all"))
    cut = derive(Config(steps=3, loss_steps="all", truncate=1))
    wrong = dataclasses.replace(full, config=cut.config, statement=cut.statement)
    proof = prove(wrong, (2, 3, 2), points=1)
    assert {c.weight for c in proof.failures()} == {"W_x", "W_s"}


def test_a_truncation_window_off_by_one_is_rejected() -> None:
    """The chain rule and sweeps of K = 2 checked against the ground truth of K = 1."""
    k1 = derive(Config(steps=3, loss_steps="all", truncate=1))
    k2 = derive(Config(steps=3, loss_steps="all", truncate=2))
    wrong = dataclasses.replace(
        k1,
        expansions=k2.expansions,
        closed=dataclasses.replace(k2.closed, generic=k1.closed.generic),
    )
    proof = prove(wrong, (2, 3, 2), points=1)
    failed = {c.candidate for c in proof.failures()}
    assert failed == set(CANDIDATES) - {"generic step (any N)"}


def test_a_wrong_cross_entropy_pullback_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """c(ȳ − d̄) instead of c(ȳ Σ_k d_k − d̄): right only for one-hot targets, rejected."""
    rule = ops.OPERATIONS[ops.CrossEntropy]
    right = rule.jacobian

    def wrong(e: Any, k: int, out: Any) -> Any:
        d, o = e.args[0], e.args[1]
        return sp.MatMul(e.scale, sp.MatAdd(ops.Softmax(o), -d)) if k else right(e, k, out)

    monkeypatch.setattr(rule, "jacobian", wrong)
    monkeypatch.setattr(rule, "pullback", lambda e, k, u, out: ops.mul(u, wrong(e, k, out)))
    config = Config(steps=2, output="softmax", loss="cross-entropy")
    proof = prove(derive(config), (2, 2, 3), points=1)
    assert {c.candidate for c in proof.failures()} == set(CANDIDATES)


def test_cross_entropy_starts_the_chain_at_the_logits() -> None:
    d = derive(Config(output="softmax", loss="cross-entropy"))
    first = d.expansions["W_s"].terms[0].factors[0]
    assert (first.numerator, first.denominator) == (m.E(3), m.o(3))
    (g,) = [line for line in d.closed.recurrence if str(line.target.name) == "g_3"]
    assert g.expression == sp.MatAdd(sp.HadamardProduct(ops.RowSum(m.d(3)), m.y(3)), -m.d(3))


@pytest.mark.parametrize(
    ("fields", "exc", "words"),
    [
        ({"loss": "hinge"}, ValueError, "loss: expected one of"),
        ({"loss": "cross-entropy"}, ValueError, "loss: 'cross-entropy' needs output='softmax'"),
        ({"truncate": 0}, ValueError, "truncate: expected None or an int ≥ 1, got 0"),
        ({"truncate": 2.5}, TypeError, "truncate: expected None or an int ≥ 1, got float"),
        ({"truncate": True}, TypeError, "truncate"),
    ],
)
def test_bad_training_fields_are_refused(fields: dict[str, Any], exc: type, words: str) -> None:
    with pytest.raises(exc, match=words):
        Config(**fields)


# --- the generated variants -----------------------------------------------------------------


def _problem(module: Any, T: int, batch: int | None, seed: int = 0) -> tuple[Any, ...]:
    x, d, weights, s0 = random_problem(np.random.default_rng(seed), T, (2, 3, 4), batch, True)
    if module.CONFIG["loss"] == "cross-entropy":
        d = np.abs(d) / np.abs(d).sum(axis=-1, keepdims=True)  # rows of distributions
    return x, d, weights, s0


def _central(module: Any, x: Any, d: Any, weights: Any, s0: Any, h: float = 1e-6) -> list[Any]:
    objective = truncated_objective(module, x, d, weights, s0)
    out = []
    for k, w in enumerate(weights):
        g = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            plus, minus = [v.copy() for v in weights], [v.copy() for v in weights]
            plus[k][idx] += h
            minus[k][idx] -= h
            g[idx] = (objective(plus) - objective(minus)) / (2 * h)
        out.append(g)
    return out


@pytest.mark.parametrize("module", [classifier, truncated], ids=["classifier", "truncated"])
@pytest.mark.parametrize(("T", "batch"), [(1, None), (3, 2), (7, None), (7, 3)])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_variants_match_central_differences(
    module: Any, T: int, batch: int | None, reduction: str
) -> None:
    x, d, weights, s0 = _problem(module, T, batch, seed=T)
    g = module.gradients(x, d, *weights, s0, reduction=reduction)
    M = 1 if batch is None else batch if reduction == "mean" else 1
    for got, numeric in zip(g[1:], _central(module, x, d, weights, s0), strict=True):
        err = np.max(np.abs(got * M - numeric)) / np.max(np.abs(numeric))
        assert err <= 1e-6, err
    assert g.loss * M == pytest.approx(module.loss(x, d, *weights, s0), rel=1e-12)


def test_truncation_beyond_the_sequence_is_full_bptt() -> None:
    """K = 5 ≥ T: the truncated module's gradients are the full ones (bptt.py)."""
    for T in (1, 3, 5):
        x, d, weights, s0 = _problem(truncated, T, 2, seed=T)
        a, b = truncated.gradients(x, d, *weights, s0), bptt.gradients(x, d, *weights, s0)
        for p, q in zip(a, b, strict=True):
            np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)
    x, d, weights, s0 = _problem(truncated, 9, 2)
    a, b = truncated.gradients(x, d, *weights, s0), bptt.gradients(x, d, *weights, s0)
    assert a.loss == pytest.approx(b.loss, rel=1e-14)  # the loss is unchanged …
    assert not np.allclose(a.W_s, b.W_s)  # … the gradient is not


@pytest.mark.parametrize("module", MODULES, ids=IDS)
def test_float32_agrees_with_float64(module: Any) -> None:
    T = module.CONFIG["steps"] or 7
    x, d, weights, s0 = _problem(module, T, 3)
    g64 = module.gradients(x, d, *weights, s0)
    g32 = module.gradients(*(np.asarray(a, np.float32) for a in (x, d, *weights, s0)))
    for p, q in zip(g32[1:], g64[1:], strict=True):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-4)


def test_cross_entropy_is_finite_and_right_for_logits_of_magnitude_1000() -> None:
    """Weights that make the logits ~1000: finite loss and gradients (warnings are errors here),
    equal to a float64 reference computed with log-sum-exp."""
    x, d, (W_x, W_s, W_y), s0 = _problem(classifier, 4, 2)
    W_y = W_y * 2000.0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        g = classifier.gradients(x, d, W_x, W_s, W_y, s0)
    s, _ = classifier.forward(x, W_x, W_s, W_y, s0)
    o = s @ W_y
    assert np.abs(o).max() > 500
    lse = o.max(axis=-1, keepdims=True) + np.log(
        np.exp(o - o.max(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True)
    )
    assert g.loss == pytest.approx(-np.sum(d * (o - lse)), rel=1e-12)
    y = np.exp(o - lse)
    expected_W_y = np.einsum("tbi,tbj->ij", s, y * d.sum(axis=-1, keepdims=True) - d)
    np.testing.assert_allclose(g.W_y, expected_W_y, rtol=1e-10, atol=1e-10)
    assert all(np.all(np.isfinite(a)) for a in g[1:])


@pytest.mark.parametrize("module", MODULES, ids=IDS)
def test_the_mean_divides_by_the_batch_only(module: Any) -> None:
    T = module.CONFIG["steps"] or 4
    x, d, weights, s0 = _problem(module, T, 5)
    total = module.gradients(x, d, *weights, s0)
    mean = module.gradients(x, d, *weights, s0, reduction="mean")
    assert mean.loss == pytest.approx(total.loss / 5, rel=1e-14)
    assert module.loss(x, d, *weights, s0, reduction="mean") == pytest.approx(total.loss / 5)
    for p, q in zip(mean[1:], total[1:], strict=True):
        np.testing.assert_allclose(p, q / 5, rtol=1e-14)
    xu, du = x[:, 0], d[:, 0]  # unbatched: M = 1
    one = module.gradients(xu, du, *weights, s0[0], reduction="mean")
    assert one.loss == module.gradients(xu, du, *weights, s0[0]).loss
    for bad in ("avg", None, 1, "Mean"):
        with pytest.raises(ValueError, match="reduction: expected 'sum' or 'mean'"):
            module.loss(x, d, *weights, s0, reduction=bad)
        with pytest.raises(ValueError, match="reduction"):
            module.gradients(x, d, *weights, s0, reduction=bad)


@pytest.mark.parametrize("module", MODULES, ids=IDS)
def test_clipping_follows_the_formula_exactly(module: Any) -> None:
    T = module.CONFIG["steps"] or 4
    x, d, weights, s0 = _problem(module, T, 2)
    g = module.gradients(x, d, *weights, s0)
    norm = math.sqrt(sum(float(np.sum(a * a)) for a in g[1:]))
    assert module.gradient_norm(g) == pytest.approx(norm, rel=1e-14)
    for max_norm in (norm / 10, norm + 1e-6, norm * 10, 1):  # above, at and below the threshold
        clipped = module.clip_gradients(g, max_norm)
        factor = min(1.0, max_norm / (norm + 1e-6))
        assert clipped.loss == g.loss
        for p, q in zip(clipped[1:], g[1:], strict=True):
            np.testing.assert_array_equal(p, q * factor)
    assert module.gradient_norm(module.clip_gradients(g, norm / 10)) == pytest.approx(
        norm / 10, rel=1e-6
    )
    for bad in (0, -1.0, float("nan"), float("inf"), "1", None, True):
        with pytest.raises(ValueError, match="max_norm: expected a finite number > 0"):
            module.clip_gradients(g, bad)
    broken = g._replace(W_s=np.full_like(g.W_s, np.nan))
    with pytest.raises(ValueError, match=r"grads: expected finite gradients.*W_s"):
        module.clip_gradients(broken, 1.0)
    with pytest.raises(TypeError, match="grads: expected a Gradients"):
        module.gradient_norm((1.0, 2.0))


def _readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_readme_training_snippets_run() -> None:
    """The training example and the chunked-truncation loop, as the README prints them."""
    blocks = [b for b in _readme_blocks() if "clip_gradients" in b or "train_in_chunks" in b]
    assert len(blocks) == 2
    scope: dict[str, Any] = {}
    for block in blocks:
        exec(block, scope)
    assert len(scope["W"]) == 3 and all(np.all(np.isfinite(w)) for w in scope["W"])
    x, d, weights, _ = _problem(bptt, 9, 2)
    trained = scope["train_in_chunks"](bptt, x, d, weights, 3, 0.01)
    assert bptt.loss(x, d, *trained) < bptt.loss(x, d, *weights)


def test_chunked_truncation_is_full_bptt_per_chunk() -> None:
    """Each chunk's gradient is full BPTT of that chunk's loss with its initial state held
    constant (central differences), and the carried state is the forward pass's."""
    x, d, weights, _ = _problem(bptt, 9, 2)
    k, state = 3, None
    full_states, _ = bptt.forward(x, *weights)
    for start in range(0, 9, k):
        xc, dc = x[start : start + k], d[start : start + k]
        g = bptt.gradients(xc, dc, *weights, state)
        numeric = _central(bptt, xc, dc, weights, state)
        for got, num in zip(g[1:], numeric, strict=True):
            assert np.max(np.abs(got - num)) / np.max(np.abs(num)) <= 1e-6
        states, _ = bptt.forward(xc, *weights, state)
        state = states[-1]
        np.testing.assert_allclose(state, full_states[start + k - 1], rtol=1e-12, atol=1e-14)


# --- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--truncate", "3"], "--truncate: K = 3 ≥ N = 3 steps cuts nothing"),
        (["--steps", "5", "--truncate", "7"], "--truncate: K = 7 ≥ N = 5"),
        (["--truncate", "0"], "--truncate"),
        (["--loss", "cross-entropy"], "--loss: 'cross-entropy' needs output='softmax'"),
        (["--loss", "hinge"], "--loss"),
    ],
)
def test_cli_refuses_bad_training_options(
    args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    assert words in capsys.readouterr().err


def test_cli_generates_any_combination(tmp_path: Any) -> None:
    args = "--steps any --activation sigmoid --output softmax --loss cross-entropy"
    args += f" --loss-steps all --truncate 5 --out-dir {tmp_path}"
    assert main(args.split()) == 0
    (path,) = tmp_path.glob("*.py")
    assert path.name == "bptt_sigmoid_softmax_ce_all_c1_Tany_K5.py"
    source = path.read_text()
    assert '"loss": "cross-entropy"' in source and '"truncate": 5' in source
    assert main(["--steps", "4", "--truncate", "2", "--out-dir", str(tmp_path)]) == 0
