"""Fixtures for the supervisor's tests (the tools are in supervisor_support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .supervisor_support import Processes


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    try:
        yield p
    finally:
        p.cleanup()
