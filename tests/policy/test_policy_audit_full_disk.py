"""A full disk, for real: the audit log on a 64 KiB tmpfs this test mounts and fills. Requests are
refused while an event cannot be written (fail closed); the failed write leaves the file ending in a
whole line, so every event that was written parses; once space is freed the listener serves again
on its own, and the gap is on the record."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.credential import Query
from runwrap.errors import RunwrapError
from runwrap.testing.listener import RunningListener
from tests.polling import wait_for

from .policy_support import open_channel

FAST = ["--rate", "100000/1m"]


@pytest.fixture
def disk() -> Iterator[Path]:
    mount = Path(tempfile.mkdtemp(prefix="rw-disk-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)
        mount.rmdir()


@pytest.fixture
def running(disk: Path) -> Iterator[RunningListener]:
    with RunningListener(args=[*FAST, "--audit-log", str(disk / "audit.log")]) as listener:
        listener.pair("tests", ["*"])
        yield listener


def fill(disk: Path) -> Path:
    """Write a file until the filesystem says it is full; return it (remove it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        for _ in range(1000):
            try:
                out.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return filler
    raise AssertionError("a 64 KiB filesystem took 4 MB")


def said(running: RunningListener) -> str:
    return running.output()[running._log_start:]


def whole_lines(log: Path) -> list[dict]:
    raw = log.read_bytes()
    assert raw.endswith(b"\n"), f"the log ends in a torn line: {raw[-80:]!r}"
    return [json.loads(line) for line in raw.splitlines()]  # every line is a whole event


def test_a_full_disk_fails_closed_leaves_whole_lines_and_recovers_on_its_own(running, disk):
    log = disk / "audit.log"
    assert running.run("connect", "--domain", "github.com", check=False).returncode == 0
    served: list[str] = []
    refused = ""
    filler: Path | None = None
    channel = open_channel(running.home)
    try:
        for n in range(200):
            tag = f"r{n}"
            try:
                channel.request(Query(domain="github.com"), ["password"],
                                {"argv0": "filler", "pid": os.getpid(), "profile": tag, "cwd": "x"}).wipe()
            except RunwrapError as exc:
                refused = exc.message
                break
            served.append(tag)
            if n == 0:
                # The log's last page still has room for a few events; then a write fails (often half-way).
                filler = fill(disk)
    finally:
        channel.close()  # this session was given credentials: its lease_end is due while the disk is full
    assert "cannot write its audit log" in refused and "alligator5" not in refused
    assert "refusing requests until it can be written" in said(running)
    assert "cannot write the audit log " + str(log) in said(running)

    events = whole_lines(log)
    logged = {e["provenance"]["profile"] for e in events if e["event"] == "request" and e.get("provenance")}
    assert set(served) <= logged, "an answer was sent whose event is not in the log"

    # Still full: both forms are refused, with the reason, and nothing is served.
    connect = running.run("connect", "--domain", "github.com", "--output", "json", check=False)
    assert connect.returncode == 1 and "cannot write its audit log" in json.loads(connect.stdout)["error"]["message"]
    exec_form = running.run("run", "--domain", "github.com", "--env", "P=password", "--", "true", check=False)
    assert exec_form.returncode == 125 and "audit log" in exec_form.stderr
    assert "alligator5" not in connect.stdout + exec_form.stdout + exec_form.stderr
    assert whole_lines(log) == events

    assert filler is not None
    filler.unlink()
    wait_for(lambda: "can be written again" in said(running), timeout=5, what="the listener to notice the space")
    assert running.run("connect", "--domain", "github.com", check=False).returncode == 0

    shown = running.run("audit", "--file", str(log), "--output", "json").stdout.splitlines()
    after = [json.loads(line) for line in shown]
    assert after == whole_lines(log)
    kinds = [e["event"] for e in after]
    gap = after[kinds.index("audit_gap")]
    assert gap["lost"] >= 2 and "cannot write the audit log" in gap["reason"]  # the refusals went unrecorded
    # The session that got credentials before the disk filled still ends on the record, before the gap.
    ends = [e for e in after if e["event"] == "lease_end" and e["lease"] in
            {r["lease"] for r in after if r.get("provenance", {}).get("profile") in served}]
    assert len(ends) == 1 and after.index(ends[0]) < after.index(gap)
    assert [e["decision"] for e in after if e["event"] == "request"][-1] == "allowed"
