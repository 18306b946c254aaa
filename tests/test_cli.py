"""The command line: python -m derive (bptt-derive)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from gradcheck import gradient_errors, random_problem

from derive.__main__ import main


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "derive", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_check_proves_the_lecture_case() -> None:
    proc = run("--check")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for w in ("W_x", "W_s", "W_y"):
        for cand in (
            "chain-rule expansion",
            "expanded closed form",
            "collected closed form",
            "generic step",
        ):
            assert f"∂E/∂{w}: {cand}" in out
    assert out.count(": equal (") == 12
    assert "numeric form tanh: the derivative from the output: equal" in out
    assert "NOT EQUAL" not in out and "PROVEN" in out
    assert "n_x=3, n_s=3, n_y=3" in out


def test_check_of_another_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--check",
            "--steps",
            "2",
            "--activation",
            "identity",
            "--loss-steps",
            "all",
            "--sizes",
            "1,2,1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "identical in exact rational arithmetic" in out and "PROVEN" in out


def test_summary_prints_the_terms(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "∂E_3/∂ȳ_3 · ∂ȳ_3/∂s̄_3 · ∂s̄_3/∂s̄_2 · ∂s̄_2/∂s̄_1 · ∂s̄_1/∂W_s" in out
    assert "δ_1 = " in out
    assert "δ_t = (δ_(t+1) · W_sᵀ) ⊙ Φ'(z̄_t)" in out  # the generic step, any N


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--steps", "0"], "--steps"),
        (["--steps", "two"], "--steps"),
        (["--activation", "swish"], "--activation"),
        (["--output", "sigmoid"], "--output"),
        (["--scale", "0"], "--scale"),
        (["--scale", "-1/2"], "--scale"),
        (["--loss-steps", "first"], "--loss-steps"),
        (["--sizes", "1,2"], "--sizes"),
        (["--points", "0"], "--points"),
        (["--check", "--steps", "any"], "--check"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_invalid_arguments_exit_2_with_one_line(args: list[str], words: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("bptt-derive: error:") and words in lines[0]
    assert "Traceback" not in proc.stderr


def test_help_lists_the_options() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    for opt in (
        "--steps",
        "--activation",
        "--output",
        "--scale",
        "--loss-steps",
        "--out-dir",
        "--check",
    ):
        assert opt in proc.stdout


@pytest.mark.parametrize(
    ("args", "steps"),
    [
        (
            ["--steps", "any", "--activation", "sigmoid", "--output", "softmax", "--scale", "1/2"],
            None,
        ),
        (["--steps", "2", "--activation", "relu", "--loss-steps", "all"], 2),
    ],
)
def test_out_dir_writes_a_module_for_a_configuration(
    tmp_path: Path, args: list[str], steps: int | None
) -> None:
    assert main([*args, "--out-dir", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("bptt_*.py")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.CONFIG["steps"] == steps
    T = 4 if steps is None else steps
    x, d, weights, s0 = random_problem(np.random.default_rng(1), T, (2, 3, 2), 2, True)
    assert max(gradient_errors(mod, x, d, weights, s0).values()) <= 1e-6
    # a second run changes nothing
    before = path.read_bytes()
    assert main([*args, "--out-dir", str(tmp_path)]) == 0
    assert path.read_bytes() == before
