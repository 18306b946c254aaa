"""Stage 6: templates and files. The jinja2 environment, one ``render()``, atomic writes.

Contract: templates receive frozen dataclasses of already-printed strings and only arrange them;
:func:`render` fails loudly on any undefined name (``StrictUndefined``). :func:`write_files`
writes a whole set of outputs or none: every file is rendered first, then written next to its
destination and moved into place with ``os.replace``; an exception before the moves leaves the
previous output untouched. Generated Python goes through the project's formatter (ruff, pinned)
inside the generator, so it is byte-reproducible and passes the same lint as hand-written code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from derive.errors import GenerationError

LINE_LENGTH = 100


def templates_dir() -> Path:
    """The templates: shipped inside the wheel as derive/_templates, else the repository's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise GenerationError(f"no templates found next to {here}")


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(template: str, context: Any, **extra: Any) -> str:
    """Render ``template`` with the fields of the dataclass ``context`` (plus ``extra``)."""
    if is_dataclass(context) and not isinstance(context, type):
        fields = {f: getattr(context, f) for f in asdict(context)}
    elif isinstance(context, Mapping):
        fields = dict(context)
    else:
        raise TypeError(f"context: expected a dataclass or a mapping, got {type(context).__name__}")
    try:
        return environment().get_template(template).render(**fields, **extra)
    except jinja2.TemplateError as exc:
        raise GenerationError(f"rendering {template} failed: {exc}") from exc


def format_python(source: str, name: str = "generated.py") -> str:
    """Format generated Python with ruff (the formatter the hand-written code uses)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--isolated",
            f"--line-length={LINE_LENGTH}",
            "--stdin-filename",
            name,
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise GenerationError(f"ruff could not format generated {name}: {proc.stderr.strip()}")
    return proc.stdout


def write_files(out_dir: str | os.PathLike[str], files: Mapping[str, str]) -> list[Path]:
    """Write ``files`` (relative path → text) under ``out_dir``, all or nothing.

    Everything is first written into a temporary directory inside ``out_dir`` (same file system),
    then each changed file is moved over its destination with ``os.replace``, the old one kept
    aside; if any move fails, the moves already made are undone. Unchanged files are not touched.
    Returns the paths written.
    """
    root = Path(out_dir)
    for rel in files:
        p = Path(rel)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"files: expected relative paths inside out_dir, got {rel!r}")
    root.mkdir(parents=True, exist_ok=True)
    done: list[tuple[Path, Path | None]] = []  # (destination, its previous version or None)
    with tempfile.TemporaryDirectory(prefix=".derive-", dir=root) as tmp:
        staged: list[tuple[Path, Path]] = []
        for i, (rel, text) in enumerate(sorted(files.items())):
            data = text.encode("utf-8")
            dest = root / rel
            if dest.is_file() and dest.read_bytes() == data:
                continue
            src = Path(tmp) / "new" / str(i)
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_bytes(data)
            staged.append((src, dest))
        try:
            for i, (src, dest) in enumerate(staged):
                dest.parent.mkdir(parents=True, exist_ok=True)
                backup = None
                if dest.exists():
                    backup = Path(tmp) / "old" / str(i)
                    backup.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(dest, backup)
                done.append((dest, backup))
                os.replace(src, dest)
        except BaseException:
            for dest, backup in reversed(done):
                if backup is not None:
                    os.replace(backup, dest)
                else:
                    dest.unlink(missing_ok=True)
            raise
    return [dest for dest, _ in done]
