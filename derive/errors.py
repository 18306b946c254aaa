"""Errors of the system itself (as opposed to bad user input, which raises ValueError/TypeError).

Contract: every failure that means "the derivation or the generator is wrong" raises a subclass of
:class:`DeriveError`, so callers and tests can tell a broken system from a rejected input.
"""

from __future__ import annotations


class DeriveError(Exception):
    """Base class for failures of bptt-derive itself."""


class ProofError(DeriveError):
    """A derived formula did not equal the entry-wise derivative of the explicit loss."""


class GenerationError(DeriveError):
    """Rendering or writing generated files failed; the previous output was left intact."""
