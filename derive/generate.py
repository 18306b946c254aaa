"""Stage 7 (assembly): which files a run of the generator writes, every stage run once, in order.

Contract: :func:`standard_files` returns every file of the committed generated/ tree (relative
path → text): it derives the lecture's case and the total loss, proves both, generates the
modules (``bptt_e3.py``, straight-line; ``bptt.py``, the loop), checks them against central
differences, and hands all of these results to the notes, which only render them.
:func:`module_files` returns one module for any configuration. Nothing is written here;
:func:`write` hands the finished set to :func:`derive.render.write_files` (all or nothing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from derive import check, codegen, notes
from derive.config import Config
from derive.derivation import Derivation, derive
from derive.notes import cell, variant
from derive.render import write_files
from derive.verify import prove
from derive.worked import worked_example

# The configurations of the committed generated/ tree.
LECTURE = Config()  # N = 3, tanh, linear, c = 1, E_3
TOTAL = Config(loss_steps="all")  # the loop module: any T, Σ_t E_t
# Variants for training (any T), each with a notes page of its own: a classifier's loss, and
# truncated BPTT.
CLASSIFIER = Config(output="softmax", loss="cross-entropy", loss_steps="all")
TRUNCATED = Config(loss_steps="all", truncate=5)
# What the notes show besides (not generated): the softmax output with the squared error, and the
# lecture's ½ variant of the loss.
SOFTMAX = Config(output="softmax", loss_steps="all")
HALF = Config(scale="1/2")


@dataclass(frozen=True)
class Module:
    """A committed module: its name, its configuration, and its form."""

    name: str
    config: Config
    loop: bool
    backend: str = "numpy"


MODULES = (
    Module("bptt_e3", LECTURE, loop=False),
    Module("bptt", TOTAL, loop=True),
    *(Module(codegen.module_name(c, loop=True), c, loop=True) for c in (CLASSIFIER, TRUNCATED)),
)
VARIANTS = MODULES[2:]
# The compiled backend's modules (issue 11): the lecture's case and the loop module, importing
# numba; generated/__init__.py does not import them (numba is an optional extra).
NUMBA_MODULES = (
    Module("bptt_e3_numba", LECTURE, loop=False, backend="numba"),
    Module("bptt_numba", TOTAL, loop=True, backend="numba"),
)

# The proof the notes report: three of each size, as in the lecture's figures.
PROOF_SIZES = (3, 3, 3)
PROOF_POINTS = 3
# A variant's proof: N = 3, distinct sizes; truncated at K = 2 so that the window cuts (the
# generic lines a truncated module runs do not depend on K).
VARIANT_SIZES = (2, 3, 2)
VARIANT_POINTS = 2


# The gated cells (issue 13): any T, Σ_t E_t, a params dict; each with a notes page of its own,
# proven at N = 3 (the slow proofs at N = 1, 2 and every output and loss are the tests').
CELL_MODULES = tuple(
    Module(cell, Config(cell=cell, loss_steps="all"), loop=True) for cell in ("gru", "lstm")
)
CELL_SIZES = (2, 3, 4)

_NUMBA_NAMES = {m.name for m in NUMBA_MODULES}


def variant_proof_config(config: Config) -> Config:
    if config.truncate is None:
        return config.with_steps(3)
    return replace(config, steps=3, truncate=min(config.truncate, 2))


def module_sources(derivations: dict[Config, Derivation] | None = None) -> dict[str, str]:
    """The committed gradient modules, path relative to generated/ → formatted source."""
    found = derivations if derivations is not None else {}
    out = {}
    for mod in (*MODULES, *NUMBA_MODULES, *CELL_MODULES):
        d = found.get(mod.config) or derive(mod.config)
        out[f"{mod.name}.py"] = codegen.module_source(
            d, loop=mod.loop, name=mod.name, backend=mod.backend
        )
    return out


def standard_files() -> dict[str, str]:
    """Everything `make derive` commits in generated/."""
    lecture, total = derive(LECTURE), derive(TOTAL)
    derivations = {LECTURE: lecture, TOTAL: total}
    derivations.update({v.config: derive(v.config) for v in (*VARIANTS, *CELL_MODULES)})
    modules = module_sources(derivations)
    proofs = tuple(prove(d, PROOF_SIZES, points=PROOF_POINTS) for d in (lecture, total))
    for proof in proofs:
        proof.raise_if_failed()
    # The Numba modules are checked by the tests (compiling them here would need numba and
    # ~10 s); the notes report the NumPy modules' checks.
    numpy_modules = {k: v for k, v in modules.items() if k[:-3] not in _NUMBA_NAMES}
    checks = check.gradient_checks(numpy_modules)
    files = dict(modules)
    files["__init__.py"] = codegen.package_init(
        sorted(numpy_modules), sorted(f"{m.name}.py" for m in NUMBA_MODULES)
    )
    identity = Config(activation="identity", loss_steps="all")
    curves = check.jacobian_norm_curves(
        {
            "identity": codegen.module_source(derive(identity), loop=True, name="identity"),
            "tanh": modules["bptt.py"],
        }
    )
    example = worked_example(lecture)
    example_code = check.worked_value(
        modules["bptt_e3.py"],
        example.arrays(),
        {"W_s": example.dE_dW_s, "W_x": float(example.total_x)},
    )
    for c in CELL_MODULES:
        proof = prove(derive(c.config.with_steps(3)), CELL_SIZES, points=VARIANT_POINTS)
        proof.raise_if_failed()
        own = tuple(r for r in checks if r.module == f"{c.name}.py")
        files.update(
            cell.cell_files(
                cell.CellInput(f"{c.name}.py", derivations[c.config], proof, own, rnn=total)
            )
        )
    lecture_modules = {f"{m.name}.py": modules[f"{m.name}.py"] for m in MODULES[:2]}
    lecture_checks = tuple(c for c in checks if c.module in lecture_modules)
    files.update(
        notes.notes_files(
            notes.NotesInput(
                lecture,
                total,
                proofs,
                lecture_checks,
                lecture_modules,
                example,
                example_code,
                curves,
                derive(SOFTMAX),
                derivations[CLASSIFIER],
                derive(HALF),
                tuple(f"{v.name}.py" for v in VARIANTS),
            )
        )
    )
    for v in VARIANTS:
        proof = prove(derive(variant_proof_config(v.config)), VARIANT_SIZES, points=VARIANT_POINTS)
        proof.raise_if_failed()
        own = tuple(c for c in checks if c.module == f"{v.name}.py")
        files.update(
            variant.variant_files(
                variant.VariantInput(f"{v.name}.py", derivations[v.config], proof, own)
            )
        )
    return files


def module_files(config: Config, *, loop: bool, backend: str = "numpy") -> dict[str, str]:
    """One module for ``config``: the loop form (any T) or the straight-line form (T = N)."""
    name = codegen.module_name(config, loop=loop, backend=backend)
    source = codegen.module_source(derive(config), loop=loop, name=name, backend=backend)
    return {f"{name}.py": source}


def write(out_dir: str | os.PathLike[str], files: dict[str, str]) -> list[Path]:
    return write_files(out_dir, files)
