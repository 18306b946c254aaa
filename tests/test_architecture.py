"""The stages flow one way: no module of derive/ imports a later stage at module level, and no
private name crosses from one module to another. The stages are docs/ARCHITECTURE.md's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "derive"

# derive/ARCHITECTURE: each module's stage. A module may import its own stage or an earlier one.
STAGES: dict[str, int] = {
    # 0: vocabulary, the operations and their rules, configuration
    "derive.errors": 0,
    "derive.notation": 0,
    "derive.labels": 0,
    "derive.activations": 0,
    "derive.ops": 0,
    "derive.config": 0,
    # 1-4: the model stated once, the chain rule, the closed forms, the result
    "derive.model": 1,
    "derive.chain": 2,
    "derive.closed_form": 3,
    "derive.derivation": 4,
    # 5: what consumes a derivation without printing: the proof and the code plans
    "derive.verify": 5,
    "derive.worked": 5,
    "derive.codegen.plan": 5,
    "derive.codegen.plan_straight": 5,
    "derive.codegen.plan_loop": 5,
    # 6: printers
    "derive.printing": 6,
    "derive.printing.text": 6,
    "derive.printing.numpy": 6,
    "derive.printing.latex": 6,
    "derive.printing.numba": 6,
    # 7: backends, templates and files, the numeric check of generated code
    "derive.render": 7,
    "derive.check": 7,
    "derive.codegen": 7,
    "derive.codegen.describe": 7,
    "derive.codegen.numpy_module": 7,
    "derive.codegen.numpy_straight": 7,
    "derive.codegen.numpy_loop": 7,
    "derive.codegen.numpy_cell": 7,
    "derive.codegen.numba_kernels": 7,
    # 8: the notes, rendered from results handed in
    "derive.notes": 8,
    "derive.notes.common": 8,
    "derive.notes.lecture": 8,
    "derive.notes.figure": 8,
    "derive.notes.general": 8,
    "derive.notes.verification": 8,
    "derive.notes.code_map": 8,
    "derive.notes.variant": 8,
    "derive.notes.cell": 8,
    "derive.notes.cell_graph": 8,
    "derive.notes.worked": 8,
    "derive.notes.vanishing": 8,
    "derive.notes.exercises": 8,
    # 9-10: assembly, and the ways in
    "derive.generate": 9,
    "derive.notes_pdf": 10,
    "derive.__main__": 10,
}
# The package's face re-exports the public API from every stage (documented exception).
FACE = "derive"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken, line) for every module-level import, also under ``if``
    (TYPE_CHECKING) at module level; imports inside functions are not module-level."""
    tree = ast.parse(path.read_text())
    out = []
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.If | ast.Try):
            todo.extend(node.body + node.orelse + getattr(node, "finalbody", []))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = node.module or ""
            if node.level:  # relative: from the package of ``name``
                package = name.split(".")[: len(name.split(".")) - node.level + 1]
                base = ".".join([*package, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((full if full in _modules() else base, [alias.name], node.lineno))
    return out


def test_every_module_has_a_stage() -> None:
    missing = sorted(set(_modules()) - set(STAGES) - {FACE})
    assert not missing, f"give these a stage here and in docs/ARCHITECTURE.md: {missing}"
    stale = sorted(set(STAGES) - set(_modules()))
    assert not stale, f"no such modules any more: {stale}"


@pytest.mark.parametrize("name", sorted(set(STAGES)))
def test_no_module_imports_a_later_stage(name: str) -> None:
    path = _modules()[name]
    later = [
        f"line {line}: {name} (stage {STAGES[name]}) imports {target} (stage {STAGES[target]})"
        for target, _, line in _imports(path, name)
        if target in STAGES and STAGES[target] > STAGES[name]
    ]
    assert not later, "\n".join(later)


def test_no_private_name_crosses_modules() -> None:
    crossing = [
        f"{name} line {line}: {target}.{taken[0]}"
        for name, path in _modules().items()
        for target, taken, line in _imports(path, name)
        if target.startswith("derive") and taken and taken[0].startswith("_")
    ]
    assert not crossing, "\n".join(crossing)


def test_the_checker_sees_a_later_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain.py that imports the code plans is caught (the checker can fail)."""
    source = (PACKAGE / "chain.py").read_text()
    bad = tmp_path / "chain.py"
    bad.write_text(source + "\nfrom derive.codegen import plan_loop  # a stage 5 module\n")
    found = [t for t, _, _ in _imports(bad, "derive.chain") if STAGES.get(t, 0) > 2]
    assert found == ["derive.codegen.plan_loop"]
    private = tmp_path / "x.py"
    private.write_text("from derive.ops import _Sum\n")
    assert [t for t in _imports(private, "derive.check")] == [("derive.ops", ["_Sum"], 1)]
