"""Stage 5: printers. Expressions of the derivation become text here and nowhere else.

:mod:`derive.printing.numpy` prints NumPy code for the generated modules;
:mod:`derive.printing.latex` prints LaTeX for the notes (with the lecture's notation table).
"""
