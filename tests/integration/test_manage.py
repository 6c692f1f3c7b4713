"""The listener's owner's library (runwrap.listener.manage, runwrap.listener.audit's readers): the
functions `runwrap invite`, `peers revoke|scope`, `doctor` and `audit` call, called directly."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from runwrap.errors import ConnectionFailed, RunwrapError
from runwrap.listener import audit, manage
from runwrap.listener.audit import AuditLog
from runwrap.listener.peers import Peers
from runwrap.paths import layout
from runwrap.testing.listener import RunningListener


def peer_file(running: RunningListener, name: str) -> dict[str, object]:
    return dict(json.loads(layout(running.env).peers.read_text())["peers"][name])


def test_through_the_running_listener():
    with RunningListener() as running:
        lay = layout(running.env)
        running.pair("ci", ["github.com"])
        code = manage.invite(lay, "next", ["*.example.com"], 60.0)
        assert code.address == f"unix:{running.socket}" and code.code.count("-") == 2 and code.expires_at
        assert manage.status(lay).provider == "example"
        changed = manage.set_scope(lay, "ci", ["test.com", "GitHub.com"])
        assert (changed.live, changed.scope) == (True, ["test.com", "github.com"])
        assert peer_file(running, "ci")["scope"] == ["test.com", "github.com"]
        revoked = manage.revoke(lay, "ci")
        assert (revoked.live, revoked.revoked, revoked.ended) == (True, True, 0)
        assert peer_file(running, "ci")["revoked"] is True


def test_revocation_and_scope_fall_back_to_the_files_when_no_listener_runs():
    with RunningListener() as running:
        lay = layout(running.env)
        running.pair("ci", ["github.com"])
        other = {**running.env, "RUNWRAP_HOME": str(running.paired_home("other", ["*"]))}
        running.stop()
        with pytest.raises(ConnectionFailed):
            manage.status(lay)
        with pytest.raises(ConnectionFailed):
            manage.invite(lay, "x", ["*"], 60.0)  # a code lives only in a listener: no fallback

        changed = manage.set_scope(lay, "other", ["test.com"])
        assert (changed.live, changed.scope) == (False, ["test.com"])
        revoked = manage.revoke(lay, "ci")
        assert (revoked.live, revoked.revoked) == (False, True)
        assert peer_file(running, "ci")["revoked"] is True and peer_file(running, "other")["scope"] == ["test.com"]
        events = running.audit_events()[-2:]
        assert [(e["event"], e["peer"], e["reason"]) for e in events] == [
            ("scope", "other", "scope * -> test.com (listener not running)"),
            ("revoke", "ci", "peer revoked (listener not running)")]

        running.start()  # the next listener reads the files
        assert running.run("connect", "--domain", "github.com", check=False).returncode == 3  # ci: revoked
        assert running.run("connect", "--domain", "github.com", env=other, check=False).returncode == 4
        assert running.run("connect", "--domain", "test.com", env=other, check=False).returncode == 0


def test_bad_input_changes_nothing():
    with RunningListener() as running:
        lay = layout(running.env)
        running.pair("ci", ["github.com"])
        running.stop()
        before = lay.peers.read_bytes()
        with pytest.raises(ValueError, match="not a scope pattern"):
            manage.set_scope(lay, "ci", ["id:../../etc"])
        with pytest.raises(ValueError, match="at least one scope pattern"):
            manage.set_scope(lay, "ci", [])
        with pytest.raises(RunwrapError, match=r"no peer named 'nobody' \(peers: ci\)"):
            manage.revoke(lay, "nobody")
        assert lay.peers.read_bytes() == before


def test_a_listener_that_does_not_answer_is_no_reason_to_write_the_files(tmp_path):
    """Something accepts on the socket and hangs up: a listener may be there, so the peers file
    (which that listener would overwrite from memory) is left alone and the user is told."""
    with RunningListener() as running:
        lay = layout(running.env)
        running.pair("ci", ["github.com"])
        running.stop()
        before = lay.peers.read_bytes()
        path = Path(f"/tmp/rw-hangup-{os.getpid()}.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen()

        def hang_up() -> None:
            conn, _ = server.accept()
            conn.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        try:
            with pytest.raises(RunwrapError, match="did not answer") as info:
                manage.revoke(lay, "ci", socket_path=path)
            assert not isinstance(info.value, ConnectionFailed)
        finally:
            thread.join(10)
            server.close()
            path.unlink()
        assert lay.peers.read_bytes() == before
        assert Peers(lay.peers).by_name["ci"].revoked is False


def test_read_log_and_follow(tmp_path):
    path = tmp_path / "audit.log"
    with pytest.raises(RunwrapError, match="no audit log at"):
        audit.read_log(path)
    assert audit.read_log(path, missing_ok=True) == ([], 0)
    log = AuditLog(path)
    log.write("pair", peer="a")
    with open(path, "ab") as handle:
        handle.write(b'{"event": "torn", "pe')  # a crash's torn last line
    events, offset = audit.read_log(path)
    assert [e["peer"] for e in events] == ["a"] and offset == len(path.read_bytes().split(b"\n")[0]) + 1
    log.close()

    seen: list[str] = []

    def follow() -> None:
        for event in audit.follow(path, offset, interval=0.01, until=time.monotonic() + 20):
            seen.append(str(event["peer"]))

    threading.Thread(target=follow, daemon=True).start()
    log = AuditLog(path)  # closes the torn line off; the event after it is whole
    log.write("request", peer="b")
    log.close()
    _wait(lambda: "b" in seen)
    path.unlink()  # rotated: a new file is read from its start
    log = AuditLog(path)
    log.write("request", peer="c")
    log.close()
    _wait(lambda: "c" in seen)
    assert seen == ["b", "c"]


def test_follow_ends_at_its_deadline(tmp_path):
    started = time.monotonic()
    assert list(audit.follow(tmp_path / "never.log", interval=0.01, until=started + 0.2)) == []
    assert time.monotonic() - started < 5


def _wait(check) -> None:
    from tests.polling import wait_for

    wait_for(check, timeout=10, what="the followed event")
