"""The Markdown report of a runtime benchmark: machine facts, conventions, one table per case,
a summary of the ratios, JAX's compile times and the agreement check; the gated cells' cases
(GRU, LSTM) in a section of their own, with the generated module's time over the fastest peer's."""

from __future__ import annotations

import datetime

from bench import machine, peers, startup
from bench.cases import CELL_FLOP_FORMULA, FLOP_FORMULA
from bench.run import TOLERANCE, CaseResult, Results, Row


def _unit(seconds: float) -> tuple[str, float]:
    if seconds < 1e-3:
        return "µs", 1e6
    if seconds < 1.0:
        return "ms", 1e3
    return "s", 1.0


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _time(t: float, scale: float) -> str:
    return _num(t * scale)


def _ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def _disturbed(result: CaseResult) -> str:
    parts = [
        f"{row.spec.label} {row.retaken}"
        + (f" ({row.kept_disturbed} kept for want of quiet ones)" if row.kept_disturbed else "")
        for row in result.rows
        if row.retaken
    ]
    return (
        (" Disturbed rounds set aside and taken again: " + ", ".join(parts) + ".") if parts else ""
    )


def case_table(result: CaseResult, peak: float | None) -> list[str]:
    """The case's table; its peer / gen. columns read '–' when the generated module did not run
    (a gated cell's module that does not exist yet)."""
    case = result.case
    f_loss, f_grad = case.flops()
    ref = result.reference()
    timed = [r.gradients.median for r in result.rows if r.gradients is not None]
    unit, scale = _unit(ref.gradients.median if ref.gradients else min(timed, default=1e-3))
    lines = [
        f"### {case.name}: {case.describe()}",
        "",
        f"FLOPs: loss {f_loss:,}, gradients {f_grad:,}."
        + (f" While it ran: {result.load.describe()}." if result.load else "")
        + _disturbed(result),
        "",
        f"| implementation | loss ({unit}) | gradients ({unit}) | IQR | gradients / loss "
        f"| loss: peer / gen. | gradients: peer / gen. | gradients GFLOP/s | % of GEMM peak "
        f"| page faults / gradients call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result.rows:
        label = row.spec.label + (" †" if row.spec.other_loss else "")
        if row.loss is None or row.gradients is None:
            lines.append(f"| {label} | skipped: {row.skipped} | | | | | | | | |")
            continue
        gflops = f_grad / row.gradients.median / 1e9
        pct = f"{100 * gflops * 1e9 / peak:.2g}%" if peak else "–"
        if ref.loss is None or ref.gradients is None:
            ratios = "– | –"
        else:
            ratios = (
                f"{_ratio(row.loss.median / ref.loss.median)}"
                f" | {_ratio(row.gradients.median / ref.gradients.median)}"
            )
        lines.append(
            f"| {label} | {_time(row.loss.median, scale)} | {_time(row.gradients.median, scale)}"
            f" | ±{row.gradients.iqr_percent / 2:.0f}%"
            f" | {row.gradients.median / row.loss.median:.2f}"
            f" | {ratios}"
            f" | {gflops:.3g} | {pct} | {row.gradients.faults:.0f} |"
        )
    if any(r.spec.other_loss for r in result.rows):
        lines += ["", "† computes Σ_t E_t, not E_3: a different loss, not checked, for scale only."]
    return [*lines, ""]


def summary_table(results: list[CaseResult]) -> list[str]:
    """gradients: peer time / generated time, one column per case."""
    cases = [r for r in results if r.rows]
    keys: list[peers.Spec] = []
    for r in cases:
        for row in r.rows:
            if row.spec not in keys:
                keys.append(row.spec)
    head = "| implementation | " + " | ".join(r.case.name for r in cases) + " |"
    lines = [head, "|---|" + "---:|" * len(cases)]
    for spec in keys:
        cells = []
        for r in cases:
            found = next((x for x in r.rows if x.spec is spec), None)
            ref = r.reference().gradients
            if found is None or found.gradients is None or ref is None:
                cells.append("–")
            else:
                cells.append(_ratio(found.gradients.median / ref.median))
        lines.append(f"| {spec.label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


# Issue 11's targets: the faster generated backend's gradients time / the best framework peer's.
TARGETS = {"lecture": 0.8, "lecture-e3": 0.8, "small": 0.8, "long": 0.8, "medium": 0.95}
GRADIENT_COST_TARGET = 2.9  # its gradients / its loss
GENERATED = ("generated", "generated-numba")
FRAMEWORKS = ("torch", "torch-rnn", "jax", "autograd")
HAND = ("numpy-efficient", "numpy-per-step")


def _fastest(rows: list[Row], keys: tuple[str, ...]) -> Row | None:
    timed = [r for r in rows if r.spec.key in keys and r.gradients is not None]
    return min(timed, key=lambda r: r.gradients.median) if timed else None  # type: ignore[union-attr]


def backend_table(results: list[CaseResult]) -> list[str]:
    """Per case: the faster generated backend against the best framework (and hand NumPy)."""
    lines = [
        "| case | faster generated backend | gradients | best framework peer | its gradients "
        "| ratio (target) | gradients / loss (≤ 2.9) | best hand NumPy: ratio |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ours, peer = _fastest(r.rows, GENERATED), _fastest(r.rows, FRAMEWORKS)
        hand = _fastest(r.rows, HAND)
        if ours is None or ours.gradients is None or ours.loss is None:
            continue
        unit, scale = _unit(ours.gradients.median)
        backend = "Numba" if ours.spec.key == "generated-numba" else "NumPy"
        cost = ours.gradients.median / ours.loss.median
        cells = [r.case.name, backend, f"{_time(ours.gradients.median, scale)} {unit}"]
        target = TARGETS.get(r.case.name)
        if peer is None or peer.gradients is None:
            cells += ["–", "–", "–"]
        else:
            ratio = ours.gradients.median / peer.gradients.median
            verdict = "" if target is None else (" ✓" if ratio <= target else " ✗")
            cells += [
                peer.spec.label,
                f"{_time(peer.gradients.median, scale)} {unit}",
                f"{ratio:.2f} ({target}){verdict}",
            ]
        cells.append(f"{cost:.2f}" + (" ✓" if cost <= GRADIENT_COST_TARGET else " ✗"))
        cells.append(
            "–"
            if hand is None or hand.gradients is None
            else f"{ours.gradients.median / hand.gradients.median:.2f}"
        )
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def startup_table(results: Results) -> list[str]:
    if not results.startup:
        return ["Not measured (numba not installed, or the Numba peer did not run).", ""]
    return startup.table(results.startup)


def compile_table(results: Results) -> list[str]:
    rows = [(r.case.name, row) for r in results.cases for row in r.rows if row.compile_seconds]
    if not rows:
        return ["No implementation with a compile step ran (JAX, numba not installed?).", ""]
    lines = [
        "| case | implementation | compile loss (s) | compile gradients (s) | "
        "warmup(): every kernel (s) | steady gradients (ms) |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def cell(c: dict[str, float], key: str) -> str:
        return f"{c[key]:.3f}" if key in c else "–"

    for name, row in rows:
        c = row.compile_seconds
        steady = f"{row.gradients.median * 1e3:.3g}" if row.gradients else ""
        lines.append(
            f"| {name} | {row.spec.label} | {cell(c, 'loss')} | {cell(c, 'gradients')} "
            f"| {cell(c, 'warmup')} | {steady} |"
        )
    return [*lines, ""]


def agreement_table(cases: list[CaseResult]) -> list[str]:
    lines = [
        "| implementation | " + " | ".join(r.case.name for r in cases) + " |",
        "|---|" + "---:|" * len(cases),
    ]
    specs: list[peers.Spec] = []
    for r in cases:
        specs += [row.spec for row in r.rows if row.spec not in specs]
    for spec in specs:
        cells = []
        for r in cases:
            found: Row | None = next((x for x in r.rows if x.spec is spec), None)
            if found is None or found.skipped is not None:
                cells.append("–")
            elif spec.other_loss or found.error is None:
                cells.append("not checked")
            else:
                cells.append(f"{found.error:.1e}")
        lines.append(f"| {spec.label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def cell_ratio_table(cases: list[CaseResult]) -> list[str]:
    """Per gated case: the generated module's loss and gradients times over the fastest peer's
    (each the fastest at that call), below 1 the generated module is faster."""
    lines = [
        "| case | generated: loss | generated: gradients | fastest peer, loss | loss: gen. / peer "
        "| fastest peer, gradients | gradients: gen. / peer |",
        "|---|---:|---:|---|---:|---|---:|",
    ]
    for r in cases:
        ref = r.reference()
        others = [x for x in r.rows if x is not ref and x.loss is not None]
        cells = [r.case.name]
        if ref.loss is None or ref.gradients is None:
            cells += [f"skipped: {ref.skipped}", "–"]
        else:
            cells += [_seconds(ref.loss.median), _seconds(ref.gradients.median)]
        for what in ("loss", "gradients"):
            best = min(others, key=lambda x: getattr(x, what).median, default=None)
            if best is None:
                cells += ["–", "–"]
                continue
            theirs = getattr(best, what).median
            ours = getattr(ref, what)
            cells += [
                f"{best.spec.label}: {_seconds(theirs)}",
                "–" if ours is None else f"{ours.median / theirs:.2f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _seconds(t: float) -> str:
    unit, scale = _unit(t)
    return f"{_time(t, scale)} {unit}"


def cells_section(cases: list[CaseResult], peak: float | None) -> list[str]:
    """The gated cells' section: what is computed, one table per case, the ratios, agreement."""
    against = sorted({r.checked_against for r in cases if r.checked_against})
    lines = [
        "## Gated cells: GRU and LSTM",
        "",
        "The cells of bench/cases.py in PyTorch's conventions (GRU: r, u, n, the reset gate "
        "applied to s̄_(t−1) W_sn + b_sn; LSTM: i, f, g, o), with the linear output "
        "ȳ_t = s̄_t W_y (h̄_t W_y) and E_t = (d̄_t − ȳ_t)(d̄_t − ȳ_t)ᵀ summed over the batch, loss "
        "Σ_t E_t, every initial state 0, n_x = n_s = n_y = n, every parameter (biases included) "
        "N(0, 1/n). The generated module is generated/gru.py or generated/lstm.py; the table "
        "columns are read as above, peer / gen. being '–' while that module does not exist.",
        "",
        f"- **GFLOP/s** = gradient FLOPs / gradients time. {CELL_FLOP_FORMULA}",
        "- Before timing, every implementation's loss and the gradients of every parameter were "
        f"checked against the generated module's or, where it did not run, the first peer's "
        f"(here: {', '.join(against) or 'none ran'}): relative error ≤ {TOLERANCE:g}.",
        "",
    ]
    for r in cases:
        lines += case_table(r, peak)
    lines += [
        "### The generated module against the fastest peer",
        "",
        "Times of the generated module and of the fastest other implementation, for the loss "
        "and for the gradients separately; gen. / peer below 1: the generated module is faster.",
        "",
        *cell_ratio_table(cases),
        "### Agreement (max relative error)",
        "",
        *agreement_table(cases),
    ]
    return lines


def markdown(results: Results) -> str:
    s = results.settings
    rnn = [r for r in results.cases if not r.case.gated]
    gated = [r for r in results.cases if r.case.gated]
    numpy_peak = results.numpy_peak()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    reps = sorted({row.gradients.reps for r in results.cases for row in r.rows if row.gradients})
    calls = f"{reps[0]} to {reps[-1]}" if reps else "none timed"
    lines = [
        "# Benchmark: generated BPTT against PyTorch, JAX, autograd and hand-written NumPy",
        "",
        f"Produced by `{s.command}` ({s.mode}) on {now}, in {results.seconds:.0f} s"
        + (f"; meanwhile {results.load.describe()}." if results.load else "."),
        "",
        f"Code measured: {results.code[0]} ({results.code[1]})."
        + (
            ""
            if results.code == results.code_after
            else f" **The generated modules changed during the run**; at its end: "
            f"{results.code_after[0]} ({results.code_after[1]}). Numbers may mix versions."
        ),
        "",
        "## Machine",
        "",
        *(f"- {line}" for line in machine.facts(results.peaks)),
        "",
        "## How to read the tables",
        "",
        f"- Times are the median of {s.rounds} rounds after a warm-up; one sample is the mean "
        f"of back-to-back calls, as many as make it last ≥ {s.min_sample * 1e3:g} ms "
        f"(1 call for slow cases). "
        + (
            "Each implementation runs on each case in fresh Python processes of its own "
            f"(python -m bench.worker; {s.processes} per implementation and case, the rounds "
            "split between them, every implementation's first process before any second one; "
            f"up to {s.extra_processes} more for one still short of undisturbed rounds), "
            "one process at a time, its loss and gradients taking turns round by round: no peer "
            "inherits another's allocator state or thread pools. "
            if s.isolated
            else "All implementations run in this one process and take turns round by round. "
        )
        + "IQR: half the interquartile range of the gradients' samples, relative to the median.",
        "- **peer / gen.** = the implementation's time divided by the generated module's time "
        "on the same case (above 1: the generated module is faster). The generated module is "
        "`generated/bptt.py` for Σ_t E_t and `generated/bptt_e3.py` on the lecture-e3 case "
        "(E_3 only, T = 3), where every peer computes E_3 only as well.",
        "- **gradients / loss** = time of the loss and all three weight gradients divided by the "
        "time of the loss alone (the forward pass), per implementation.",
        f"- **GFLOP/s** = gradient FLOPs / gradients time. {FLOP_FORMULA} "
        f"**% of GEMM peak** compares with NumPy's float64 matrix product measured in this run, "
        f"the better of its two measurements"
        + (f" ({numpy_peak / 1e9:.1f} GFLOP/s)." if numpy_peak else "."),
        "- **page faults / gradients call**: minor page faults per call (median over samples), "
        "counted by getrusage for the whole process. Large temporaries allocated afresh at every "
        "call show up here: glibc maps big blocks with mmap (or grows and trims its heap) and the "
        "kernel zeroes every new page, which can cost as much as the arithmetic.",
        "- **While it ran**: the CPU time other processes (and the hypervisor, as steal) took "
        "while the case was timed, read from /proc/stat; a few percent makes 2-thread BLAS "
        "timings noisy. A round during which other processes took more than 5% of the CPU "
        "time (summed from every other thread's /proc/PID/task/TID/schedstat, and from "
        "/proc/stat), or before or after which a fixed pure-Python canary ran more than 25% "
        "slower than its best on the fastest core, measured before the timing (the host can "
        "slow this virtual machine, or one of its cores, down unseen), "
        "is set aside and taken again, at most 3 × rounds in all and not after "
        "`rounds` disturbed rounds in a row (then the least disturbed are kept, and the case's "
        "heading says so).",
        "- **JAX compile times** are those of the timed process (trace, lower and XLA compile "
        "of jit(loss) and jit(value_and_grad(loss)), before any timing).",
        f"- Before timing, every implementation's loss and gradients were checked against the "
        f"generated module's: relative error ≤ {TOLERANCE:g} (max-norm, each quantity).",
        f"- Inputs: seeded standard-normal x and d, weights N(0, 1/n), s̄_0 = 0, float64, "
        f"time-major (T, B, n); seed {s.seed}. Calls per sample: {calls}.",
        "",
    ]
    if rnn:
        lines += _rnn_sections(results, rnn, numpy_peak)
    if gated:
        lines += cells_section(gated, numpy_peak)
    lines += ["## Compile times (apart from the steady-state times above)", ""]
    lines += compile_table(results)
    if rnn:
        lines += ["## Agreement with the generated module (max relative error)", ""]
        lines += agreement_table(rnn)
    lines += ["## The implementations", ""]
    seen: list[peers.Spec] = []
    for r in results.cases:
        seen += [row.spec for row in r.rows if row.spec not in seen]
    lines += [f"- **{spec.label}**: {peers.describe(spec)}" for spec in seen]
    return "\n".join(lines).rstrip() + "\n"


def _rnn_sections(results: Results, rnn: list[CaseResult], peak: float | None) -> list[str]:
    """The RNN's cases: their tables, the ratios to the generated module, the backends' targets
    and the Numba backend's start-up."""
    lines = ["## Results", ""]
    for r in rnn:
        lines += case_table(r, peak)
    lines += ["## Gradients: peer time / generated time", "", *summary_table(rnn)]
    lines += [
        "## The faster generated backend against the best peer",
        "",
        "Per case, the faster of the two generated backends (NumPy, Numba) by gradients time, "
        "against the fastest framework peer (PyTorch, JAX, autograd): ratio = ours / theirs, "
        "with issue 11's target; gradients / loss is our backend's own cost of the gradients "
        "over the loss alone (the gradients need 8/3 of the loss's matrix-product FLOPs). The "
        "last column compares with the faster hand-written NumPy.",
        "",
        *backend_table(rnn),
    ]
    lines += [
        "## Numba backend: start-up in a fresh process",
        "",
        "A new Python process imports the module and calls gradients() once (python -m "
        "bench.startup): cold = numba's cache directory empty, the call compiles its kernel; "
        "warm = the cache the cold run wrote, median of the warm runs.",
        "",
        *startup_table(results),
    ]
    return lines
