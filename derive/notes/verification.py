"""Stage 6 (notes, Section 7): what was proven, and the gradient check of the generated modules.

Contract: :func:`_proof` runs :func:`derive.verify.prove` on the given derivations and returns
one row per loss and candidate; :func:`_check_table` executes each generated module and compares
its gradients with central differences at fixed sizes, seed and step, reporting each relative
error as its upper bound by a power of ten (so the table is the same text on every machine).
A failed proof or a relative error above :data:`CHECK_LIMIT` raises
:class:`~derive.errors.GenerationError`.
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from derive import model as m
from derive import verify
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.notes.common import _tex_text
from derive.printing.latex import latex

PROOF_SIZES = (3, 3, 3)
PROOF_POINTS = 3


@dataclass(frozen=True)
class ProofRow:
    loss: str
    symbol: str  # the candidate's symbol, if it has one (δ for the recurrence)
    candidate: str
    verdicts: tuple[str, ...]  # per weight, in the order W_x, W_s, W_y


@dataclass(frozen=True)
class CheckRow:
    module: str
    module_tex: str
    steps: str
    batch: str
    errors: tuple[str, ...]  # LaTeX bounds per weight, in the order W_x, W_s, W_y


@dataclass(frozen=True)
class ProofTable:
    """What :func:`derive.verify.prove` established, per loss and candidate."""

    sizes: str
    points: str
    digits: str
    tolerance: str
    rows: tuple[ProofRow, ...]


@dataclass(frozen=True)
class CheckTable:
    """Central differences on the generated modules."""

    sizes: str
    h: str
    floor: str
    seed: str
    rows: tuple[CheckRow, ...]


_CANDIDATE_WORDS = {
    "chain-rule expansion": (None, "chain rule, factor by factor"),
    "expanded closed form": (None, "closed forms, term by term"),
    "collected closed form (δ recurrence)": (sp.MatrixSymbol("delta", 1, 1), "recurrence"),
}


def _proof(derivations: Sequence[Derivation]) -> ProofTable:
    """One row per loss and candidate: 'equal' for each weight, or generation fails."""
    rows = []
    for d in derivations:
        proof = verify.prove(d, PROOF_SIZES, points=PROOF_POINTS)
        proof.raise_if_failed()
        loss = m.E(d.config.steps) if d.config.loss_steps == "last" else sp.MatrixSymbol("E", 1, 1)
        for candidate in verify.CANDIDATES:
            verdicts = tuple(
                "equal"
                for w in m.WEIGHT_NAMES
                for c in proof.comparisons
                if c.candidate == candidate and c.weight == w and c.ok
            )
            symbol, words = _CANDIDATE_WORDS[candidate]
            symbol_tex = "" if symbol is None else latex(symbol)
            rows.append(ProofRow(latex(loss), symbol_tex, words, verdicts))
    return ProofTable(
        _sizes(PROOF_SIZES),
        str(PROOF_POINTS),
        str(verify.DIGITS),
        _power_of_ten(float(verify.TOLERANCE)),
        tuple(rows),
    )


def _sizes(sizes: tuple[int, int, int]) -> str:
    return ",\\ ".join(
        f"{latex(n)} = {v}" for n, v in zip((m.n_x, m.n_s, m.n_y), sizes, strict=True)
    )


# The gradient check: fixed sizes with n_x ≠ n_s ≠ n_y (a transposed weight cannot hide), a fixed
# seed, and a step h whose truncation error (of order h²) dominates the rounding error (of order
# 10⁻¹⁶/h): the errors are then the same on every machine to many digits, and their upper bound
# by a power of ten is the same text everywhere.
CHECK_SIZES = (3, 4, 2)
CHECK_H = 1e-4
CHECK_SEED = 20240917
CHECK_LIMIT = 1e-6  # a wrong gradient is off by order 1; central differences by order h²
# Below this the rounding error of the differences (of order 10⁻¹⁶/h relative) decides the digits,
# which differ between machines: smaller errors are all reported as this bound.
CHECK_FLOOR = 1e-9
CHECK_STEPS = (1, 3, 5)
CHECK_BATCH = 4


def load_module(name: str, source: str) -> types.ModuleType:
    """Execute generated source in a fresh module (registered only while it runs)."""
    module = types.ModuleType(f"_notes_{name}")
    sys.modules[module.__name__] = module
    try:
        exec(compile(source, f"generated/{name}.py", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module


def relative_errors(
    module: Any, steps: int, batch: int | None, seed: int = CHECK_SEED, h: float = CHECK_H
) -> tuple[float, ...]:
    """max |∂E/∂w − central difference| / max |central difference|, per weight W_x, W_s, W_y."""
    rng = np.random.default_rng([seed, steps, batch or 0])
    n_x, n_s, n_y = CHECK_SIZES
    lead = (steps,) if batch is None else (steps, batch)
    x = rng.standard_normal((*lead, n_x))
    d = rng.standard_normal((*lead, n_y))
    s0 = 0.5 * rng.standard_normal((n_s,) if batch is None else (batch, n_s))
    weights = [0.5 * rng.standard_normal(s) for s in ((n_x, n_s), (n_s, n_s), (n_s, n_y))]
    grads = module.gradients(x, d, *weights, s0)
    errors = []
    for k, name in enumerate(m.WEIGHT_NAMES):
        numeric = np.zeros_like(weights[k])
        for idx in np.ndindex(weights[k].shape):
            plus = [w.copy() for w in weights]
            minus = [w.copy() for w in weights]
            plus[k][idx] += h
            minus[k][idx] -= h
            numeric[idx] = (module.loss(x, d, *plus, s0) - module.loss(x, d, *minus, s0)) / (2 * h)
        diff = np.max(np.abs(np.asarray(getattr(grads, name)) - numeric))
        errors.append(float(diff / np.max(np.abs(numeric))))
    return tuple(errors)


def power_of_ten_bound(error: float) -> str:
    """The smallest power of ten ≥ ``error`` (and ≥ the floor), in LaTeX: ``\\le 10^{-8}``."""
    if not math.isfinite(error) or error < 0:
        raise GenerationError(f"a relative error must be finite and ≥ 0, got {error}")
    return rf"\le {_power_of_ten(10.0 ** math.ceil(math.log10(max(error, CHECK_FLOOR))))}"


def check_cases(fixed_steps: int | None) -> list[tuple[int, int | None]]:
    """(T, batch) cases: a straight-line module's own T; a loop module's T = 1, 3, 5."""
    steps = CHECK_STEPS if fixed_steps is None else (fixed_steps,)
    return [(T, None) for T in steps] + [(steps[-1], CHECK_BATCH)]


def _check_rows(modules: Mapping[str, str]) -> tuple[CheckRow, ...]:
    rows = []
    for path, source in sorted(modules.items()):
        module = load_module(path.removesuffix(".py"), source)
        for steps, batch in check_cases(module.CONFIG["steps"]):
            errors = relative_errors(module, steps, batch)
            if max(errors) > CHECK_LIMIT:
                raise GenerationError(
                    f"the gradient check of generated/{path} failed at T = {steps}, "
                    f"batch {batch}: relative errors {errors}"
                )
            rows.append(
                CheckRow(
                    f"generated/{path}",
                    _tex_text(f"generated/{path}"),
                    str(steps),
                    "none" if batch is None else str(batch),
                    tuple(power_of_ten_bound(e) for e in errors),
                )
            )
    return tuple(rows)


def _check_table(modules: Mapping[str, str]) -> CheckTable:
    return CheckTable(
        _sizes(CHECK_SIZES),
        _power_of_ten(CHECK_H),
        _power_of_ten(CHECK_FLOOR),
        str(CHECK_SEED),
        _check_rows(modules),
    )


def _power_of_ten(value: float) -> str:
    """A power of ten in LaTeX, ``10^{-4}``."""
    return f"10^{{{round(math.log10(value))}}}"
