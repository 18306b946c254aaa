"""The Numba backend's committed modules for the tests, or a skip when numba is missing.

Outside CI a missing numba skips the Numba tests with the install hint; under CI=true (where
`.ci/run` installs the `numba` extra) it fails them, as the TeX tests do for TeX.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest

IN_CI = os.environ.get("CI") == "true"
HINT = "pip install 'bptt-derive[numba]'"
NAMES = ("bptt_numba", "bptt_e3_numba")


def load(name: str) -> Any:
    """generated.<name>, or a skip (a failure under CI=true) when numba cannot be imported."""
    try:
        return importlib.import_module(f"generated.{name}")
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"numba is missing under CI=true ({exc}); .ci/run installs it")
        pytest.skip(f"numba is not installed: {HINT}")


def params() -> list[Any]:
    """pytest params of the Numba modules: loaded at collection, or one skipped param."""
    try:
        return [pytest.param(importlib.import_module(f"generated.{n}"), id=n) for n in NAMES]
    except ImportError as exc:
        if IN_CI:
            raise
        return [pytest.param(None, id="numba", marks=pytest.mark.skip(reason=f"{HINT} ({exc})"))]
