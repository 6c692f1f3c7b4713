"""Integration fixtures: a real listener process on the example provider, paired with this home."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener

# A child that writes its exact environment (NUL-separated) to the file named by its argument.
ENV_DUMPER = (
    "import os, sys\n"
    "open(sys.argv[1], 'wb').write(b'\\0'.join(k + b'=' + v for k, v in sorted(os.environb.items())))\n"
)


def read_env_dump(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    pairs = [item.split(b"=", 1) for item in data.split(b"\0") if item]
    return {k.decode(): v.decode("utf-8", "surrogateescape") for k, v in pairs}


@pytest.fixture(scope="module")
def listener() -> Iterator[RunningListener]:
    """One listener per test module, its home's consumer paired with scope `*`."""
    with RunningListener() as running:
        running.pair()
        yield running


@pytest.fixture
def python() -> str:
    return sys.executable
