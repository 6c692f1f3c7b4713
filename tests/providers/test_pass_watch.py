"""Rotation with the pass provider: a real store (throwaway gpg key), a real `runwrap listen --provider pass
--watch-interval 1s`, an entry edited with `pass insert -f`, and a raw watching consumer."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.credential import Query
from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.helpers.watching import Watching
from tests.polling import wait_for
from tests.providers import test_pass_provider as kit

INTERVAL = 1.0


@pytest.fixture(scope="module")
def store() -> Iterator[tuple[Path, Path]]:
    """(GNUPGHOME, store) with github.com and example.org, the key without a passphrase."""
    home = Path(tempfile.mkdtemp(prefix="rwgpw"))
    try:
        key = kit.new_key(home, "runwrap watch <watch@example.invalid>", "")
        kit.make_store(home, home / "store", key, {"github.com": "pw-1\nlogin: alice\n",
                                                   "example.org": "pw-example\n"})
        yield home, home / "store"
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], timeout=30, check=False)
        shutil.rmtree(home, ignore_errors=True)


def insert(gnupg: Path, store: Path, entry: str, text: str) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(gnupg), "GNUPGHOME": str(gnupg), "PASSWORD_STORE_DIR": str(store)}
    subprocess.run(["pass", "insert", "-f", "-m", entry], env=env, input=text.encode(), check=True,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def listener(store: tuple[Path, Path]) -> Iterator[RunningListener]:
    gnupg, folder = store
    with RunningListener("pass", args=["--watch-interval", f"{INTERVAL:g}s"], provider_options={"store": str(folder)},
                         extra_env={"GNUPGHOME": str(gnupg)}) as running:
        running.pair()
        yield running


def test_an_entry_edited_with_pass_insert_is_pushed(listener: RunningListener, store: tuple[Path, Path]) -> None:
    with Watching(listener.home, [(Query(domain="api.github.com"), ["username", "password"])]) as watching:
        assert watching.value(0, "password") == "pw-1"
        insert(*store, "github.com", "pw-2\nlogin: alice\n")
        pushed = watching.next(INTERVAL + 2)
        assert pushed is not None and pushed.kind == "changed", pushed and pushed.header
        assert pushed.values == {"0/username": "alice", "0/password": "pw-2"}
        watching.rotated(pushed.header["seq"])
        wait_for(lambda: [e for e in listener.audit_events() if e["event"] == "rotated"], 5, "the rotated event")


def test_the_same_text_inserted_again_pushes_nothing(listener: RunningListener, store: tuple[Path, Path]) -> None:
    with Watching(listener.home, [(Query(domain="example.org"), ["password"])]) as watching:
        stamp = (store[1] / "example.org.gpg").stat().st_mtime_ns
        insert(*store, "example.org", "pw-example\n")  # a new file, the same secret
        assert (store[1] / "example.org.gpg").stat().st_mtime_ns != stamp
        until = time.monotonic() + INTERVAL * 3
        assert watching.next(until - time.monotonic()) is None
        insert(*store, "example.org", "pw-example-2\n")
        pushed = watching.next(INTERVAL + 2)
        assert pushed is not None and pushed.values == {"0/password": "pw-example-2"}


def test_pass_insert_restarts_a_runwrap_run_child_with_the_new_value(listener: RunningListener,
                                                                     store: tuple[Path, Path],
                                                                     tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    insert(*store, "web/rot.example", "pw-a\n")
    child = f'printf "%s\\n" "$V" >> {seen}; exec sleep 600'
    proc = subprocess.Popen([runwrap_executable(), "run", "--domain", "rot.example", "--env", "V=password",
                             "--on-change", "restart", "--", "sh", "-c", child],
                            env=listener.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    lines = lambda: seen.read_text().splitlines() if seen.exists() else []  # noqa: E731
    try:
        wait_for(lambda: lines() == ["pw-a"], 15, "the first child")
        insert(*store, "web/rot.example", "pw-a\n")  # the same secret again: no restart
        until = time.monotonic() + INTERVAL * 2.5
        wait_for(lambda: lines() != ["pw-a"] or time.monotonic() > until, 10, "two ticks")
        assert lines() == ["pw-a"]
        insert(*store, "web/rot.example", "pw-b\n")
        wait_for(lambda: lines() == ["pw-a", "pw-b"], INTERVAL + 2, lambda: f"the restart: {lines()}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM
