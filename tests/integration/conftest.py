"""Integration fixtures (the module-scoped `listener` is in tests/conftest.py)."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def python() -> str:
    return sys.executable
