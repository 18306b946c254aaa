"""Build output of the notes: the PDF of ``generated/notes/bptt.tex`` and PNGs of its pages.

Contract: ``python -m derive.notes_pdf generated/notes/bptt.tex`` (what ``make notes`` runs)
compiles the .tex with latexmk (pdflatex, ``-halt-on-error``) in ``build/`` beside it, copies
``bptt.pdf`` next to the .tex and renders every page to ``bptt-<page>.png`` with pdftoppm;
``--readme-image PATH`` also writes page 1 at a fixed size for the README. The compile log is
checked by :func:`log_problems`: a LaTeX error, an undefined reference or citation, or an overfull
box wider than 10 pt fails the build. Exit status 0 on success, 1 when the notes do not compile
cleanly, 2 when latexmk or pdftoppm is missing. The PDF and PNGs are build output (git-ignored);
only the README's image is committed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

OVERFULL_LIMIT_PT = 10.0
PAGE_DPI = 110  # the PNGs of every page, for looking at the notes
README_DPI = 96  # page 1 for the README: an A4 page 794 px wide

_OVERFULL = re.compile(r"^Overfull \\[hv]box \((\d+(?:\.\d+)?)pt too (?:wide|high)\)(.*)$", re.M)
_UNDEFINED = re.compile(
    r"^(?:LaTeX|Package \w+) Warning: (?:Reference|Citation|Hyper reference) .*undefined.*$"
    r"|^LaTeX Warning: There were undefined references\.$",
    re.M,
)
# "! …" or, with -file-line-error, "./bptt.tex:12: …" (warnings never take either form).
_ERROR = re.compile(r"^(?:!|\S+\.(?:tex|sty|cls|def|cfg|fd|clo):\d+:) .*$", re.M)
_PAGES = re.compile(r"^Output written on .*\((\d+) pages?, \d+ bytes\)\.$", re.M)


class NotesBuildError(Exception):
    """The notes did not compile cleanly; the message says why."""


@dataclass(frozen=True)
class Build:
    pdf: Path
    pages: int
    log: str
    seconds: float


def tool(name: str) -> str:
    """The path of an external program, or a clear error saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(
            f"{name} not found on PATH: install TeX Live and poppler, e.g. on Debian "
            "`sudo .ci/install-notes-deps` (texlive-latex-base, texlive-latex-recommended, "
            "texlive-latex-extra, texlive-pictures, latexmk, poppler-utils)"
        )
    return path


def log_problems(log: str, limit_pt: float = OVERFULL_LIMIT_PT) -> list[str]:
    """Errors, undefined references and overfull boxes wider than ``limit_pt`` in a TeX log."""
    problems = [f"LaTeX error: {m.group(0).strip()}" for m in _ERROR.finditer(log)]
    problems += [f"undefined: {m.group(0).strip()}" for m in _UNDEFINED.finditer(log)]
    for m in _OVERFULL.finditer(log):
        if float(m.group(1)) > limit_pt:
            problems.append(f"overfull box, {m.group(1)}pt (limit {limit_pt:g}pt):{m.group(2)}")
    return problems


def page_count(log: str) -> int:
    found = _PAGES.findall(log)
    if not found:
        raise NotesBuildError("the log says no PDF was written")
    return int(found[-1])


def compile_tex(tex: Path, build_dir: Path) -> Build:
    """Compile ``tex`` with latexmk into ``build_dir``; raise if the log shows any problem."""
    latexmk = tool("latexmk")
    build_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # A fixed date and ID make the PDF itself reproducible (pdfTeX honours these variables).
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}
    proc = subprocess.run(
        [
            latexmk,
            "-pdf",
            "-halt-on-error",
            "-interaction=nonstopmode",
            "-file-line-error",
            f"-outdir={build_dir.resolve()}",
            tex.name,
        ],
        cwd=tex.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    log_path = build_dir / f"{tex.stem}.log"
    log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    problems = log_problems(log)
    if proc.returncode != 0 and not problems:
        problems = [f"latexmk exited with status {proc.returncode}: {proc.stdout[-2000:]}"]
    if problems:
        raise NotesBuildError(f"{tex} ({log_path}):\n  " + "\n  ".join(problems))
    pdf = build_dir / f"{tex.stem}.pdf"
    return Build(pdf, page_count(log), log, time.perf_counter() - start)


def render_pages(pdf: Path, prefix: Path, pages: int, dpi: int = PAGE_DPI) -> list[Path]:
    """``<prefix>-<n>.png`` for every page (numbers not zero-padded, whatever the count)."""
    pdftoppm = tool("pdftoppm")
    out = []
    for n in range(1, pages + 1):
        target = prefix.parent / f"{prefix.name}-{n}"
        page = ["-f", str(n), "-l", str(n), "-singlefile"]
        subprocess.run([pdftoppm, "-png", "-r", str(dpi), *page, str(pdf), str(target)], check=True)
        out.append(target.with_suffix(".png"))
    return out


# The page's text block (a4, geometry margin=2.5cm): ink below it is the page number.
_PAGE_CM = 29.7
_MARGIN_CM = 2.5
EMPTY_LIMIT = 0.30  # the "no page with more than 30 % empty space except section ends"
_HEADING = re.compile(r"^\s*(?:\d+|[A-Z])\s+[A-Z]")  # "4 The state weights", "A Verification"


@dataclass(frozen=True)
class PageFill:
    """How much of a page's text block is left empty at its bottom."""

    page: int
    empty: float  # fraction of the text block's height below the last line of ink
    section_end: bool  # the next page starts a section (or this is the last page)


def page_fill(pdf: Path, pages: int, dpi: int = 40) -> list[PageFill]:
    """The empty bottom of every page, measured on a grey rendering of the page (the last row of
    the text block with any ink) and the next page's first line of text (a section heading?)."""
    pdftoppm, pdftotext = tool("pdftoppm"), tool("pdftotext")
    out = []
    for n in range(1, pages + 1):
        page = ["-f", str(n), "-l", str(n)]
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "page"
            cmd = [pdftoppm, "-gray", "-r", str(dpi), *page, "-singlefile", str(pdf), str(target)]
            subprocess.run(cmd, check=True, capture_output=True)
            width, height, pixels = _pgm(target.with_suffix(".pgm").read_bytes())
        top = round(height * _MARGIN_CM / _PAGE_CM)
        bottom = round(height * (_PAGE_CM - _MARGIN_CM) / _PAGE_CM)
        ink = [y for y in range(top, bottom) if min(pixels[y * width : (y + 1) * width]) < 160]
        last = ink[-1] if ink else top
        section_end = n == pages
        if not section_end:
            nxt = ["-f", str(n + 1), "-l", str(n + 1)]
            text = subprocess.run(
                [pdftotext, "-layout", *nxt, str(pdf), "-"], check=True, capture_output=True
            ).stdout.decode()
            first = next((line for line in text.splitlines() if line.strip()), "")
            section_end = bool(_HEADING.match(first))
        out.append(PageFill(n, (bottom - last) / (bottom - top), section_end))
    return out


def _pgm(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, pixels) of a binary PGM (P5) with 8-bit samples."""
    fields = data.split(maxsplit=4)
    if fields[0] != b"P5" or int(fields[3]) > 255:
        raise ValueError("expected an 8-bit binary PGM from pdftoppm -gray")
    width, height = int(fields[1]), int(fields[2])
    return width, height, fields[4][-width * height :]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m derive.notes_pdf",
        description="Compile the notes to PDF with latexmk and render their pages to PNG.",
    )
    parser.add_argument("tex", type=Path, help="the notes, e.g. generated/notes/bptt.tex")
    parser.add_argument(
        "--readme-image",
        type=Path,
        metavar="PATH",
        help=f"also write page 1 to PATH at {README_DPI} dpi (the README's picture)",
    )
    args = parser.parse_args(argv)
    tex: Path = args.tex
    if not tex.is_file():
        print(f"notes_pdf: error: {tex}: no such file (run `make derive` first)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        tool("latexmk")
        tool("pdftoppm")
        build = compile_tex(tex, tex.parent / "build")
    except FileNotFoundError as exc:
        print(f"notes_pdf: error: {exc}", file=sys.stderr)
        return 2
    except NotesBuildError as exc:
        print(f"notes_pdf: the notes do not compile cleanly: {exc}", file=sys.stderr)
        return 1
    pdf = tex.with_suffix(".pdf")
    shutil.copyfile(build.pdf, pdf)
    pngs = render_pages(pdf, tex.with_suffix(""), build.pages)
    if args.readme_image is not None:
        args.readme_image.parent.mkdir(parents=True, exist_ok=True)
        (image,) = render_pages(pdf, build.pdf.with_name("readme"), 1, dpi=README_DPI)
        shutil.copyfile(image, args.readme_image)
        pngs.append(args.readme_image)
    fills = page_fill(pdf, build.pages)
    worst = max((f for f in fills if not f.section_end), key=lambda f: f.empty, default=None)
    print(
        f"notes_pdf: wrote {pdf} ({build.pages} pages) and {len(pngs)} PNG(s), page 1 in "
        f"{pngs[0]}; {time.perf_counter() - start:.1f} s"
    )
    if worst is not None:
        print(
            f"notes_pdf: the largest empty page bottom not at a section's end: "
            f"{worst.empty:.0%} of the text block (page {worst.page})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
