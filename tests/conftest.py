"""Shared fixtures: a fixed seed for every test, and the repository's paths."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(1234)
    np.random.seed(1234)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)
