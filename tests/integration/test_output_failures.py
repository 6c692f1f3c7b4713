"""The installed runwrap, a real listener: a failed write of the child's output shows in the status."""

from __future__ import annotations

import subprocess
from pathlib import Path

from runwrap.testing.listener import runwrap_executable

PROFILE = "credentials:\n  - domain: github.com\n    env:\n      GH_TOKEN: password\n"


def test_output_into_a_full_device_exits_1_with_one_line(listener, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(PROFILE)
    with open("/dev/full", "wb") as full:
        done = subprocess.run([runwrap_executable(), str(profile), "--", "yes"], env=listener.env, stdout=full,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30)
    assert done.returncode == 1
    assert done.stderr == b"runwrap: cannot write the child's stdout: No space left on device\n"
