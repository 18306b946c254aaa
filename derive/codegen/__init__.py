"""Stage 5→6: from a derivation to the source of a gradient module, through a plan and a backend.

Contract: :func:`module_source` takes a :class:`~derive.derivation.Derivation` (it never derives
anything itself), builds a backend-neutral plan of statements, straight-line for exactly N steps
(:mod:`~derive.codegen.plan_straight`) or a loop for any T (:mod:`~derive.codegen.plan_loop`),
and hands it to a :class:`Backend`, which chooses the printer, the templates and how arrays are
stored, and returns the formatted source. The module's interface (``forward``, ``loss``,
``gradients``, ``Gradients``, ``CONFIG``) is the templates'. The NumPy backend is the first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from derive.codegen import (
    numba_kernels,
    numpy_cell,
    numpy_loop,
    numpy_module,
    numpy_straight,
    plan_loop,
    plan_straight,
)
from derive.codegen.describe import model_text
from derive.config import Config
from derive.derivation import Derivation
from derive.errors import GenerationError
from derive.printing.numba import BPTTNumbaPrinter
from derive.printing.numpy import BPTTNumPyPrinter
from derive.render import format_python, render

__all__ = ["BACKENDS", "Backend", "module_name", "module_source", "package_init"]


@dataclass(frozen=True)
class Backend:
    """A target language: how a plan becomes the text of a module."""

    name: str

    def source(self, d: Derivation, *, loop: bool, name: str) -> str:
        raise NotImplementedError


class NumPyBackend(Backend):
    """NumPy modules: the reference backend, importing NumPy and the standard library only."""

    def source(self, d: Derivation, *, loop: bool, name: str) -> str:
        printer = BPTTNumPyPrinter(d.config.act)
        text = model_text(d)
        ctx: Any
        if d.config.cell != "rnn":
            _cell_form(d, loop)
            ctx = numpy_cell.context(d, plan_loop.plan(d), text, printer)
        elif loop:
            ctx = numpy_loop.context(d, plan_loop.plan(d), text, printer, name)
        else:
            ctx = numpy_straight.context(d, plan_straight.plan(d), text, printer, name)
        return format_python(render(ctx.template, ctx), f"{name}.py")


def _cell_form(d: Derivation, loop: bool) -> None:
    """A gated cell's module is the loop form (any T), full BPTT (issue 13)."""
    if not loop:
        raise GenerationError(
            f"cell {d.config.cell}: generated for any T only (the loop form); drop --fixed"
        )
    if d.config.truncate is not None:
        raise GenerationError(
            f"cell {d.config.cell}: truncated BPTT is generated for the lecture's RNN only "
            f"(truncate = {d.config.truncate})"
        )


class NumbaBackend(Backend):
    """Numba modules: the loop plan's statements as ``@njit`` kernels of explicit loops
    (:mod:`~derive.codegen.numba_kernels`), with the NumPy loop module's code kept for sizes at
    or above a line where BLAS is faster. Any T, or a fixed N checked on input."""

    # B·n_s² from which the NumPy/BLAS path runs, and the measurement behind it (bench/).
    # Measured (README, "The Numba backend"): per-step BLAS wins from B·n_s² ≈ 32768 (B = 8,
    # n = 64), and BLAS over every step from T·B·n_s² ≈ 32768 (T·B = 32, n = 32 about even).
    blas_line = 32768
    # T·B·n_s² from which products over every step and the weight-gradient sums call BLAS.
    dot_line = 32768

    def source(self, d: Derivation, *, loop: bool, name: str) -> str:
        if d.config.cell != "rnn":
            raise GenerationError(
                f"backend numba: the {d.config.cell.upper()} cell is generated for the NumPy "
                "backend only; use --backend numpy"
            )
        if d.config.truncate is not None:
            raise GenerationError(
                "backend numba: truncated BPTT is generated for the NumPy backend only "
                f"(truncate = {d.config.truncate}); use --backend numpy"
            )
        text = model_text(d)
        plan = plan_loop.plan(d)
        ctx = numpy_loop.context(d, plan, text, BPTTNumPyPrinter(d.config.act), name)
        kernels = numba_kernels.kernels(plan, BPTTNumbaPrinter(d.config.act))
        about = (
            "Compiled with Numba: the recurrences, the outputs, the loss and the weight "
            "gradients in @njit kernels of explicit loops over time, batch and units, compiled "
            "on first use for float32 or float64 and cached on disk (warmup() compiles them "
            f"now). From T·B·n_s² ≥ {self.dot_line} on, the products over every step and the "
            "weight-gradient sums are NumPy/BLAS calls (the loop module's code, _blas_forward, "
            "_blas_loss, _blas_gradients) with the recurrences still in kernels; from "
            f"B·n_s² ≥ {self.blas_line} on, one step's products are large enough for BLAS too, "
            "and that NumPy code runs alone."
        )
        fixed = "" if loop else f"exactly T = {d.config.steps}"
        steps = "None" if loop else str(d.config.steps)
        description = list(ctx.description)
        description[-len(ctx.description) :] = numpy_module.wrap(
            f"Configuration: {fixed or 'any T'}, {d.config.describe().split(', ', 1)[1]}.",
            f"Loss: {text.loss if loop else text.loss_fixed}.",
            about,
        )
        ctx = replace(
            ctx,
            template="bptt_numba.py.jinja",
            title=(
                f"{ctx.title} (Numba)"
                if loop
                else f"BPTT gradients of the lecture's RNN for exactly T = {d.config.steps} (Numba)"
            ),
            description=tuple(description),
            config_items=tuple(
                (k, {"backend": repr(self.name), "steps": steps}.get(k, v))
                for k, v in ctx.config_items
            ),
            steps=None if loop else d.config.steps,
        )
        source = render(
            ctx.template,
            ctx,
            kernels=(
                kernels.forward,
                kernels.loss,
                kernels.gradients,
                kernels.state_steps,
                kernels.delta_steps,
            ),
            state_steps_call=kernels.state_steps.arguments,
            delta_steps_call=tuple(
                f'w["{a}"]' if a in plan.bases else a for a in kernels.delta_steps.arguments
            ),
            state_steps_warm=_warm_call(kernels.state_steps, plan),
            delta_steps_warm=_warm_call(kernels.delta_steps, plan),
            numpy_prefix="blas_",
            blas_line=self.blas_line,
            dot_line=self.dot_line,
        )
        return format_python(source, f"{name}.py")


def _warm_call(kernel: numba_kernels.Kernel, plan: plan_loop.LoopPlan) -> str:
    """A call of a step kernel on warmup()'s arrays: x or d for (T, B, n), W for a matrix."""
    args = [
        "x" if a in plan.bases else "W" if a not in ("s_0",) else "s_0" for a in kernel.arguments
    ]
    return f"{kernel.name}({', '.join(args)})"


BACKENDS: dict[str, Backend] = {"numpy": NumPyBackend("numpy"), "numba": NumbaBackend("numba")}


def module_name(config: Config, *, loop: bool, backend: str = "numpy") -> str:
    """A file name for a configuration:
    ``bptt_<activation>_<output>_<se|ce>_<loss steps>_c<c>_T<steps>[_K<truncate>][_<backend>]``
    (the NumPy backend's modules carry no backend suffix); a gated cell's begins with the cell's
    name instead of ``bptt_<activation>``."""
    act = re.sub(r"\W+", "", config.activation_name.lower())[:24] or "user"
    head = "bptt_" + act if config.cell == "rnn" else config.cell
    loss = {"squared-error": "se", "cross-entropy": "ce"}[config.loss]
    scale = str(config.scale).replace("/", "over")
    steps = "any" if loop else str(config.steps)
    window = "" if config.truncate is None else f"_K{config.truncate}"
    suffix = "" if backend == "numpy" else f"_{backend}"
    name = f"{head}_{config.output}_{loss}_{config.loss_steps}_c{scale}_T{steps}"
    return f"{name}{window}{suffix}"


def package_init(module_files: Sequence[str], optional_files: Sequence[str] = ()) -> str:
    """generated/__init__.py: imports ``module_files``; ``optional_files`` (modules that need an
    optional extra, such as numba) are only named, to be imported by name."""
    mods = [f[:-3] for f in module_files]
    optional = [f[:-3] for f in optional_files]
    return format_python(
        render("__init__.py.jinja", {"modules": mods, "optional": optional}), "__init__.py"
    )


def module_source(derivation: Derivation, *, loop: bool, name: str, backend: str = "numpy") -> str:
    """The formatted source of one gradient module for ``derivation``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {sorted(BACKENDS)}, got {backend!r}")
    return BACKENDS[backend].source(derivation, loop=loop, name=name)
