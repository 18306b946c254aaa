"""Drift: generated/ is what the code generates now, reproducibly, and never half-written."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from derive import generate, render
from derive.__main__ import main

GENERATED = ROOT / "generated"


def _tree(root: Path) -> dict[str, bytes]:
    """Every committed-kind file under root (build output of `make notes` excluded)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and "__pycache__" not in rel and not rel.startswith("notes/build"):
            if not rel.endswith((".pdf", ".png")):
                out[rel] = p.read_bytes()
    return out


def _derive_into(out: Path, cwd: Path, env: dict[str, str]) -> dict[str, bytes]:
    """`python -m derive --out-dir out` in a fresh process; the files it wrote."""
    proc = subprocess.run(
        [sys.executable, "-m", "derive", "--out-dir", str(out)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return _tree(out)


def test_generated_is_in_sync() -> None:
    """Fails with a unified diff when generated/ is stale: run `make derive` and commit."""
    expected = {k: v.encode() for k, v in generate.standard_files().items()}
    actual = _tree(GENERATED)
    problems = []
    for rel in sorted(set(expected) | set(actual)):
        if rel not in actual:
            problems.append(f"missing: generated/{rel}")
        elif rel not in expected:
            problems.append(f"not generated any more: generated/{rel}")
        elif expected[rel] != actual[rel]:
            problems.extend(
                difflib.unified_diff(
                    actual[rel].decode().splitlines(),
                    expected[rel].decode().splitlines(),
                    f"generated/{rel} (committed)",
                    f"generated/{rel} (generated now)",
                    lineterm="",
                )
            )
    assert not problems, "generated/ is stale; run `make derive`:\n" + "\n".join(problems[:200])


@pytest.mark.slow
def test_two_runs_in_fresh_processes_are_byte_identical(tmp_path: Path) -> None:
    trees = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        trees.append(_derive_into(tmp_path / seed, ROOT, env))
    assert trees[0] == trees[1]
    assert trees[0] == _tree(GENERATED)


def test_failed_generation_leaves_the_output_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "generated"
    shutil.copytree(GENERATED, out)
    (out / "bptt.py").write_text("# stale\n")  # something the run would have to rewrite
    before = _tree(out)

    def boom(*_: object, **__: object) -> dict[str, str]:
        raise RuntimeError("failure half-way through generation")

    monkeypatch.setattr(generate, "module_files", boom)
    monkeypatch.setattr("derive.notes.notes_files", boom)
    with pytest.raises(RuntimeError, match="half-way"):
        main(["--out-dir", str(out)])
    assert _tree(out) == before
    assert not list(out.glob(".derive-*"))


def test_a_failed_move_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "b.txt").write_text("old b")
    real_replace = os.replace
    calls = {"n": 0}

    def flaky(src: object, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # a's backup, a, b's backup, then b fails
            raise OSError("disk full")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="disk full"):
        render.write_files(tmp_path, {"a.txt": "new a", "b.txt": "new b", "c/new.txt": "c"})
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert (tmp_path / "b.txt").read_text() == "old b"
    assert not (tmp_path / "c" / "new.txt").exists()
    assert not list(tmp_path.glob(".derive-*"))


def test_write_files_rejects_paths_outside(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="files: expected relative paths"):
        render.write_files(tmp_path, {"../escape.py": ""})


def test_generated_python_passes_the_projects_lint() -> None:
    files = [str(p) for p in sorted(GENERATED.glob("*.py"))]
    for cmd in (["check"], ["format", "--check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *cmd, *files],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_installed_wheel_writes_the_same_files(tmp_path: Path) -> None:
    """`pip install .` (not editable), then bptt-derive from another directory."""
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("bptt_derive-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=600
    )
    assert (site / "derive" / "_templates" / "bptt_loop.py.jinja").is_file()
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import derive, derive.render as r; print(derive.__file__); print(r.templates_dir())",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(site) in probe.stdout and "_templates" in probe.stdout
    assert _derive_into(elsewhere / "out", elsewhere, env) == _tree(GENERATED)
