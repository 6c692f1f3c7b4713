"""The audit log is a regular file of the user's, 0600, or it is refused in one line: never opened in a
way that blocks (a FIFO), never a device (/dev/null would silently disable auditing), never chmod-ed
behind the user's back, and existing folders are left as they are. While it is refused the listener
fails closed, and it recovers on its own once a regular file is back."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener
from tests.polling import wait_for

FAST = ["--rate", "100000/1m"]
NOBODY = 65534


@pytest.fixture(scope="module")
def paired() -> Iterator[RunningListener]:
    """A paired home whose listener is stopped, so each test starts one with its own --audit-log."""
    running = RunningListener(args=FAST)
    try:
        running.start()
        running.pair("tests", ["*"])
        running.stop()
        yield running
    finally:
        running.cleanup()


@pytest.fixture
def home(paired: RunningListener) -> Iterator[Path]:
    """A fresh 0700 folder of this test's, in the paired home, for its audit log and its folders."""
    place = Path(tempfile.mkdtemp(dir=paired.home))
    yield place
    shutil.rmtree(place, ignore_errors=True)


def listen(paired: RunningListener, log: Path | str) -> RunningListener:
    return RunningListener(args=[*FAST, "--audit-log", str(log)], home=str(paired.home))


def refused_at_start(paired: RunningListener, log: Path | str) -> str:
    """Start a listener on `log` and expect it to refuse at once (exit 1, one line); its stderr."""
    blocked = listen(paired, log)
    try:
        with pytest.raises(RuntimeError, match="exited with 1") as info:
            blocked.start(timeout=10)  # a listener blocked in open() would time out instead
    finally:
        blocked.stop()
    lines = [line for line in said(blocked).splitlines() if line]
    assert len(lines) == 1, info.value
    return lines[0]


def said(running: RunningListener) -> str:
    """What this run of the listener printed (the home's output file holds every run's)."""
    return running.output()[running._log_start:]


def fetch(running: RunningListener) -> subprocess.CompletedProcess[str]:
    # A listener stuck in a blocking open() never answers: the timeout turns that into a failure.
    return running.run("connect", "--domain", "github.com", "--output", "json", check=False, timeout=20)


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    message = str(json.loads(result.stdout)["error"]["message"])
    assert "cannot write its audit log" in message and "alligator5" not in result.stdout
    return message


def fifo(path: Path) -> int | None:
    os.mkfifo(path, 0o600)
    return None


def fifo_with_reader(path: Path) -> int | None:
    os.mkfifo(path, 0o600)
    # A reader that stays (O_RDWR never blocks on a FIFO): even a blocking writer's open would succeed.
    return os.open(path, os.O_RDWR | os.O_NONBLOCK)


def unix_socket(path: Path) -> int | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    return None


def link_to_a_file(path: Path) -> int | None:
    target = path.parent / "elsewhere.log"
    target.touch(mode=0o600)
    path.symlink_to(target)
    return None


def folder(path: Path) -> int | None:
    path.mkdir(mode=0o700)
    return None


MAKERS: dict[str, tuple[Callable[[Path], int | None], str]] = {
    "fifo": (fifo, "a named pipe (FIFO)"),
    "fifo with a reader": (fifo_with_reader, "a named pipe (FIFO)"),
    "socket": (unix_socket, "a socket"),
    "symlink": (link_to_a_file, "a symbolic link"),
    "folder": (folder, "a folder"),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_anything_but_a_regular_file_is_refused_at_start_without_blocking(paired, home, kind):
    make, named = MAKERS[kind]
    logs = home / "logs"
    logs.mkdir(mode=0o700)
    reader = make(logs / "audit.log")
    try:
        line = refused_at_start(paired, logs / "audit.log")
    finally:
        if reader is not None:
            os.close(reader)
    assert line == (f"runwrap: the audit log {logs / 'audit.log'} is {named}, not a regular file; remove it "
                    "(a new log is created) or give --audit-log a regular file")


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full", "/dev/zero"])
def test_a_device_is_refused_so_auditing_cannot_be_switched_off(paired, home, device):
    line = refused_at_start(paired, device)
    assert line == (f"runwrap: the audit log {device} is a character device, not a regular file; give "
                    "--audit-log a regular file (a device loses or refuses events)")


def test_a_fifo_swapped_in_while_serving_is_refused_and_a_file_brings_it_back(paired, home):
    logs = home / "logs"
    log = logs / "audit.log"
    running = listen(paired, log).start()
    try:
        assert fetch(running).returncode == 0
        # Rotated away and replaced by a FIFO nobody reads: the once-a-second check must not open it.
        log.rename(logs / "audit.log.1")
        os.mkfifo(log, 0o600)
        wait_for(lambda: "a named pipe (FIFO)" in said(running), timeout=5, what="the refusal")
        assert "refusing requests until it can be written" in said(running)
        assert "named pipe (FIFO)" in refusal(fetch(running))
        log.unlink()  # the listener creates a new log and serves again, on its own
        wait_for(lambda: "can be written again" in said(running), timeout=5, what="the recovery")
        assert fetch(running).returncode == 0
        events = [json.loads(line) for line in log.read_text().splitlines()]
        assert [e["event"] for e in events][:2] == ["audit_gap", "request"]
        assert "named pipe (FIFO)" in events[0]["reason"] and events[1]["decision"] == "allowed"
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
    finally:
        running.stop()


def test_an_existing_log_others_can_read_is_refused_and_left_as_it_is(paired, home):
    log = home / "audit.log"
    log.touch()
    log.chmod(0o644)
    line = refused_at_start(paired, log)
    assert line == (f"runwrap: the audit log {log} has mode 644, so others can read or change it; "
                    f"run `chmod 600 {log}`")
    assert stat.S_IMODE(log.stat().st_mode) == 0o644  # named, never repaired behind the user's back
    log.chmod(0o600)
    listen(paired, log).start().stop()


def test_an_existing_log_of_another_user_is_refused(paired, home):
    log = home / "audit.log"
    log.touch(mode=0o600)
    os.chown(log, NOBODY, NOBODY)
    line = refused_at_start(paired, log)
    assert line.startswith(f"runwrap: the audit log {log} belongs to uid {NOBODY}, not to you")


def test_a_log_loosened_while_serving_is_refused_until_it_is_fixed(paired, home):
    log = home / "audit.log"
    running = listen(paired, log).start()
    try:
        assert fetch(running).returncode == 0
        log.chmod(0o644)
        wait_for(lambda: "has mode 644" in said(running), timeout=5, what="the refusal")
        assert "chmod 600" in refusal(fetch(running))
        assert stat.S_IMODE(log.stat().st_mode) == 0o644
        log.chmod(0o600)
        wait_for(lambda: fetch(running).returncode == 0, timeout=5, what="the listener to serve again")
    finally:
        running.stop()


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_missing_folders_are_made_0700_and_the_file_0600_whatever_the_umask(paired, home, umask):
    log = home / "a" / "b" / "audit.log"
    old = os.umask(umask)  # the listener inherits it: nothing it creates may rely on the umask
    try:
        running = listen(paired, log).start()
    finally:
        os.umask(old)
    running.stop()
    for folder in (home / "a", home / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o755, 0o1777, 0o2750])
def test_an_existing_folder_is_never_chmod_ed(paired, home, mode):
    folder = home / "shared"
    folder.mkdir()
    folder.chmod(mode)
    listen(paired, folder / "audit.log").start().stop()
    assert stat.S_IMODE(folder.stat().st_mode) == mode
    assert stat.S_IMODE((folder / "audit.log").stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o777, 0o2775])
def test_a_folder_others_can_write_is_refused_and_left_alone(paired, home, mode):
    folder = home / "team"
    folder.mkdir()
    folder.chmod(mode)
    line = refused_at_start(paired, folder / "audit.log")
    assert line == (f"runwrap: cannot keep the audit log in {folder}: the folder {folder} has mode {mode:o}: "
                    "others can remove or replace the files in it; choose a folder only you can write "
                    "(runwrap leaves existing folders alone)")
    assert stat.S_IMODE(folder.stat().st_mode) == mode
    assert not (folder / "audit.log").exists()


def test_a_folder_of_another_user_is_refused(paired, home):
    folder = home / "theirs"
    folder.mkdir(mode=0o755)
    os.chown(folder, NOBODY, NOBODY)
    line = refused_at_start(paired, folder / "audit.log")
    assert line.startswith(f"runwrap: cannot keep the audit log in {folder}: the folder {folder} belongs to "
                           f"uid {NOBODY}, who could remove or replace the files in it")
