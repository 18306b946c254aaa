"""Stage 7 (notes, Section 7): what was proven, and the gradient check of the generated modules.

Contract: :func:`proof_table` prints the :class:`~derive.verify.Proof` s it is given, one row per
loss and candidate, and the numeric forms checked; :func:`check_table` prints the
:class:`~derive.check.CheckResult` s it is given, each relative error as its upper bound by a
power of ten (so the table is the same text on every machine). Both only print: the proof and
the check ran before, in :func:`derive.generate.standard_files`. A failed proof raises
:class:`~derive.errors.GenerationError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from derive import check, verify
from derive import model as m
from derive.errors import GenerationError
from derive.notes.common import tex_text
from derive.printing.latex import latex


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
    forms: tuple[str, ...]  # the numeric forms checked against their definitions


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
    "generic step (any N)": (None, "generic step (the loop module's)"),
}


def proof_table(proofs: Sequence[verify.Proof]) -> ProofTable:
    """One row per loss and candidate, for each weight what was shown (math): identical as exact
    rationals, or a relative difference below the tolerance; a failed proof fails generation."""
    rows = []
    forms: dict[str, None] = {}
    tolerance = _power_of_ten(float(verify.TOLERANCE))
    for proof in proofs:
        if not proof.ok:
            raise GenerationError("\n".join(proof.lines()))
        steps = proof.config.steps
        loss = m.E(steps) if proof.config.loss_steps == "last" else sp.MatrixSymbol("E", 1, 1)
        for candidate in verify.CANDIDATES:
            # what was shown, precisely: identical as exact rationals, or agreement to 10⁻³⁰
            verdicts = tuple(
                r"\text{identical}" if c.method == "exact" else f"< {tolerance}"
                for w in m.WEIGHT_NAMES
                for c in proof.comparisons
                if c.candidate == candidate and c.weight == w and c.ok
            )
            symbol, words = _CANDIDATE_WORDS[candidate]
            symbol_tex = "" if symbol is None else latex(symbol)
            rows.append(ProofRow(latex(loss), symbol_tex, words, verdicts))
        forms.update(dict.fromkeys(f.name for f in proof.forms))
    first = proofs[0]
    return ProofTable(
        _sizes(first.sizes),
        str(first.points),
        str(verify.DIGITS),
        _power_of_ten(float(verify.TOLERANCE)),
        tuple(rows),
        tuple(forms),
    )


def _sizes(sizes: tuple[int, int, int]) -> str:
    return ",\\ ".join(
        f"{latex(n)} = {v}" for n, v in zip((m.n_x, m.n_s, m.n_y), sizes, strict=True)
    )


# Below this the rounding error of the differences (of order 10⁻¹⁶/h relative) decides the digits,
# which differ between machines: smaller errors are all reported as this bound.
CHECK_FLOOR = 1e-9


def power_of_ten_bound(error: float) -> str:
    """The smallest power of ten ≥ ``error`` (and ≥ the floor), in LaTeX: ``\\le 10^{-8}``."""
    if not math.isfinite(error) or error < 0:
        raise GenerationError(f"a relative error must be finite and ≥ 0, got {error}")
    return rf"\le {_power_of_ten(10.0 ** math.ceil(math.log10(max(error, CHECK_FLOOR))))}"


def check_table(results: Sequence[check.CheckResult]) -> CheckTable:
    rows = tuple(
        CheckRow(
            f"generated/{r.module}",
            tex_text(f"generated/{r.module}"),
            str(r.steps),
            "none" if r.batch is None else str(r.batch),
            tuple(power_of_ten_bound(e) for e in r.errors),
        )
        for r in results
    )
    return CheckTable(
        _sizes(check.CHECK_SIZES),
        _power_of_ten(check.CHECK_H),
        _power_of_ten(CHECK_FLOOR),
        str(check.CHECK_SEED),
        rows,
    )


def _power_of_ten(value: float) -> str:
    """A power of ten in LaTeX, ``10^{-4}``."""
    return f"10^{{{round(math.log10(value))}}}"
