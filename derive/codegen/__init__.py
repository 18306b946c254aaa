"""Stage 5→6: from closed forms to the printed statements of a NumPy gradient module.

Contract: :func:`module_source` turns a configuration into the formatted source of a module with
the interface ``forward``, ``loss``, ``gradients``, ``Gradients``, ``CONFIG`` (see the templates),
in one of two forms: straight-line for exactly N steps (:mod:`derive.codegen.straight`) or a loop
for any T (:mod:`derive.codegen.loop`).

Every expression is printed by :class:`~derive.printing.numpy.BPTTNumPyPrinter` from the
derivation; the decisions about *which* expression goes where (hoisting, the stacked sums,
Φ' written through s̄_t, in-place writes) are made in Python, and the templates only arrange
the lines. Arrays in generated code are row-stacked: a step's rows are the batch, so the
lecture's row-vector formulas apply to a whole batch unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from derive import model as m
from derive.codegen import loop as loop_form
from derive.codegen import straight
from derive.codegen.common import dphi_through_states, matrix_cse, rename
from derive.derivation import derive
from derive.printing.numpy import BPTTNumPyPrinter
from derive.render import format_python, render

__all__ = [
    "dphi_through_states",
    "matrix_cse",
    "module_name",
    "module_source",
    "package_init",
    "rename",
]


def module_name(config: m.Config, *, loop: bool) -> str:
    """A file name for a configuration: ``bptt_<activation>_<output>_<loss>_c<c>_T<steps>``."""
    act = re.sub(r"\W+", "", config.activation_name.lower())[:24] or "user"
    scale = str(config.scale).replace("/", "over")
    steps = "any" if loop else str(config.steps)
    return f"bptt_{act}_{config.output}_{config.loss_steps}_c{scale}_T{steps}"


def package_init(module_files: Sequence[str]) -> str:
    mods = [f[:-3] for f in module_files]
    return format_python(render("__init__.py.jinja", {"modules": mods}), "__init__.py")


def module_source(config: m.Config, *, loop: bool, name: str) -> str:
    """The formatted source of one gradient module for ``config``."""
    printer = BPTTNumPyPrinter(config.act)
    if loop:
        # printed from a 3-step derivation: its step 3 is the last step, step 2 a middle one
        ctx: straight.StraightContext | loop_form.LoopContext = loop_form.context(
            derive(_with_steps(config, 3)), printer, name
        )
    else:
        ctx = straight.context(derive(config), printer, name)
    return format_python(render(ctx.template, ctx), f"{name}.py")


def _with_steps(config: m.Config, steps: int) -> m.Config:
    return m.Config(
        steps=steps,
        activation=config.activation,
        output=config.output,
        scale=config.scale,
        loss_steps=config.loss_steps,
    )
