"""Secret hygiene: no secret left in the supervisor's memory once the child ended, and the
supervisor's memory and environment are out of reach of other processes of its uid."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.polling import wait_for

from .supervisor_support import DRIVER, PYTHON, running

NOBODY = 65534


def readable_memory(pid: int) -> Iterator[tuple[str, bytes]]:
    """Every readable mapping of `pid` (as root, which non-dumpable does not stop)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                yield line.strip(), mem.read(end - start)
            except OSError:
                continue


def test_no_secret_in_the_supervisors_memory_after_the_child_ended(procs, tmp_path: Path) -> None:
    secret = f"S3cret-{uuid.uuid4().hex}".encode()
    (tmp_path / "secret").write_bytes(secret)
    lease = tmp_path / "lease"
    lease.mkdir()
    # The child prints the secret (masked on the way) and leaves a TERM-ignoring grandchild, which
    # keeps the supervisor in its 30 s kill grace: its memory is read then.
    script = ('echo "$TOKEN"; echo "$TOKEN" >&2; printf %s "$TOKEN" | base64; '
              'sh -c \'trap "" TERM; touch "$0"; exec sleep 1000\' "$1" & '
              'while [ ! -e "$1" ]; do sleep 0.01; done; exit 0')
    driver = procs.start(["--secret", f"TOKEN={tmp_path / 'secret'}", "--kill-grace", "30",
                          "--lease", str(lease)], ["sh", "-c", script, "sh", str(tmp_path / "trapped")])
    wait_for(lambda: (lease / "end").exists(), what="the child's end (reported after the wipe)")
    [grandchild] = wait_for(lambda: running(procs.mark, ["sleep", "1000"]), what="the grandchild")
    assert driver.poll() is None  # still in its kill grace
    with open(f"/proc/{grandchild}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == driver.pid  # reparented: a subreaper
    needles = [secret, base64.b64encode(secret)[:-4], secret.decode().encode("utf-16-le")]
    found = [(where, needle) for where, data in readable_memory(driver.pid) for needle in needles
             if needle in data]
    assert found == []
    # Control: the same search finds the value where it is (the child's environment).
    assert any(secret in data for _, data in readable_memory(grandchild))
    os.kill(grandchild, 9)
    out, err = driver.communicate(timeout=20)
    assert driver.returncode == 0
    assert secret not in out + err
    assert out.startswith(b"***\n") and err == b"***\n"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="runwrap-hygiene-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_nobody(*argv: str) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


PEEK = r"""
import json, sys
pid = int(sys.argv[1])
result = {}
for what in ("environ", "maps", "mem"):
    try:
        with open(f"/proc/{pid}/{what}", "rb") as f:
            if what == "mem":  # read at the start of the first mapping
                f.seek(int(open(f"/proc/{pid}/maps").read().split("-", 1)[0], 16))
            f.read(1)
        result[what] = "read"
    except OSError as exc:
        result[what] = type(exc).__name__
print(json.dumps(result))
"""


def test_another_process_of_the_same_uid_cannot_read_the_supervisor(procs, shared_dir: Path) -> None:
    secret = shared_dir / "secret"
    secret.write_bytes(b"hunter2-but-longer")
    os.chown(secret, NOBODY, NOBODY)
    secret.chmod(0o600)
    driver = subprocess.Popen(
        as_nobody(*DRIVER, "--kill-grace", "1", "--secret", f"TOKEN={secret}", "--", "sleep", "1000"),
        env=procs.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=shared_dir)
    procs.started.append(driver)
    [child] = wait_for(lambda: running(procs.mark, ["sleep", "1000"]), what="the child")

    def peek(pid: int) -> dict[str, str]:
        out = subprocess.run(as_nobody(PYTHON, "-c", PEEK, str(pid)), capture_output=True, check=True,
                             timeout=30, cwd=shared_dir).stdout
        return json.loads(out)

    with open(f"/proc/{driver.pid}/status") as f:
        assert re.search(rf"^Uid:\s+{NOBODY}\s", f.read(), re.M)
    assert peek(driver.pid) == {"environ": "PermissionError", "mem": "PermissionError",
                                "maps": "PermissionError"}
    # Control: the child is dumpable again after its exec, so the same peek reads it.
    assert peek(child) == {"environ": "read", "mem": "read", "maps": "read"}
