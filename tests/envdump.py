"""A child that reports its exact environment, for tests that check it byte for byte."""

from __future__ import annotations

from pathlib import Path

# Run as `python -c ENV_DUMPER FILE`: writes the environment, NUL-separated, sorted, to FILE.
ENV_DUMPER = (
    "import os, sys\n"
    "open(sys.argv[1], 'wb').write(b'\\0'.join(k + b'=' + v for k, v in sorted(os.environb.items())))\n"
)


def read_env_dump(path: Path) -> dict[str, str]:
    pairs = [item.split(b"=", 1) for item in path.read_bytes().split(b"\0") if item]
    return {k.decode(): v.decode("utf-8", "surrogateescape") for k, v in pairs}
