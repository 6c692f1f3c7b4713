"""Rotation end to end: the session's real `bao server -dev`, a real `runwrap listen --provider openbao
--watch-interval 1s`, and `runwrap run --on-change restart` whose child appends the value it was given
to a file at each start (so the file's lines are the children that ran, in order)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.polling import wait_for

from .bao_kit import BaoServer, Postgres, watching_listener

INTERVAL = 1.0
CHILD = 'printf "%s\\n" "$V" >> {seen}; exec sleep 600'


@pytest.fixture(scope="module")
def listener(bao: BaoServer, listener_token: str) -> Iterator[RunningListener]:
    with watching_listener(bao, listener_token, INTERVAL) as running:
        yield running


class Run:
    """`runwrap run --id ITEM --env V=FIELD ... --on-change restart -- sh -c CHILD`, in its own group."""

    def __init__(self, listener: RunningListener, folder: Path, ident: str, *env: str) -> None:
        self.seen = folder / "seen"
        argv = [runwrap_executable(), "run", "--id", ident]
        for pair in env:
            argv += ["--env", pair]
        argv += ["--on-change", "restart", "--", "sh", "-c", CHILD.format(seen=self.seen)]
        self.proc = subprocess.Popen(argv, env=listener.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)

    def lines(self) -> list[str]:
        return self.seen.read_text().splitlines() if self.seen.exists() else []

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err.decode(errors="replace")


@pytest.fixture
def item(bao: BaoServer) -> str:
    path = f"secret/team/rot-{secrets.token_hex(4)}"
    bao.kv_put(path, {"password": "pw-1"})
    return path


def test_a_kv_change_restarts_the_child_with_the_new_value(listener: RunningListener, bao: BaoServer,
                                                          item: str, tmp_path: Path) -> None:
    run = Run(listener, tmp_path, item, "V=password")
    try:
        wait_for(lambda: run.lines() == ["pw-1"], 15, "the first child")
        bao.kv_put(item, {"password": "pw-2"})
        written = time.monotonic()
        wait_for(lambda: run.lines() == ["pw-1", "pw-2"], INTERVAL + 2, lambda: f"the restart: {run.lines()}")
        assert time.monotonic() - written < INTERVAL + 2
        wait_for(lambda: [e for e in listener.audit_events() if e["event"] == "rotated"
                          and e["peer"] == "tests"], 5, "the consumer's ROTATED on the record")
    finally:
        status, err = run.stop()
    assert status == -signal.SIGTERM, err  # runwrap ends by the child's own signal, as without rotation
    assert "pw-2" not in err and "pw-1" not in err


def test_the_same_data_written_again_restarts_nothing(listener: RunningListener, bao: BaoServer, item: str,
                                                      tmp_path: Path) -> None:
    run = Run(listener, tmp_path, item, "V=password")
    try:
        wait_for(lambda: run.lines() == ["pw-1"], 15, "the first child")
        bao.kv_put(item, {"password": "pw-1"})  # version 2, the same data
        wait_for(lambda: [e for e in listener.audit_events() if e["event"] == "watch_unchanged"
                          and e["credential_id"] == f"{item}@2"], INTERVAL + 5, "the new version to be seen")
        until = time.monotonic() + INTERVAL * 2
        wait_for(lambda: run.lines() != ["pw-1"] or time.monotonic() > until, 10, "two more ticks")
        assert run.lines() == ["pw-1"]
        assert run.proc.poll() is None
    finally:
        run.stop()


def test_a_dynamic_secret_at_its_max_ttl_restarts_the_child_on_a_new_role(listener: RunningListener,
                                                                         database: Postgres,
                                                                         tmp_path: Path) -> None:
    # Role `eight`: 6 s leases, max 8 s; the renewal at 4 s is cut short and a new role is pushed.
    run = Run(listener, tmp_path, "database/creds/eight", "V=username")
    try:
        first = wait_for(lambda: run.lines(), 15, "the first child")[0]
        assert first in database.roles()
        lines = wait_for(lambda: run.lines()[1:] and run.lines(), 15, lambda: f"a restart: {run.lines()}")
        new = lines[1]
        assert new != first
        # The child moved to the new role; the consumer said ROTATED; the old role is revoked.
        wait_for(lambda: first not in database.roles(), 10, "the old role to go from pg_roles")
        assert new in database.roles() and run.proc.poll() is None
    finally:
        run.stop()
    wait_for(lambda: new not in database.roles(), 10, "the new role to go with the lease")
