"""Fixtures shared by the test folders that run the installed `runwrap` against a real listener."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runwrap.testing.listener import RunningListener


@pytest.fixture(scope="module")
def listener() -> Iterator[RunningListener]:
    """One listener per test module (the example provider), its home's consumer paired with scope `*`."""
    with RunningListener() as running:
        running.pair()
        yield running
