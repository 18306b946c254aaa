"""Stage 6 (assembly): which files a run of the generator writes, rendered in memory first.

Contract: :func:`standard_files` returns every file of the committed generated/ tree (relative
path → text): the lecture's straight-line module ``bptt_e3.py``, the loop module ``bptt.py``,
``__init__.py`` and the notes. :func:`module_files` returns one module for any configuration.
Nothing is written here; :func:`write` hands the finished set to :func:`derive.render.write_files`
(all or nothing).
"""

from __future__ import annotations

import os
from pathlib import Path

from derive import codegen
from derive import model as m
from derive.render import write_files

# The two modules committed in generated/ and the configurations they are generated from.
LECTURE = m.Config()  # N = 3, tanh, linear, c = 1, E_3
TOTAL = m.Config(loss_steps="all")  # the loop module: any T, Σ_t E_t


def module_sources() -> dict[str, str]:
    """The committed gradient modules, path relative to generated/ → formatted source."""
    return {
        "bptt_e3.py": codegen.module_source(LECTURE, loop=False, name="bptt_e3"),
        "bptt.py": codegen.module_source(TOTAL, loop=True, name="bptt"),
    }


def standard_files() -> dict[str, str]:
    """Everything `make derive` commits in generated/."""
    from derive import notes

    modules = module_sources()
    files = dict(modules)
    files["__init__.py"] = codegen.package_init(sorted(modules))
    files.update(notes.notes_files(modules))
    return files


def module_files(config: m.Config, *, loop: bool) -> dict[str, str]:
    """One module for ``config``: the loop form (any T) or the straight-line form (T = N)."""
    name = codegen.module_name(config, loop=loop)
    return {f"{name}.py": codegen.module_source(config, loop=loop, name=name)}


def write(out_dir: str | os.PathLike[str], files: dict[str, str]) -> list[Path]:
    return write_files(out_dir, files)
