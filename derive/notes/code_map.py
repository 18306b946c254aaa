"""Stage 7 (notes, Section 8): where each equation label is implemented in the generated code.

Contract: :func:`code_spans` finds, in a generated module's source, the lines each label comment
heads (label → function and line range); :func:`_module_code` prints them as a table with links
relative to the notes. :func:`tags_in` and :func:`label_mismatch` compare the labels the notes
define with those the code cites, so the two can be put side by side.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass

from derive import labels
from derive.notes.common import tex_text


@dataclass(frozen=True)
class Lines:
    """A range of lines of a generated module."""

    text: str  # "87–95" (Markdown)
    tex: str  # "87--95"
    href: str  # "../bptt_e3.py#L87-L95", relative to the notes


@dataclass(frozen=True)
class Span:
    """The lines of one function of a generated module that implement an equation."""

    function: str
    function_tex: str
    lines: tuple[Lines, ...]


@dataclass(frozen=True)
class CodeRow:
    label: str  # "Eq. 38", as the code cites it
    ref: str  # "(38)", as the notes number it
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class ModuleCode:
    path: str
    path_tex: str
    href: str
    summary: str
    summary_tex: str
    rows: tuple[CodeRow, ...]


def code_spans(source: str) -> dict[str, list[tuple[str, int, int]]]:
    """label → (function, first line, last line) for each block the label heads in ``source``.

    A block runs from its label comment (and the comment lines right after it) over the
    statements that follow in the same statement list, up to the next label comment or the end
    of that list (a final ``return`` excluded); adjacent blocks of one label are merged.
    """
    lines = source.splitlines()
    cited = labels.cited_in_code(source)
    starts = sorted(line for line, _ in cited)
    functions = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    # Every statement with the statement list it belongs to (a body, an else branch …).
    siblings: dict[int, list[ast.stmt]] = {}
    for fn in functions:
        for node in ast.walk(fn):
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    for stmt in block:
                        if isinstance(stmt, ast.stmt):
                            siblings[stmt.lineno] = block
    out: dict[str, list[tuple[str, int, int]]] = {}
    for line, label in cited:
        fn = min(
            (f for f in functions if f.lineno <= line <= (f.end_lineno or f.lineno)),
            key=lambda f: (f.end_lineno or f.lineno) - f.lineno,
        )
        first = line
        while first < len(lines) and lines[first].lstrip().startswith("#"):
            first += 1  # the 0-based index `first` is the 1-based line after the comments
        first += 1
        stop = min([s for s in starts if s > first] + [(fn.end_lineno or line) + 1]) - 1
        block = [
            st
            for st in siblings.get(first, [])
            if first <= st.lineno <= stop and not (isinstance(st, ast.Return) and st.lineno > first)
        ]
        ends = [st.end_lineno or st.lineno for st in block]
        last = min(max(ends), stop) if ends else line
        spans = out.setdefault(label, [])
        if spans and spans[-1][0] == fn.name and spans[-1][2] + 1 >= line:
            spans[-1] = (fn.name, spans[-1][1], max(spans[-1][2], last))
        else:
            spans.append((fn.name, line, last))
    return out


def _label_key(label: str) -> tuple[int, int]:
    number = int(re.sub(r"\D", "", label))
    return (0, number) if label.startswith("Eq.") else (1, number)


def module_code(path: str, source: str) -> ModuleCode:
    summary = (ast.get_docstring(ast.parse(source)) or "").splitlines()[0]
    rows = []
    for label, found in sorted(code_spans(source).items(), key=lambda kv: _label_key(kv[0])):
        by_function: dict[str, list[Lines]] = {}
        for fn, a, b in found:
            by_function.setdefault(fn, []).append(
                Lines(
                    f"{a}–{b}" if a != b else str(a),
                    f"{a}--{b}" if a != b else str(a),
                    f"../{path}#L{a}-L{b}" if a != b else f"../{path}#L{a}",
                )
            )
        spans = tuple(Span(fn, tex_text(fn), tuple(lines)) for fn, lines in by_function.items())
        rows.append(CodeRow(label, f"({labels.tag(label)})", spans))
    where = f"generated/{path}"
    return ModuleCode(where, tex_text(where), f"../{path}", summary, tex_text(summary), tuple(rows))


def tags_in(notes: str) -> set[str]:
    """The labels a notes file defines, from its ``\\tag{…}``s (``38`` → ``Eq. 38``)."""
    return {
        f"Eq. {tag}" if tag.isdigit() else tag for tag in re.findall(r"\\tag\{([^}]*)\}", notes)
    }


def label_mismatch(modules: Mapping[str, str], notes: str) -> list[str]:
    """Why the labels cited in the code and defined in the notes disagree (empty if they agree).

    Every label cited in a module must be defined in the notes; every derived result the notes
    define (Eq. 36 onwards and R1–R5) must be cited in some module. The model's Eq. 33–35 may be
    defined without being cited.
    """
    cited = {label for source in modules.values() for _, label in labels.cited_in_code(source)}
    defined = tags_in(notes)
    model = {labels.STATE, labels.OUTPUT, labels.LOSS}
    problems = [
        f"{label} is cited in the code but not defined in the notes"
        for label in sorted(cited - defined)
    ]
    problems += [
        f"{label} is defined in the notes but cited in no generated module"
        for label in sorted(defined - cited - model)
    ]
    return problems
