"""The command line: ``python -m bench`` (full), ``--quick`` (under a minute), ``--derivation``.

The runtime benchmark prints its Markdown report and writes it to bench/results.md
(bench/results-quick.md with --quick; --out chooses another file, --out - none). The derivation
benchmark writes bench/derivation.md. Progress goes to stderr. A disagreement between an
implementation and the generated module aborts before any timing, with status 1.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import peers
from bench.cases import CASES

HERE = Path(__file__).resolve().parent

# Full: every case, 21 rounds of ≥ 10 ms samples split over 3 processes per implementation
# (up to 3 more for one short of undisturbed rounds), GEMM peak at 2048².
# Quick: every case but the medium ones (their slow peers take ~0.2 s a call and more), 5 rounds
# of ≥ 2 ms samples in one process per implementation and no extra ones, a 1024² GEMM peak: about
# 35 s on the 2-core machine for the RNN's cases, and about 10 s more for each small gated cell.
QUICK_CASES = ("lecture", "small", "long", "lecture-e3", "gru-small", "lstm-small")
FULL = {
    "rounds": 21,
    "min_sample_ms": 10.0,
    "peak_size": 2048,
    "peak_rounds": 5,
    "processes": 3,
    "extra_processes": 3,
    "startup_runs": 5,
}
QUICK = {
    "rounds": 5,
    "min_sample_ms": 2.0,
    "peak_size": 1024,
    "peak_rounds": 3,
    "processes": 1,
    "extra_processes": 0,
    "startup_runs": 1,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time loss and gradients of generated/bptt.py and generated/bptt_e3.py "
        "against PyTorch, JAX, HIPS autograd and hand-written NumPy (issue 5), and of "
        "generated/gru.py and generated/lstm.py against nn.GRU, nn.LSTM and JAX.",
    )
    p.add_argument("--quick", action="store_true", help="fewer rounds, shorter samples (< 1 min)")
    p.add_argument(
        "--cases",
        default=None,
        help=f"comma-separated cases out of {', '.join(CASES)} (default: all; with --quick "
        f"{', '.join(QUICK_CASES)})",
    )
    p.add_argument(
        "--peers",
        default=None,
        help="comma-separated implementations to run besides the generated module, out of "
        + ", ".join(s.key for s in peers.SPECS)
        + " (default: all that are installed)",
    )
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per measurement")
    p.add_argument(
        "--min-sample-ms",
        type=float,
        default=None,
        help="repeat fast calls so that one sample lasts at least this long",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=None,
        help="split each implementation's rounds over this many fresh processes (default 3; "
        "1 with --quick)",
    )
    p.add_argument("--peak-size", type=int, default=None, help="n of the n×n GEMM peak")
    p.add_argument(
        "--shared",
        action="store_true",
        help="time every implementation in this one process, in turns, instead of each in a "
        "fresh process of its own (quicker; shares the allocator and the thread pools)",
    )
    p.add_argument("--seed", type=int, default=20261125, help="seed of the inputs")
    p.add_argument(
        "--out",
        default=None,
        help="where to write the report (default bench/results.md, bench/results-quick.md "
        "with --quick, bench/derivation.md with --derivation); '-' writes no file",
    )
    p.add_argument(
        "--derivation",
        action="store_true",
        help="benchmark the generator instead: make derive, the proof, growth with N",
    )
    p.add_argument(
        "--steps",
        default="1-50",
        help="with --derivation: the N of the sweep, like 1-50 or 1,2,3,5,10 (default 1-50)",
    )
    p.add_argument(
        "--limit",
        type=float,
        default=60.0,
        help="with --derivation: stop the sweep after an N that takes longer (seconds)",
    )
    return p


def _write(text: str, out: str | None, default: Path) -> None:
    if out == "-":
        return
    path = Path(out) if out else default
    path.write_text(text, encoding="utf-8")
    print(f"bench: wrote {path}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = "python -m bench" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    if args.derivation:
        from bench import derivation

        try:
            steps = derivation.parse_steps(args.steps)
        except ValueError as exc:
            parser().error(str(exc))
        text = derivation.report(steps, args.limit, command)
        print(text, end="")
        _write(text, args.out, HERE / "derivation.md")
        return 0

    from bench import report, run

    if args.cases is None:
        cases = QUICK_CASES if args.quick else tuple(CASES)
    else:
        cases = tuple(c.strip() for c in args.cases.split(",") if c.strip())
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        parser().error(f"--cases: expected names out of {', '.join(CASES)}, got {args.cases!r}")
    chosen = None
    if args.peers is not None:
        chosen = tuple(k.strip() for k in args.peers.split(",") if k.strip())
        known = {s.key for s in peers.SPECS}
        if any(k not in known for k in chosen):
            parser().error(f"--peers: expected names out of {', '.join(sorted(known))}")
    preset = QUICK if args.quick else FULL

    def pick(given: float | None, key: str) -> float:
        return given if given is not None else preset[key]

    settings = run.Settings(
        cases=cases,
        rounds=int(pick(args.rounds, "rounds")),
        min_sample=pick(args.min_sample_ms, "min_sample_ms") / 1e3,
        peak_size=int(pick(args.peak_size, "peak_size")),
        peak_rounds=int(preset["peak_rounds"]),
        peers=chosen,
        seed=args.seed,
        command=command,
        mode="quick" if args.quick else "full",
        isolated=not args.shared,
        processes=int(pick(args.processes, "processes")),
        extra_processes=int(preset["extra_processes"]),
        startup_runs=int(preset["startup_runs"]),
    )
    if settings.rounds < 1:
        parser().error(f"--rounds: expected an int ≥ 1, got {settings.rounds}")
    if settings.processes < 1:
        parser().error(f"--processes: expected an int ≥ 1, got {settings.processes}")
    try:
        results = run.run(settings)
    except run.CheckFailed as exc:
        print(f"bench: ABORTED, nothing timed: {exc}", file=sys.stderr)
        return 1
    text = report.markdown(results)
    print(text, end="")
    _write(text, args.out, HERE / ("results-quick.md" if args.quick else "results.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
