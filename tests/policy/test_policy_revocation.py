"""Revocation and the maximum lease length end running children at once; normal ends are audited
with the child's exit status and the lease's duration."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.polling import wait_for


def start_child(running: RunningListener, tmp_path: Path, seconds: int = 60) -> tuple[subprocess.Popen, int]:
    """`runwrap run -- sleep` in the background; returns runwrap's process and the child's pid."""
    pidfile = tmp_path / "child.pid"
    process = subprocess.Popen(
        [runwrap_executable(), "run", "--domain", "github.com", "--env", "TOKEN=password", "--",
         "sh", "-c", f'echo $$ > {pidfile}; exec sleep {seconds}'],
        env=running.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=20, what="the child to start")
    # The lease is held once the child runs; wait until the listener knows it (the HOLD message).
    wait_for(lambda: _leases(running), timeout=10, what="the lease")
    return process, int(pidfile.read_text())


def _leases(running: RunningListener) -> int:
    from runwrap.listener import manage
    from runwrap.paths import layout

    return sum(manage.status(layout(running.env)).leases.values())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_revoke_ends_the_running_child_within_a_second_and_refuses_the_key(tmp_path):
    with RunningListener() as running:
        running.pair("doomed", ["github.com"])
        process, child = start_child(running, tmp_path)
        revoked = running.run("peers", "revoke", "doomed")
        answered = time.monotonic()
        assert "ended 1 running lease" in revoked.stdout
        _, stderr = process.communicate(timeout=10)
        took = time.monotonic() - answered
        assert process.returncode == 125
        assert "access revoked by the listener" in stderr
        assert took < 1.0, f"runwrap took {took:.2f}s to stop after the revocation"
        wait_for(lambda: not alive(child), timeout=1.0, what="the child to end")

        refused = running.run("connect", "--domain", "github.com", check=False)
        assert refused.returncode == 3 and "not a peer" in refused.stderr
        events = running.audit_events()
        revokes = [e for e in events if e["event"] == "revoke"]
        assert {e.get("lease") is None for e in revokes} == {True, False}  # the peer, and its lease
        assert all(e["decision"] == "revoked" and e["peer"] == "doomed" for e in revokes)
        lease_event = next(e for e in revokes if e.get("lease"))
        assert lease_event["provenance"]["argv0"] == "sh"
        failed = events[-1]
        assert (failed["event"], failed["decision"], failed["peer"]) == ("handshake_failed", "revoked", "doomed")
        ends = [e for e in events if e["event"] == "lease_end"]  # a revoked lease still ends on the record
        assert [(e["lease"], e["reason"]) for e in ends] == [(lease_event["lease"],
                                                               "ended by the listener: peer revoked")]
        (peer,) = json.loads(running.run("peers", "list", "--output", "json").stdout)
        assert peer["revoked"] is True


def test_max_lease_ends_long_children_the_same_way(tmp_path):
    with RunningListener(args=["--max-lease", "2s"]) as running:
        running.pair("ci", ["github.com"])
        started = time.monotonic()
        process, child = start_child(running, tmp_path)
        _, stderr = process.communicate(timeout=15)
        took = time.monotonic() - started
        assert process.returncode == 125
        assert "access revoked by the listener: maximum lease length (2s) reached" in stderr
        assert 2.0 <= took < 6.0
        wait_for(lambda: not alive(child), timeout=1.0, what="the child to end")
        revoke = [e for e in running.audit_events() if e["event"] == "revoke"][-1]
        assert revoke["reason"] == "maximum lease length (2s) reached" and revoke["lease"]
        assert 1900 <= revoke["duration_ms"] < 4000
        # A short child under the same limit ends normally.
        done = running.run("run", "--domain", "github.com", "--env", "T=password", "--", "true", check=False)
        assert done.returncode == 0, done.stderr


def test_lease_end_carries_exit_and_duration(tmp_path):
    with RunningListener() as running:
        running.pair("tests", ["*"])
        done = running.run("run", "--domain", "github.com", "--env", "T=password", "--",
                           "sh", "-c", "sleep 0.3; exit 3", check=False)
        assert done.returncode == 3, done.stderr
        events = running.audit_events()
        end = events[-1]
        assert end["event"] == "lease_end" and end["exit"] == 3
        assert 300 <= end["duration_ms"] < 10_000
        request = events[-2]
        assert request["event"] == "request" and request["lease"] == end["lease"]
        assert end["provenance"]["argv0"] == "sh"
