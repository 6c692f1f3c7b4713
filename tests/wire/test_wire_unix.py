"""The Unix socket and the files: 0700 folders, 0600 files and socket whatever the umask, atomic
writes, the peer's uid checked with SO_PEERCRED, and `runwrap doctor` naming any wrong mode."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.paths import folder_for_files, layout, wrong_modes
from runwrap.testing.listener import RunningListener
from runwrap.wire.identity import load_or_create_identity
from tests.polling import wait_for
from tests.wire.wire_kit import fetch

NOBODY = 65534
# Run as another uid with no capabilities; plain system Python, since the venv may be out of its reach.
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
             "/usr/bin/python3", "-c"]
CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect:", exc.strerror); sys.exit(0)
try:
    s.sendall(b"RWP\\x01C" + b"\\x00\\x10" + b'{"op":"status"}\\n')
    print("answer:", s.recv(100))
except OSError as exc:
    print("answer: error", exc.strerror)
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[RunningListener]:
    """A listener started (and paired) from a process whose umask lets everyone read and write."""
    old = os.umask(0)
    try:
        with RunningListener() as running:
            running.pair()
            yield running
    finally:
        os.umask(old)


def test_every_file_is_private_even_with_umask_0(open_umask: RunningListener) -> None:
    home = open_umask.home
    assert fetch(home) == "alligator5"
    assert mode(home) == 0o700
    assert stat.S_ISSOCK(open_umask.socket.lstat().st_mode) and mode(open_umask.socket) == 0o600
    for name in ("listener.key", "consumer.key", "peers.json", "connections.json", "audit.log"):
        assert mode(home / name) == 0o600, name
    assert wrong_modes(layout({"RUNWRAP_HOME": str(home)})) == []
    assert not [p for p in home.iterdir() if p.name.startswith(".")], "an atomic write left a temp file"


def test_separate_folders_are_created_0700_with_umask_0(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_STATE_HOME": str(tmp_path / "s"),
           "XDG_RUNTIME_DIR": str(tmp_path / "r")}
    lay = layout(env)
    old = os.umask(0)
    try:
        for folder in lay.folders():
            folder_for_files(folder)
        load_or_create_identity(lay.consumer_key)
    finally:
        os.umask(old)
    assert [mode(f) for f in lay.folders()] == [0o700] * 3
    assert mode(lay.consumer_key) == 0o600


def test_concurrent_first_runs_agree_on_one_identity(tmp_path: Path) -> None:
    code = ("import sys; from runwrap.wire.identity import load_or_create_identity as l; from pathlib import Path;"
            "print(l(Path(sys.argv[1])).hex())")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "k" / "consumer.key")],
                              stdout=subprocess.PIPE, text=True) for _ in range(8)]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and len(next(iter(keys))) == 64
    assert bytes.fromhex(next(iter(keys))) == load_or_create_identity(tmp_path / "k" / "consumer.key")


def test_another_uid_cannot_reach_the_socket(paired: RunningListener) -> None:
    result = subprocess.run([*AS_NOBODY, CONNECT, str(paired.socket)], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "connect: Permission denied", result.stderr


def test_another_uid_is_refused_by_so_peercred_when_the_folder_is_loosened() -> None:
    with RunningListener() as running:
        running.pair()
        events = len(running.audit_events())
        # Open the filesystem layer on purpose, to test the lock behind it.
        running.home.chmod(0o711)
        running.socket.chmod(0o666)
        try:
            result = subprocess.run([*AS_NOBODY, CONNECT, str(running.socket)], capture_output=True, text=True,
                                    timeout=30)
        finally:
            running.home.chmod(0o700)
            running.socket.chmod(0o600)
        assert result.stdout.startswith("answer:") and "status" not in result.stdout, result.stdout + result.stderr
        # Closed before a byte was read: EOF, or a reset/broken pipe if our bytes arrived after the close.
        assert result.stdout.strip() in ("answer: b''", "answer: error Connection reset by peer",
                                         "answer: error Broken pipe")
        new = wait_for(lambda: running.audit_events()[events:], 5, "the refusal to be audited")
        assert [(e["event"], e["decision"]) for e in new] == [("handshake_failed", "denied")]
        assert f"uid {NOBODY}" in new[0]["reason"]
        assert fetch(running.home) == "alligator5"  # and the listener's own user is still served


def test_doctor_names_every_file_with_a_wrong_mode(paired: RunningListener) -> None:
    home = paired.home
    loose = {home / "peers.json": 0o644, home / "listener.key": 0o640, home / "connections.json": 0o606}
    try:
        home.chmod(0o755)
        for path, bad in loose.items():
            path.chmod(bad)
        result = paired.run("doctor", check=False)
        assert result.returncode == 1
        wrong = [line for line in result.stdout.splitlines() if "wrong mode" in line]
        assert len(wrong) == 4, result.stdout
        assert any(f"{home}: mode 755, should be 700" in line for line in wrong)
        for path, bad in loose.items():
            assert any(f"{path}: mode {bad:o}, should be 600 (chmod 600 {path})" in line for line in wrong)
    finally:
        home.chmod(0o700)
        for path in loose:
            path.chmod(0o600)
    result = paired.run("doctor", check=False)
    assert result.returncode == 0 and "modes ok" in result.stdout, result.stdout


def test_a_key_file_others_can_read_stops_the_listener_from_starting(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    load_or_create_identity(home / "listener.key")
    (home / "listener.key").chmod(0o644)
    with pytest.raises(RuntimeError, match=r"listener.key has mode 644; run `chmod 600"):
        RunningListener(home=str(home)).start()
