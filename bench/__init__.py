"""Benchmarks of the generated BPTT modules (issue 5), run by ``python -m bench`` / ``make bench``.

Not part of the derivation: nothing in derive/ or generated/ imports this package. Modules:
:mod:`bench.cases` (the cases, the cells, seeded inputs, FLOP counts), :mod:`bench.impl` (what an
implementation is), :mod:`bench.peers` (the generated modules and the implementations they are
measured against, and their registry), :mod:`bench.gated` (the same for the GRU and the LSTM:
generated/gru.py and generated/lstm.py, nn.GRU, nn.LSTM, JAX), :mod:`bench.timing` (warm-up,
calibrated repetitions, median of rounds), :mod:`bench.machine` (CPU, BLAS, threads, the
float64 GEMM peak), :mod:`bench.run` (check, then time), :mod:`bench.report` (Markdown) and
:mod:`bench.derivation` (how long the generator and the proof take, and how they grow with N).
"""
