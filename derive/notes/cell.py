"""Stage 8 (notes, gated cells): one page per cell module (GRU, LSTM), in LaTeX and Markdown.

Contract: :func:`cell_files` takes a :class:`CellInput` (the cell's derivation at N = 3 with
Σ_t E_t, its proof, the gradient checks of its module, other proofs to report, and the lecture's
RNN for the comparison) and returns ``notes/<cell>.tex``, a standalone document, and
``notes/<cell>.md``. Each page holds the equations of step t, the graph of one step and the graph
unfolded over N steps (both read off the equations, drawn by TikZ and by Mermaid), every local
Jacobian in the numerator layout, the backward lines at t = N and t < N, each parameter's
gradient as a sum over steps, the transitions ∂state_t/∂state_(t−1) next to the RNN's D_t W_sᵀ,
what was proven and where the code is. Every formula is printed from the objects handed in by
:mod:`derive.printing.latex`; the only rule applied here is the numerator-layout Jacobian of
:mod:`derive.ops`. Nothing is proven or run here; a claim of the prose that the derivation does
not bear out raises :class:`~derive.errors.GenerationError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.diagonal import DiagMatrix

from derive import activations as acts
from derive import chain, check, labels, notation, ops, verify
from derive import model as m
from derive.check import CheckResult
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.notes.cell_graph import Picture, base, local_jacobians, role, step_graph, unfolded
from derive.notes.common import Display, N, t, tex_text, with_diagonals
from derive.notes.verification import power_of_ten_bound
from derive.printing.latex import (
    WIDTH,
    Chain,
    Dots,
    Partial,
    Row,
    aligned,
    inline_equation,
    latex,
    shape,
    width,
)
from derive.render import render
from derive.verify import Proof

# The proof's candidates as the tables name them (short: they head columns).
CANDIDATE_WORDS = {
    "chain-rule expansion": "chain rule",
    "expanded closed form": "terms",
    "collected closed form (δ recurrence)": "recurrence",
    "generic step (any N)": "generic step",
}


@dataclass(frozen=True)
class CellInput:
    module: str  # "gru.py"
    derivation: Derivation  # the cell at N = 3, loss_steps="all"
    proof: Proof
    checks: tuple[CheckResult, ...] = ()
    extra: Mapping[str, Proof] = field(default_factory=dict)  # {"N=1": proof, …}
    rnn: Derivation | None = None  # the lecture's RNN with Σ_t E_t (required)


@dataclass(frozen=True)
class Group:
    """The local Jacobians of the equations under one label."""

    ref: str  # "G1", as the tags write it
    display: Display


@dataclass(frozen=True)
class Carry:
    """The part of a transition that multiplies by no parameter: a gate on a diagonal."""

    state: str  # the state, at step t (inline math)
    gate: str  # the gate, at step t
    part: str  # the part, at step t
    product: Display  # the part over k steps back


@dataclass(frozen=True)
class ProofRow:
    name: str
    steps: str
    sizes: str
    points: str
    truth: str
    comparisons: str
    error: str  # the largest relative difference, as a bound (math)
    seconds: str


@dataclass(frozen=True)
class Parameter:
    code: str  # the name in PARAMS and in the gradients
    code_tex: str
    tex: str
    shape: str
    verdicts: tuple[str, ...]  # per candidate of the main proof (math)
    checks: tuple[str, ...]  # per gradient check (math)


@dataclass(frozen=True)
class CellContext:
    title: str  # "GRU"
    name: str  # "gru"
    module: str
    module_tex: str
    href: str  # the module, relative to the notes
    config: str
    config_tex: str
    state_names: str  # STATES of the module, as the code names them
    equations: tuple[Display, ...]
    step_graph: Picture
    unfolded: Picture
    steps: str
    jacobians: tuple[Group, ...]
    transitions: Display
    adjoints: Display
    output_gradient: Display
    last: Display
    step: Display
    sums: tuple[Display, ...]
    rnn: Display
    carries: tuple[Carry, ...]
    proofs: tuple[ProofRow, ...]
    truths: tuple[tuple[str, str], ...]  # (name, what it is) of each ground truth used
    candidates: tuple[str, ...]
    tolerance: str
    forms: str
    forms_tex: str
    parameters: tuple[Parameter, ...]
    check_columns: tuple[str, ...]
    check_sizes: str
    check_h: str
    check_seed: str
    cited: tuple[tuple[str, str], ...]  # every label the page defines, as the code cites it
    # ("Eq. 37"), and so in LaTeX, unbreakable ("Eq.~37")
    sym: dict[str, str]  # symbols the prose names


def cell_files(given: CellInput) -> dict[str, str]:
    """``notes/<cell>.tex`` and ``notes/<cell>.md`` for one gated cell."""
    context = cell_context(given)
    return {
        f"notes/{context.name}.tex": render("cell.tex.jinja", context),
        f"notes/{context.name}.md": render("cell.md.jinja", context),
    }


def cell_context(given: CellInput) -> CellContext:
    """Every section of the page, printed."""
    d = given.derivation
    stmt, gen = d.statement, d.closed.generic
    if stmt.config.cell == "rnn":
        raise GenerationError("cell notes: expected a GRU or an LSTM derivation, got the RNN")
    # The RNN of the comparison, derived by generate (the notes derive nothing).
    rnn = given.rnn
    if rnn is None or rnn.config.cell != "rnn":
        raise GenerationError("cell notes: expected the lecture's RNN for the comparison (rnn=…)")
    proofs = {f"N={given.proof.config.steps}": given.proof, **given.extra}
    for proof in proofs.values():
        if not proof.ok:
            raise GenerationError("\n".join(proof.lines()))
    # γ_t = ∂E/∂v̄_t is R1, the δ lines R2: the labels the generated code cites for them.
    gamma = stmt.quantities["o"].adjoint
    output = [x for x in (*gen.last, *gen.step) if base(x.target) == gamma]
    e = sp.MatrixSymbol("E", 1, 1)
    return CellContext(
        title=stmt.config.cell.upper(),
        name=stmt.config.cell,
        module=f"generated/{given.module}",
        module_tex=tex_text(f"generated/{given.module}"),
        href=f"../{given.module}",
        config=d.config.describe(),
        config_tex=tex_text(d.config.describe()),
        state_names=", ".join(stmt.names("state")),
        equations=tuple(
            Display(_aligned(Row.of(q.target, q.rhs) for q in group), _tag(label))
            for label, group in _by_label(stmt.equations).items()
        ),
        step_graph=step_graph(stmt),
        unfolded=unfolded(stmt),
        steps=latex(stmt.config.steps),
        jacobians=_jacobians(stmt),
        transitions=_display(Row.of(_leibniz(f), _diag_rows(f.jacobian)) for f in d.transitions),
        adjoints=_adjoints(stmt),
        output_gradient=Display(
            _aligned(Row.of(x.target, x.expression) for x in output),
            _tag(labels.OUTPUT_GRADIENT),
        ),
        last=_display(Row.of(x.target, x.expression) for x in gen.last if x not in output),
        step=Display(
            _aligned(Row.of(x.target, x.expression) for x in gen.step if x not in output),
            _tag(labels.DELTA),
        ),
        sums=_sums(d),
        rnn=_rnn(rnn),
        carries=tuple(c for f in d.transitions if (c := _carry(stmt, f)) is not None),
        proofs=tuple(_proof_row(name, p) for name, p in proofs.items()),
        truths=tuple(
            (name, verify.TRUTH_TEXT[name])
            for name in dict.fromkeys(p.truth for p in proofs.values())
        ),
        candidates=tuple(CANDIDATE_WORDS[c] for c in _candidates(given.proof)),
        tolerance=_power(float(verify.TOLERANCE)),
        forms="; ".join(f.name for f in given.proof.forms),
        forms_tex=tex_text("; ".join(f.name for f in given.proof.forms)),
        parameters=_parameters(stmt, given.proof, given.checks),
        check_columns=tuple(
            f"T={r.steps}" + ("" if r.batch is None else f", B={r.batch}") for r in given.checks
        ),
        check_sizes=",\\ ".join(
            f"{latex(n)} = {v}"
            for n, v in zip((m.n_x, m.n_s, m.n_y), check.CHECK_SIZES, strict=True)
        ),
        check_h=_power(check.CHECK_H),
        check_seed=str(check.CHECK_SEED),
        cited=tuple(
            (label, label.replace(" ", "~"))
            for label in dict.fromkeys(
                [
                    *(q.label for q in stmt.equations),
                    labels.OUTPUT_GRADIENT,
                    labels.DELTA,
                    labels.PARAMETER_COLLECTED,
                ]
            )
        ),
        sym={
            "E": latex(e),
            "loss": inline_equation(
                e,
                sp.Sum(m.E(t), (t, 1, N)) if d.config.loss_steps == "all" else m.E(N),
            ),
            "N": latex(N),
            "t_less_N": latex(sp.StrictLessThan(t, N)),
            "D_t": latex(m.D(t)),
            "dPhi": latex(acts.dPhi),
            "x_t": latex(m.x(t)),
            "sizes": "(" + ", ".join(latex(n) for n in (m.n_x, m.n_s, m.n_y)) + ")",
            "sigma": latex(acts.Sigma),
            "tanh": latex(acts.Tanh),
            "hadamard": latex(
                sp.HadamardProduct(*(m.at(stmt.names("state")[0], k) for k in (1, 2)))
            ),
            "ours": ", ".join(
                latex(m.at(q, t))
                for q in stmt.names("hidden")
                if notation.lookup(q)[0].meaning.endswith("(our name)")
            ),
        },
    )


# ---------------------------------------------------------------------------------------------
# Sections 1, 3–5: the equations, the local Jacobians, the backward lines, the sums.


def _tag(label: str) -> str:
    return rf"\tag{{{labels.tag(label)}}}"


def _aligned(rows: Any) -> str:
    return aligned(list(rows))


def _display(rows: Any) -> Display:
    return Display(aligned(list(rows)), "")


def _by_label(equations: Sequence[m.Equation]) -> dict[str, list[m.Equation]]:
    out: dict[str, list[m.Equation]] = {}
    for q in equations:
        out.setdefault(q.label, []).append(q)
    return out


def _leibniz(f: Any) -> Partial:
    return Partial(f.numerator, f.denominator)


def _diag_rows(e: Any) -> Any:
    """``e`` with every diag(column) written diag(rowᵀ): the ⊙ rule puts (1 − ū)ᵀ on the
    diagonal, which SymPy evaluates to 1 − ūᵀ; the printer shows diag(rowᵀ) as diag(row)."""
    if isinstance(e, DiagMatrix):
        v = e.args[0]
        bare = isinstance(v, sp.Transpose) or (
            isinstance(v, ElementwiseApplyFunction) and isinstance(v.expr, sp.Transpose)
        )
        return e if bare else DiagMatrix(sp.Transpose(sp.transpose(v)))
    if e is not None and e.args and ops.is_matrix(e):
        args = [_diag_rows(a) if ops.is_matrix(a) else a for a in e.args]
        return e.func(*args) if args != list(e.args) else e
    return e


def _packed(pairs: Sequence[tuple[Any, str, Any]], most: int = 2) -> Display:
    """Equations side by side, up to ``most`` to a row while the row fits the line; a wider one
    alone on its row, where :func:`aligned` may break it."""
    rows: list[list[tuple[Any, str, Any]]] = []
    used = 0.0
    for pair in pairs:
        lhs, relation, rhs = pair
        size = width(latex(lhs)) + width(relation) + width(latex(rhs)) + 2.0  # and a \qquad
        if rows and len(rows[-1]) < most and used + size <= WIDTH:
            rows[-1].append(pair)
            used += size
        else:
            rows.append([pair])
            used = size
    return Display(aligned([Row(tuple(row)) for row in rows]), "")


def _jacobians(stmt: m.Statement) -> tuple[Group, ...]:
    """Per label, ∂(target)/∂(q) for every quantity q the equation reads that a gradient flows
    through (states, intermediates, outputs; not the inputs x̄_t and d̄_t), then for each
    parameter θ it reads, ∂(target)/∂θ as its pullback U ↦ ∂E/∂θ."""
    groups = []
    for label, group in _by_label(stmt.equations).items():
        pairs = [
            (Partial(q.target, a), "=", _diag_rows(jacobian))
            for q in group
            for a, jacobian, _ in local_jacobians(stmt, q)
            if role(stmt, a) in ("state", "hidden", "output")
        ]
        for q in group:  # a parameter's factor has three indices: what it does to U instead
            u = chain.placeholder(q.target.shape[1])
            pairs += [
                (
                    Partial(q.target, w),
                    rf"\colon {latex(u)} \mapsto",
                    ops.vjp(q.rhs, w, u, out=q.target),
                )
                for w in stmt.weights
                if w in q.rhs.atoms(sp.MatrixSymbol)
            ]
        groups.append(Group(labels.tag(label), _packed(pairs)))
    return tuple(groups)


def _adjoints(stmt: m.Statement) -> Display:
    """The gradients the backward pass names, side by side: δ^q_t = ∂E/∂q_t."""
    e = sp.MatrixSymbol("E", 1, 1)
    pairs = [
        (m.at(q.adjoint, t), "=", Partial(e, m.at(q.name, t)))
        for q in stmt.quantities.values()
        if q.adjoint is not None and q.role != "adjoint"
    ]
    return _packed(pairs, most=4)


def _sums(d: Derivation) -> tuple[Display, ...]:
    """∂E/∂θ = Σ_t summand per parameter, under the label the code cites (R7; W_y: 37)."""
    e = sp.MatrixSymbol("E", 1, 1)
    groups: dict[str, list[tuple[Any, str, Any]]] = {}
    for w in d.statement.weights:
        parts = d.closed.generic.sums[w.name]
        terms = [sp.Sum(p.summand, (t, 1, N)) if p.steps == "all" else p.summand for p in parts]
        rhs = terms[0] if len(terms) == 1 else sp.Add(*terms, evaluate=False)
        label = labels.PARAMETER_COLLECTED  # every parameter of a cell, W_y's too
        groups.setdefault(label, []).append((Partial(e, w), "=", rhs))
    return tuple(Display(_packed(pairs).body, _tag(label)) for label, pairs in groups.items())


# ---------------------------------------------------------------------------------------------
# Section 6: why the gradient survives.

_k = sp.Symbol("k", integer=True, positive=True)


def _back(e: Any, named: bool = False) -> Chain:
    """``e`` at steps N, N − 1, ⋯, N − k + 1 side by side: the product k steps back."""
    at = [m.instantiate(e, {t: step}) for step in (N, N - 1, N - _k + 1)]
    if named:
        at = [with_diagonals(a) for a in at]
    return Chain(at[0], at[1], Dots(), at[2])


def _rnn(rnn: Derivation) -> Display:
    """The RNN's ∂s̄_t/∂s̄_(t−1) = diag(Φ'(z̄_t)) W_sᵀ = D_t W_sᵀ and its product k steps back."""
    (f,) = rnn.transitions
    state = base(f.numerator)
    named = [  # D_t = diag(Φ'(z̄_t)), as every display of the lecture notes names it
        Row.of(with_diagonals(x), x)
        for x in sp.preorder_traversal(f.jacobian)
        if isinstance(x, DiagMatrix) and with_diagonals(x) != x
    ]
    rows = [
        *named,
        Row.of(_leibniz(f), with_diagonals(f.jacobian)),
        Row.of(Partial(m.at(state, N), m.at(state, N - _k)), _back(f.jacobian, named=True)),
    ]
    return Display(aligned(rows), "")


def _terms(e: Any) -> list[Any]:
    if isinstance(e, sp.MatAdd):
        return [a for arg in e.args for a in _terms(arg)]
    return [e]


def _carry(stmt: m.Statement, f: Any) -> Carry | None:
    """The term of a transition that holds no parameter. The prose says it is a gate on a
    diagonal, σ of something, so between 0 and 1 (LSTM: diag(f̄_t), GRU: diag(ū_t)); that is
    checked here."""
    free = [a for a in _terms(f.jacobian) if not a.atoms(sp.MatrixSymbol) & set(stmt.weights)]
    if not free:
        return None
    part = free[0]
    row = part.args[0] if isinstance(part, DiagMatrix) else None
    gate = row.arg if isinstance(row, sp.Transpose) else None
    defined = {q.target: q.rhs for q in stmt.equations}
    rhs = defined.get(gate)
    if (
        len(free) != 1
        or not isinstance(rhs, ElementwiseApplyFunction)
        or acts.applied_function(rhs) != acts.Sigma
    ):
        raise GenerationError(f"expected one gate σ(…) on a diagonal, no parameters, in {f}")
    return Carry(
        latex(f.numerator),
        latex(gate),
        latex(part),
        Display(aligned([Row.of(None, _back(part), "")]), ""),
    )


# ---------------------------------------------------------------------------------------------
# Section 7: what was proven, what was checked, where the code is.


def _power(value: float) -> str:
    return f"10^{{{round(math.log10(value))}}}"


def _bound(error: float) -> str:
    """A relative difference as the power of ten above it (the same text on every machine)."""
    return "0" if error == 0 else rf"\le {_power(10.0 ** math.ceil(math.log10(error)))}"


def _seconds(seconds: float) -> str:
    """The proof's time as a coarse bound (a few seconds here, some times that elsewhere): the
    page is committed and must be the same text on every machine, which seconds are not."""
    for bound, words in ((60, "a minute"), (600, "ten minutes"), (3600, "an hour")):
        if seconds < bound:
            return f"under {words}"
    return "over an hour"


def _candidates(proof: Proof) -> list[str]:
    found = list(dict.fromkeys(c.candidate for c in proof.comparisons))
    unknown = [c for c in found if c not in CANDIDATE_WORDS]
    if unknown:
        raise GenerationError(f"no words for the proof's candidates {unknown}: add them here")
    return found


def _proof_row(name: str, p: Proof) -> ProofRow:
    numeric = [c.max_error for c in p.comparisons if c.method != "exact"]
    return ProofRow(
        name=name,
        steps=str(p.config.steps),
        sizes=", ".join(str(n) for n in p.sizes),
        points=str(p.points),
        truth=p.truth,
        comparisons=str(len(p.comparisons)),
        error=_bound(max(numeric)) if numeric else r"\text{identical}",
        seconds=_seconds(p.seconds),
    )


def _parameters(
    stmt: m.Statement, proof: Proof, checks: Sequence[CheckResult]
) -> tuple[Parameter, ...]:
    """Each parameter in PARAMS order: what the proof showed per candidate, the module's
    gradient check per (T, batch) (its errors in PARAMS order)."""
    for r in checks:
        if len(r.errors) != len(stmt.weights):
            raise GenerationError(
                f"the check of {r.module} has {len(r.errors)} errors for "
                f"{len(stmt.weights)} parameters"
            )
    out = []
    for k, w in enumerate(stmt.weights):
        verdicts = []
        for candidate in _candidates(proof):
            (c,) = [c for c in proof.comparisons if c.candidate == candidate and c.weight == w.name]
            verdicts.append(r"\text{identical}" if c.method == "exact" else _bound(c.max_error))
        out.append(
            Parameter(
                code=w.name,
                code_tex=tex_text(w.name),
                tex=latex(w),
                shape=shape(w),
                verdicts=tuple(verdicts),
                checks=tuple(power_of_ten_bound(r.errors[k]) for r in checks),
            )
        )
    return tuple(out)
