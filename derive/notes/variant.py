"""Stage 8 (notes, variants): one short Markdown page per variant module of generated/.

Contract: :func:`variant_files` takes a variant's :class:`VariantInput` (its derivation, the
proof of its generic step, its gradient-check results, its module's file name) and returns
``notes/<module>.md``: the configuration, the model, the backward sweep at a generic step as the
module runs it (for truncated BPTT, each loss step's seed and the lines that carry it back),
∂E/∂W as sums over steps, what was proven and what was checked. Every formula is printed from
the derivation by :mod:`derive.printing.latex`; nothing is derived, proven or run here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from derive import model as m
from derive.check import CheckResult
from derive.derivation import Derivation
from derive.notes import lecture, verification
from derive.notes.common import Display, t
from derive.printing.latex import Partial, Row, aligned, latex
from derive.render import render
from derive.verify import Proof


@dataclass(frozen=True)
class VariantInput:
    module: str  # "bptt_tanh_softmax_ce_all_c1_Tany.py"
    derivation: Derivation
    proof: Proof
    checks: tuple[CheckResult, ...]


@dataclass(frozen=True)
class VariantContext:
    module: str
    weights: tuple[str, ...]
    config: tuple[tuple[str, str], ...]
    model: tuple[Display, ...]
    truncate: str  # K, or "" for full BPTT
    last: Display  # the lines at t = N (full) or each loss step's seed (truncated)
    step: Display  # the lines at t < N (full) or the carry lines (truncated)
    sums: Display
    proof_config: str
    proof: verification.ProofTable
    check: verification.CheckTable


def _rows(lines: Sequence[object]) -> Display:
    return Display(aligned(Row.of(d.target, d.expression) for d in lines), "")  # type: ignore[attr-defined]


def _sums(d: Derivation, window: bool) -> Display:
    """∂E/∂W = Σ_t summand (or the term at t = N alone), per weight."""
    gen = d.closed.generic
    rows = []
    for w in d.statement.weights:
        parts = gen.lane_sums[w.name] if window else gen.sums[w.name]
        terms = []
        for part in parts:
            every = part.steps in ("all", "window") or (part.steps == "own" and window)
            terms.append(sp.Sum(part.summand, (t, 1, m.N)) if every else part.summand)
        rhs = terms[0] if len(terms) == 1 else sp.Add(*terms, evaluate=False)
        rows.append(Row.of(Partial(sp.MatrixSymbol("E", 1, 1), w), rhs))
    return Display(aligned(rows), "")


def variant_files(given: VariantInput) -> dict[str, str]:
    """``notes/<module>.md`` for one variant."""
    d = given.derivation
    c = d.config
    window = c.truncate is not None
    gen = d.closed.generic
    context = VariantContext(
        module=given.module,
        weights=tuple(latex(w) for w in d.statement.weights),
        config=(
            ("activation Φ", c.activation_name),
            ("output", c.output),
            ("loss", c.loss),
            ("scale κ", str(c.scale)),
            ("loss steps", "Σ_t E_t" if c.loss_steps == "all" else "E_T"),
            ("truncation", "none (full BPTT)" if not window else f"K = {c.truncate}"),
        ),
        model=tuple(Display(e.body, "") for e in lecture.model(d)),
        truncate="" if not window else str(c.truncate),
        last=_rows(gen.seed if window else gen.last),
        step=_rows(gen.carry if window else gen.step),
        sums=_sums(d, window),
        proof_config=given.proof.config.describe(),
        proof=verification.proof_table([given.proof]),
        check=verification.check_table(given.checks),
    )
    return {f"notes/{given.module.removesuffix('.py')}.md": render("variant.md.jinja", context)}
