"""`2>&1` keeps the order the child wrote in, even while the masker holds a tail that could begin a
secret (`cor` of `correct-horse-...`): the held bytes are not overtaken by later stderr output."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.polling import wait_for

from .supervisor_support import PYTHON

SECRET = b"correct-horse-battery-staple"

# stdout "x cor" (held: it could begin the secret), then stderr "err", then — once the test has seen
# "err" arrive — stdout "e" and the secret itself.
CHILD = """
import os, sys, time
os.write(1, b"x cor")
os.write(2, b"err\\n")
for _ in range(3000):  # 30 s at most
    if os.path.exists(sys.argv[1]):
        break
    time.sleep(0.01)
os.write(1, b"e\\n" + os.environb[b"T"] + b"\\n")
"""
EXPECTED = b"x corerr\ne\n***\n"


def run_child(procs, tmp_path: Path, stdout: object, stderr: object, arrived) -> subprocess.Popen[bytes]:
    (tmp_path / "secret").write_bytes(SECRET)
    go = tmp_path / "go"
    driver = procs.start(["--secret", f"T={tmp_path / 'secret'}"], [PYTHON, "-c", CHILD, str(go)],
                         stdout=stdout, stderr=stderr)
    wait_for(arrived, timeout=30, what="the child's stderr line")
    go.touch()
    return driver


@pytest.mark.parametrize("how", ["2>&1", ">>f 2>>f"])
def test_stdout_and_stderr_into_one_file_keep_the_childs_order(procs, tmp_path: Path, how: str) -> None:
    out = tmp_path / "out"
    first = open(out, "ab")
    second = first if how == "2>&1" else open(out, "ab")
    try:
        driver = run_child(procs, tmp_path, first, second, lambda: b"err\n" in out.read_bytes())
        assert driver.wait(timeout=30) == 0
    finally:
        for f in {first, second}:
            f.close()
    assert out.read_bytes() == EXPECTED


def test_stdout_and_stderr_into_one_pipe_keep_the_childs_order(procs, tmp_path: Path) -> None:
    read, write = os.pipe()
    os.set_blocking(read, False)
    got = bytearray()

    def arrived() -> bool:
        try:
            got.extend(os.read(read, 4096))
        except BlockingIOError:
            pass
        return b"err\n" in got

    try:
        driver = run_child(procs, tmp_path, write, subprocess.STDOUT, arrived)
        os.close(write)
        write = -1
        os.set_blocking(read, True)
        while chunk := os.read(read, 4096):
            got.extend(chunk)
        assert driver.wait(timeout=30) == 0
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    assert bytes(got) == EXPECTED


def test_two_separate_opens_of_a_file_stay_two_streams(procs, tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(SECRET)
    code = "import os; os.write(1, b'out ' + os.environb[b'T']); os.write(2, b'err')"
    out = tmp_path / "out"
    with open(out, "wb") as one, open(out, "r+b") as two:
        done = procs.run(["--secret", f"T={tmp_path / 'secret'}"], [PYTHON, "-c", code], stdout=one, stderr=two)
    assert done.returncode == 0
    assert out.read_bytes() in (b"err ***", b"out ***")  # each wrote at its own offset 0, as without runwrap
