"""Wire fixtures: a real `runwrap listen` process whose home's consumer is paired with scope `*`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runwrap.testing.listener import RunningListener


@pytest.fixture(scope="module")
def paired() -> Iterator[RunningListener]:
    with RunningListener() as running:
        running.pair()
        yield running
