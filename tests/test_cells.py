"""The gated cells (issue 13): configuration, statement, proof, mutations and the modules' contract.

The cells' proofs take the ground truth from the scalar graph (``truth="graph"``: each entry's
own definition differentiated by ``sympy.diff``, composed by the scalar chain rule at each
point), because the explicit loss of a gated cell is too large to differentiate whole beyond
N = 2. The graph's truth is shown equal to ``sympy.diff`` of the whole explicit loss here, on the
RNN and on both cells.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import sympy as sp

from derive import Config, derive, ops
from derive import model as m
from derive.verify import prove

CELLS = ("gru", "lstm")
CHOICES = (
    {"output": "linear", "loss": "squared-error"},
    {"output": "softmax", "loss": "squared-error", "scale": "1/2"},
    {"output": "softmax", "loss": "cross-entropy"},
)
SIZES = (2, 3, 4)  # distinct: a transposition error cannot hide


@pytest.mark.parametrize(
    ("cell", "steps", "choice", "loss_steps"),
    [(c, n, ch, ls) for c, n, ch, ls in itertools.product(CELLS, (1, 2), CHOICES, ("last", "all"))],
)
def test_every_output_and_loss_is_proven(
    cell: str, steps: int, choice: dict[str, str], loss_steps: str
) -> None:
    d = derive(Config(cell=cell, steps=steps, loss_steps=loss_steps, **choice))
    proof = prove(d, SIZES, points=1)
    assert proof.truth == "graph"
    assert proof.ok, proof.lines()
    assert {c.weight for c in proof.comparisons} == {w.name for w in d.statement.weights}
    assert len(proof.comparisons) == 4 * len(d.statement.weights)


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_three_steps_are_proven(cell: str) -> None:
    start = time.perf_counter()
    proof = prove(derive(Config(cell=cell, steps=3, loss_steps="all")), SIZES, points=2)
    assert proof.ok, proof.lines()
    print(f"{cell} N = 3 at {SIZES}: {time.perf_counter() - start:.1f} s")


@pytest.mark.parametrize(
    ("config", "sizes"),
    [
        (Config(), (2, 3, 2)),
        (Config(cell="gru", steps=1), (2, 3, 2)),
        (Config(cell="lstm", steps=1, output="softmax"), (2, 3, 2)),
        # two steps, every step's loss: the adjoints carried across steps, several seeds
        (
            Config(cell="gru", steps=2, output="softmax", loss="cross-entropy", loss_steps="all"),
            (1, 2, 2),
        ),
        (Config(cell="lstm", steps=2, loss_steps="all"), (1, 2, 1)),
    ],
    ids=["rnn", "gru", "lstm", "gru-N2-ce", "lstm-N2"],
)
def test_the_graph_truth_equals_sympy_diff_of_the_whole_loss(
    config: Config, sizes: tuple[int, int, int]
) -> None:
    from derive.verify import graph_truth

    d = derive(config)
    g = m.scalar_graph(d.statement, sizes)
    ex = m.explicit(d.statement, sizes)
    for seed in (3, 7):
        point = {v: sp.Rational((seed * k) % 11 - 5, 7) for k, v in enumerate(ex.input_symbols)}
        truth, _ = graph_truth(g, exact=False)(point)
        floats = {v: sp.Float(r, 60) for v, r in point.items()}
        for w in d.statement.weights:
            for entry, got in zip(ex.values[w], truth[w.name], strict=True):
                want = sp.diff(ex.loss, entry).xreplace(floats).evalf(60)
                assert abs(want - got) <= 1e-40 * max(1, abs(want))


def test_the_graph_truth_sees_a_wrong_local_derivative(monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph's truth fails where sympy.diff of one definition is wrong (so the comparison
    above can fail): tanh' taken as 1 in every node."""
    from derive.verify import graph_truth

    d = derive(Config(cell="gru", steps=1))
    g = m.scalar_graph(d.statement, (2, 2, 2))
    real = sp.diff

    def wrong(expr, *args, **kwargs):  # type: ignore[no-untyped-def]
        return real(expr.replace(sp.tanh, lambda a: a), *args, **kwargs)

    point = {v: sp.Rational(k % 5 - 2, 3) for k, v in enumerate(g.input_symbols)}
    good, _ = graph_truth(g, exact=False)(point)
    monkeypatch.setattr(sp, "diff", wrong)
    bad, _ = graph_truth(g, exact=False)(point)
    assert any(abs(a - b) > 1e-6 for w in good for a, b in zip(good[w], bad[w], strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_the_cells_hold_against_the_whole_loss_at_two_steps(cell: str) -> None:
    proof = prove(derive(Config(cell=cell, steps=2, loss_steps="all")), (2, 3, 2), truth="diff")
    assert proof.ok, proof.lines()


def test_a_wrong_sigma_derivative_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """GRU: σ' replaced by tanh' in the rule of an entry-wise function."""
    from derive import activations as acts

    monkeypatch.setitem(acts.DERIVATIVES, acts.Sigma, acts.dTanh)
    proof = prove(derive(Config(cell="gru", steps=2)), SIZES, points=1)
    assert not proof.ok
    assert {c.weight for c in proof.failures()} >= {"W_xr", "W_xu", "b_u"}


def test_the_lstm_without_its_path_through_the_previous_cell_is_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LSTM: the sweep loses ∂c̄_t/∂c̄_{t−1} (no path through c̄_{t−1})."""
    real = ops.vjp

    def without_cell_path(e, wrt, u, definitions=None, out=None):  # type: ignore[no-untyped-def]
        reader, read = m.step_of(out) if out is not None else None, m.step_of(wrt)
        if reader and read and reader[0] == "c" and read[0] == "c":
            return None
        return real(e, wrt, u, definitions, out)

    import types

    from derive import closed_form

    monkeypatch.setattr(
        closed_form, "ops", types.SimpleNamespace(**{**vars(ops), "vjp": without_cell_path})
    )
    proof = prove(derive(Config(cell="lstm", steps=2, loss_steps="all")), SIZES, points=1)
    assert not proof.ok
    failed = {(c.candidate, c.weight) for c in proof.failures()}
    assert ("generic step (any N)", "W_xf") in failed
    assert ("collected closed form (δ recurrence)", "W_xi") in failed


@pytest.mark.parametrize("cell", CELLS)
def test_the_statement_states_the_cell(cell: str) -> None:
    stmt = m.statement(Config(cell=cell))
    params = m.GRU_PARAMS if cell == "gru" else m.LSTM_PARAMS
    assert tuple(w.name for w in stmt.weights) == params
    assert stmt.names("state") == (("s",) if cell == "gru" else ("h", "c"))
    biases = [w for w in stmt.weights if w.name.startswith("b_")]
    assert all(w.shape == (1, m.n_s) for w in biases)


def test_the_lstm_cell_path_is_the_forget_gate() -> None:
    """∂c̄_t/∂c̄_{t−1} = diag(f̄_t): the product of forget gates, next to the RNN's D_t W_sᵀ."""
    d = derive(Config(cell="lstm"))
    (_, cell_path) = d.transitions
    assert cell_path.jacobian == sp.DiagMatrix(m.at("fg", m.t).T)


def test_config_refuses_an_unknown_cell_and_an_activation_for_a_cell() -> None:
    with pytest.raises(ValueError, match="cell: expected one of"):
        Config(cell="rnn2")
    with pytest.raises(ValueError, match="activation: the GRU cell's functions are fixed"):
        Config(cell="gru", activation="relu")


# ---------------------------------------------------------------------------------------------
# The generated modules' contract (the numbers against torch and central differences are in
# tests/test_cells_numeric.py).


@pytest.fixture(params=CELLS)
def cell_module(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    import importlib

    return importlib.import_module(f"generated.{request.param}")


def _problem(mod, batch: int | None = 2):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    lead = (4,) if batch is None else (4, batch)
    x = rng.standard_normal((*lead, 3))
    d = rng.standard_normal((*lead, 2))
    return x, d, mod.init_params(3, 5, 2, rng)


def test_params_states_and_config(cell_module) -> None:  # type: ignore[no-untyped-def]
    mod = cell_module
    cell = mod.CONFIG["cell"]
    params = m.GRU_PARAMS if cell == "gru" else m.LSTM_PARAMS
    assert tuple(mod.PARAMS) == params
    assert mod.PARAMS["W_y"] == ("n_s", "n_y")
    assert all(mod.PARAMS[p] == ("n_s",) for p in params if p.startswith("b_"))
    assert mod.CONFIG["backend"] == "numpy" and mod.CONFIG["truncate"] is None
    p = mod.init_params(3, 5, 2, rng=0)
    assert {k: v.shape for k, v in p.items()}["W_y"] == (5, 2)
    assert all(np.all(np.abs(v) <= 1 / np.sqrt(5)) for v in p.values())
    x, d, params = _problem(mod)
    states, y = mod.forward(x, params)
    assert set(states) == set(mod.STATES) and y.shape == (4, 2, 2)
    assert all(v.shape == (4, 2, 5) for v in states.values())
    g = mod.gradients(x, d, params)
    assert set(g.params) == set(params)
    assert g.loss == pytest.approx(mod.loss(x, d, params))
    clipped = mod.clip_gradients(g, 0.5 * mod.gradient_norm(g))
    assert mod.gradient_norm(clipped) == pytest.approx(0.5 * mod.gradient_norm(g))


def test_bad_input_is_refused_by_name(cell_module) -> None:  # type: ignore[no-untyped-def]
    mod = cell_module
    x, d, params = _problem(mod)
    first = next(iter(params))
    with pytest.raises(ValueError, match=f"params: missing key '{first}'"):
        mod.loss(x, d, {k: v for k, v in params.items() if k != first})
    with pytest.raises(ValueError, match="params: unknown key 'W_zz'"):
        mod.loss(x, d, {**params, "W_zz": params[first]})
    with pytest.raises(ValueError, match=r"params\['b_.*'\]: expected shape \(5,\)"):
        bias = next(k for k in params if k.startswith("b_"))
        mod.loss(x, d, {**params, bias: np.zeros((1, 5))})
    bad = {k: v.copy() for k, v in params.items()}
    bad[first][0, 0] = np.nan
    with pytest.raises(ValueError, match=rf"params\['{first}'\]: expected finite values"):
        mod.gradients(x, d, bad)
    with pytest.raises(TypeError, match="params: expected a dict"):
        mod.loss(x, d, list(params.values()))
    state = mod.STATES[0]
    with pytest.raises(ValueError, match=rf"s0\['{state}'\]: expected shape \(2, 5\)"):
        mod.loss(x, d, params, s0={k: np.zeros(5) for k in mod.STATES})
    if len(mod.STATES) > 1:
        with pytest.raises(ValueError, match="s0: missing state 'c'"):
            mod.loss(x, d, params, s0={"h": np.zeros((2, 5))})
    with pytest.raises(ValueError, match="s0: unknown state 'q'"):
        mod.loss(x, d, params, s0={"q": np.zeros((2, 5))})
    with pytest.raises(ValueError, match=r"d: expected shape \(4, 2, 2\)"):
        mod.loss(x, d[:, :1], params)
    with pytest.raises(ValueError, match="reduction: expected 'sum' or 'mean'"):
        mod.loss(x, d, params, reduction="avg")


def test_inputs_are_not_modified_and_lists_work(cell_module) -> None:  # type: ignore[no-untyped-def]
    mod = cell_module
    x, d, params = _problem(mod, batch=None)
    s0 = {k: np.full(5, 0.25) for k in mod.STATES}
    before = [x.copy(), d.copy(), {k: v.copy() for k, v in params.items()}]
    g = mod.gradients(x, d, params, s0)  # writable inputs: none may be written
    mod.forward(x, params, s0)
    assert np.array_equal(before[0], x) and np.array_equal(before[1], d)
    assert all(np.array_equal(before[2][k], params[k]) for k in params)
    assert all(np.array_equal(v, np.full(5, 0.25)) for v in s0.values())
    for v in (x, d, *params.values(), *s0.values()):
        v.setflags(write=False)
    g2 = mod.gradients(x.tolist(), d.tolist(), {k: v.tolist() for k, v in params.items()}, s0)
    g3 = mod.gradients(x, d, params, s0)  # read-only inputs are taken
    assert all(np.allclose(g.params[k], g2.params[k], rtol=1e-14) for k in params)
    assert all(np.array_equal(g.params[k], g3.params[k]) for k in params)
    assert all(g.params[k].shape == params[k].shape for k in params)


@pytest.mark.parametrize(
    ("cell", "choice", "loss_steps"),
    list(itertools.product(CELLS, CHOICES, ("last", "all"))),
)
def test_every_output_and_loss_generates_a_module_that_passes_central_differences(
    cell: str, choice: dict[str, str], loss_steps: str
) -> None:
    from derive import check, codegen

    config = Config(cell=cell, loss_steps=loss_steps, **choice)
    name = codegen.module_name(config, loop=True)
    source = codegen.module_source(derive(config), loop=True, name=name)
    results = check.gradient_checks({f"{name}.py": source})  # raises past the limit
    assert len(results) == 4 and all(
        len(r.errors) == len(m.statement(config).weights) for r in results
    )
    assert max(max(r.errors) for r in results) < 1e-6


def test_the_code_cites_what_the_notes_define(cell_module) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from derive import labels

    cell = cell_module.CONFIG["cell"]
    source = Path(cell_module.__file__).read_text()
    cited = {label for _, label in labels.cited_in_code(source)}
    tex = (Path(cell_module.__file__).parent / "notes" / f"{cell}.tex").read_text()
    tags = {label for label in cited if f"\\tag{{{labels.tag(label)}}}" in tex}
    assert cited >= ({"G1", "G2", "G3", "G4"} if cell == "gru" else {"L1", "L5", "L6"})
    assert cited == tags, cited - tags


# ---------------------------------------------------------------------------------------------
# The command line.


def test_the_command_line_writes_and_proves_a_cell(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from derive.__main__ import main

    assert main(["--cell", "lstm", "--steps", "any", "--out-dir", str(tmp_path)]) == 0
    path = tmp_path / "lstm_linear_se_last_c1_Tany.py"
    spec = importlib.util.spec_from_file_location("lstm_cli", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.CONFIG["cell"] == "lstm" and mod.CONFIG["loss_steps"] == "last"
    assert main(["--cell", "gru", "--steps", "1", "--check", "--sizes", "2,3,2"]) == 0
    out = capsys.readouterr().out
    assert "PROVEN" in out and "scalar chain rule" in out
    assert (
        main(["--cell", "gru", "--steps", "any", "--backend", "numba", "--out-dir", str(tmp_path)])
        == 1
    )
    assert "generated for the NumPy backend only" in capsys.readouterr().err
    assert main(["--cell", "gru", "--activation", "relu"]) == 2
    assert "--activation: the GRU cell's functions are fixed" in capsys.readouterr().err


@pytest.mark.parametrize(("cell", "gates"), [("gru", 3), ("lstm", 4)])
def test_each_recurrent_product_is_computed_once_per_step(cell: str, gates: int) -> None:
    """The forward loop multiplies the previous state by each gate's weight once (the
    overflow-safe σ reads its argument twice: the pre-activation is a statement of its own)."""
    from derive import codegen

    state = "s" if cell == "gru" else "h"
    source = codegen.module_source(
        derive(Config(cell=cell, loss_steps="all")), loop=True, name=cell
    )
    loop = source.split("    for k in range(T):\n", 1)[1].split("\n    # ", 1)[0]
    assert loop.count(f"{state}_prev[k] @") == gates
