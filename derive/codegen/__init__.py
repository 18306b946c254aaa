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
from dataclasses import dataclass
from typing import Any

from derive.codegen import numpy_loop, numpy_straight, plan_loop, plan_straight
from derive.codegen.describe import model_text
from derive.config import Config
from derive.derivation import Derivation
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
        if loop:
            ctx = numpy_loop.context(d, plan_loop.plan(d), text, printer, name)
        else:
            ctx = numpy_straight.context(d, plan_straight.plan(d), text, printer, name)
        return format_python(render(ctx.template, ctx), f"{name}.py")


BACKENDS: dict[str, Backend] = {"numpy": NumPyBackend("numpy")}


def module_name(config: Config, *, loop: bool, backend: str = "numpy") -> str:
    """A file name for a configuration:
    ``bptt_<activation>_<output>_<se|ce>_<loss steps>_c<c>_T<steps>[_K<truncate>][_<backend>]``
    (the NumPy backend's modules carry no backend suffix)."""
    act = re.sub(r"\W+", "", config.activation_name.lower())[:24] or "user"
    loss = {"squared-error": "se", "cross-entropy": "ce"}[config.loss]
    scale = str(config.scale).replace("/", "over")
    steps = "any" if loop else str(config.steps)
    window = "" if config.truncate is None else f"_K{config.truncate}"
    suffix = "" if backend == "numpy" else f"_{backend}"
    name = f"bptt_{act}_{config.output}_{loss}_{config.loss_steps}_c{scale}_T{steps}"
    return f"{name}{window}{suffix}"


def package_init(module_files: Sequence[str]) -> str:
    mods = [f[:-3] for f in module_files]
    return format_python(render("__init__.py.jinja", {"modules": mods}), "__init__.py")


def module_source(derivation: Derivation, *, loop: bool, name: str, backend: str = "numpy") -> str:
    """The formatted source of one gradient module for ``derivation``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {sorted(BACKENDS)}, got {backend!r}")
    return BACKENDS[backend].source(derivation, loop=loop, name=name)
