"""A write of the child's output that fails is not swallowed: the child finds out at its next write,
as it would have without runwrap, and runwrap's exit status shows the failure (README, exit statuses)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from .supervisor_support import DRIVER, PYTHON

SECRET = b"correct-horse-battery-staple"
FULL = "runwrap: cannot write the child's stdout: No space left on device\n"

# Writes up to 200 chunks of 64 KiB and records how many went through before a write failed.
COUNTING_WRITER = """
import os, sys
done = 0
try:
    for done in range(200):
        os.write(1, b"y" * 65536)
    done = 200
except BrokenPipeError:
    pass
open(sys.argv[1], "w").write(str(done))
"""


def secret_args(tmp_path: Path) -> list[str]:
    (tmp_path / "secret").write_bytes(SECRET)
    return ["--secret", f"T={tmp_path / 'secret'}"]


def test_a_child_whose_output_cannot_be_written_does_not_make_runwrap_exit_0(procs, tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        done = procs.run(secret_args(tmp_path), ["sh", "-c", "echo 1"], stdout=full)  # one write, then exit 0
    assert done.returncode == 1
    assert done.stderr.decode() == FULL


def test_a_writer_into_a_full_device_fails_at_its_next_writes_not_after_all_of_them(procs, tmp_path: Path) -> None:
    count = tmp_path / "count"
    with open("/dev/full", "wb") as full:
        done = procs.run(secret_args(tmp_path), [PYTHON, "-c", COUNTING_WRITER, str(count)], stdout=full)
    assert int(count.read_text()) < 10  # its writes failed (EPIPE) within the pipe's buffer, not 200 later
    assert done.returncode == 1  # the child exited 0: runwrap's status shows the lost output
    assert done.stderr.decode() == FULL


def test_yes_into_a_full_device_ends(procs, tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        done = procs.run(secret_args(tmp_path), ["yes"], stdout=full, timeout=30)
    assert done.returncode == 1  # yes died of the SIGPIPE runwrap's closing caused: not its own failure
    assert done.stderr.decode() == FULL


def test_a_child_that_fails_by_itself_keeps_its_status(procs, tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        done = procs.run(secret_args(tmp_path), ["sh", "-c", "echo x; exit 3"], stdout=full)
    assert done.returncode == 3


def test_a_full_stderr_is_not_swallowed_either(procs, tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        done = procs.run(secret_args(tmp_path), ["sh", "-c", "echo x >&2"], stderr=full)
    assert done.returncode == 1
    assert done.stdout == b""


def test_a_reader_that_leaves_ends_the_writes_and_the_status_is_the_childs(procs, tmp_path: Path) -> None:
    count = tmp_path / "count"
    driver = shlex.join([*DRIVER, *secret_args(tmp_path), "--", PYTHON, "-c", COUNTING_WRITER, str(count)])
    done = subprocess.run(["bash", "-c", f'{driver} | head -c 1 >/dev/null; echo "status=${{PIPESTATUS[0]}}"'],
                          env=procs.env(), capture_output=True, timeout=30)
    assert done.stdout == b"status=0\n", done.stderr  # a reader leaving is no error of runwrap's
    assert int(count.read_text()) < 10
    assert done.stderr == b""


def test_yes_piped_to_head_dies_of_sigpipe_as_without_runwrap(procs, tmp_path: Path) -> None:
    driver = shlex.join([*DRIVER, *secret_args(tmp_path), "--", "yes"])
    done = subprocess.run(["bash", "-c", f'{driver} | head -1; echo "status=${{PIPESTATUS[0]}}"'],
                          env=procs.env(), capture_output=True, timeout=30)
    assert done.stdout == b"y\nstatus=141\n", done.stderr
