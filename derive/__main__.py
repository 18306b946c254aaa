"""Stage 7: the command line, ``python -m derive`` (also installed as ``bptt-derive``).

Contract: with no configuration option, ``--out-dir DIR`` writes the project's standard outputs
(what ``make derive`` commits in generated/); with configuration options it writes one gradient
module for that configuration. Without ``--out-dir`` it prints the derivation. ``--check`` runs
the proof of :mod:`derive.verify`. Invalid arguments exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from derive import notation
from derive.activations import ACTIVATIONS
from derive.codegen import BACKENDS
from derive.config import CELLS, LOSS_STEPS, LOSSES, OUTPUTS, Config
from derive.derivation import Derivation, derive
from derive.errors import DeriveError
from derive.printing.text import text
from derive.verify import prove

PROG = "bptt-derive"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One clear line and status 2, no usage block and no traceback."""
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def _steps(text: str) -> int | None:
    if text == "any":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int ≥ 1 or 'any', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int ≥ 1 or 'any', got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int ≥ 1, got {value}")
    return value


def _sizes(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected three ints ≥ 1 like 2,3,2, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Derive backpropagation through time (Eq. 33–47) by computer algebra, prove "
        "it, and generate NumPy gradient code and LaTeX notes.",
        epilog="Without configuration options, --out-dir writes the standard outputs of "
        "`make derive` (bptt_e3.py, bptt.py, __init__.py, notes/). With them, it writes one "
        "gradient module for that configuration.",
    )
    cfg = p.add_argument_group("configuration (default: the lecture's case)")
    cfg.add_argument(
        "--steps",
        type=_steps,
        default=argparse.SUPPRESS,
        metavar="N|any",
        help="time steps N (default 3); 'any' generates the loop form for any length",
    )
    cfg.add_argument(
        "--activation",
        default=argparse.SUPPRESS,
        choices=sorted(ACTIVATIONS),
        help="Φ (default tanh)",
    )
    cfg.add_argument(
        "--output",
        default=argparse.SUPPRESS,
        choices=OUTPUTS,
        help="output layer (default linear)",
    )
    cfg.add_argument(
        "--scale",
        default=argparse.SUPPRESS,
        metavar="C",
        help="κ in E_t = κ (d̄_t − ȳ_t)² (default 1; e.g. 1/2)",
    )
    cfg.add_argument(
        "--loss-steps",
        dest="loss_steps",
        default=argparse.SUPPRESS,
        choices=LOSS_STEPS,
        help="'last': E_N as in the lecture (default); 'all': Σ_t E_t",
    )
    cfg.add_argument(
        "--loss",
        default=argparse.SUPPRESS,
        choices=LOSSES,
        help="'squared-error' (default; Eq. 35) or 'cross-entropy' (needs --output softmax)",
    )
    cfg.add_argument(
        "--truncate",
        type=_positive,
        default=argparse.SUPPRESS,
        metavar="K",
        help="truncated BPTT: back-propagate each E_t through s̄_t … s̄_(t-K+1) only",
    )
    cfg.add_argument(
        "--cell",
        default=argparse.SUPPRESS,
        choices=CELLS,
        help="'rnn': the lecture's (default); 'gru' or 'lstm': a gated cell (PyTorch's equations)",
    )
    p.add_argument(
        "--backend",
        default="numpy",
        choices=sorted(BACKENDS),
        help="the generated module's backend (default numpy)",
    )
    p.add_argument("--out-dir", metavar="DIR", help="write generated files into DIR")
    p.add_argument(
        "--check",
        action="store_true",
        help="prove the closed forms equal the entry-wise derivatives of the explicit loss",
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=(3, 3, 3),
        metavar="NX,NS,NY",
        help="sizes for --check (default 3,3,3)",
    )
    p.add_argument(
        "--points",
        type=int,
        default=3,
        metavar="K",
        help="random rational points for --check (default 3)",
    )
    return p


CONFIG_KEYS = ("steps", "activation", "output", "scale", "loss_steps", "loss", "truncate", "cell")


def summary(d: Derivation) -> list[str]:
    """The derivation as plain text: each weight's chain-rule terms and closed forms."""
    lines = [f"configuration: {d.config.describe()}"]
    for name, expansion in d.expansions.items():
        lines.append(f"dE/d{name} = sum of {len(expansion.terms)} chain-rule term(s):")
        for term, expr in zip(expansion.terms, d.closed.expanded[name], strict=True):
            chain = " · ".join(
                f"∂{notation.text_name(f.numerator.name)}/∂{notation.text_name(f.denominator.name)}"
                for f in term.factors
            )
            lines.append(f"  {chain}")
            lines.append(f"    = {text(expr)}")
    lines.append("backward recurrence:")
    for line in d.closed.recurrence:
        lines.append(f"  {text(line.target)} = {text(line.expression)}")
    for name, expr in d.closed.collected.items():
        lines.append(f"  dE/d{name} = {text(expr)}")
    gen = d.closed.generic
    lines.append("for any number of steps N, at t = N and at t < N:")
    for line in (*gen.last, *gen.step):
        lines.append(f"  {text(line.target)} = {text(line.expression)}")
    for name, sums in gen.sums.items():
        parts = " + ".join(
            f"Σ_t {text(part.summand)}" if part.steps == "all" else text(part.summand)
            for part in sums
        )
        lines.append(f"  dE/d{name} = {parts}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    given = {k: getattr(args, k) for k in CONFIG_KEYS if hasattr(args, k)}
    if args.points < 1:
        return _fail(f"--points: expected an int ≥ 1, got {args.points}")
    try:
        steps = given.get("steps", 3)
        config_fields = {**given, "steps": 3 if steps is None else steps}
        config = Config(**config_fields)
    except (ValueError, TypeError) as exc:
        return _fail(f"--{str(exc).split(':')[0].replace('_', '-')}: {str(exc).split(': ', 1)[1]}")
    fixed = given.get("steps", 3) is not None
    if fixed and config.truncate is not None and config.truncate >= config.steps:
        return _fail(
            f"--truncate: K = {config.truncate} ≥ N = {config.steps} steps cuts nothing "
            f"(full BPTT); give K < N, or --steps any"
        )
    try:
        if args.check:
            if given.get("steps", 3) is None:
                return _fail("--check: needs a number of steps, got --steps any")
            proof = prove(derive(config), args.sizes, points=args.points)
            print("\n".join(proof.lines()))
            if not proof.ok:
                return 1
        if args.out_dir is not None:
            from derive import generate

            start = time.perf_counter()
            if given or args.backend != "numpy":
                files = generate.module_files(
                    config, loop=given.get("steps", 3) is None, backend=args.backend
                )
            else:
                files = generate.standard_files()
            written = generate.write(args.out_dir, files)
            print(
                f"wrote {len(written)} of {len(files)} file(s) into {args.out_dir} "
                f"({len(files) - len(written)} unchanged) in {time.perf_counter() - start:.1f} s"
            )
        elif not args.check:
            print("\n".join(summary(derive(config))))
    except DeriveError as exc:
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
