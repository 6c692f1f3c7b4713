"""Every lease ends on the record: a session that was given a credential (or held a lease) ends with
exactly one `lease_end`, however it ends — the consumer's report, a consumer killed with SIGKILL while
its request was being answered, after the answer and before HOLD, or while held, a revocation, the
listener stopping. A session that was given nothing logs no `lease_end`."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.polling import wait_for

# A consumer that speaks to the listener through runwrap.consumer.client.Channel, so it can stop between
# its request and HOLD: `victim.py DOMAIN hold|nohold`; prints the lease once it got the answer.
VICTIM = """\
import os, sys, time
from runwrap.consumer.client import Endpoint
from runwrap.credential import Query
from runwrap.errors import RunwrapError
from runwrap.paths import layout

channel = Endpoint.pick(layout(), None).open(10)
claim = {"argv0": "victim", "pid": os.getpid(), "profile": "", "cwd": "x"}
try:
    channel.request(Query(domain=sys.argv[1]), ["password"], claim).wipe()
    print("answered", channel.lease, flush=True)
except RunwrapError as exc:
    print("refused", exc.code, flush=True)
if sys.argv[2] == "hold":
    channel.hold(claim)
    print("held", flush=True)
time.sleep(600)  # until the test kills it
"""

# A `command` provider that says when it was asked, then answers only once the test lets it.
SLOW = """\
import json, os, sys, time
query = json.load(sys.stdin)
open(os.path.join(sys.argv[1], "asked"), "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(os.path.join(sys.argv[1], "go")) and time.monotonic() < deadline:
    time.sleep(0.01)
print(json.dumps({"username": "slow", "password": "slow-secret-value", "domain": query.get("domain") or "x",
                  "credential_id": "slow-1"}))
"""


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningListener]:
    with RunningListener() as listener:
        listener.pair("tests", ["github.com"])
        yield listener


@pytest.fixture
def running() -> Iterator[RunningListener]:
    """A listener of the test's own, for tests that stop it or revoke its peer."""
    with RunningListener() as listener:
        listener.pair("tests", ["github.com"])
        yield listener


def victim(running: RunningListener, tmp_path: Path, domain: str, hold: bool) -> tuple[subprocess.Popen[str], str]:
    script = tmp_path / "victim.py"
    script.write_text(VICTIM)
    process = subprocess.Popen([sys.executable, str(script), domain, "hold" if hold else "nohold"],
                               env=running.env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first = process.stdout.readline()
    if hold:
        assert process.stdout.readline() == "held\n"
    return process, first


def kill(process: subprocess.Popen[Any]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def ends_of(running: RunningListener, lease: str) -> list[dict]:
    return [e for e in running.audit_events() if e["event"] == "lease_end" and e.get("lease") == lease]


def wait_end(running: RunningListener, lease: str) -> dict:
    (end,) = wait_for(lambda: ends_of(running, lease), timeout=5, what=f"the lease_end of {lease}")
    return end


def answered_lease(running: RunningListener, argv0: str) -> str:
    request = [e for e in running.audit_events() if e["event"] == "request" and e["decision"] == "allowed"
               and e.get("provenance", {}).get("argv0") == argv0][-1]
    return str(request["lease"])


def test_killed_after_the_answer_before_hold(shared, tmp_path):
    process, first = victim(shared, tmp_path, "github.com", hold=False)
    lease = first.split()[1]
    kill(process)
    end = wait_end(shared, lease)
    assert end["reason"] == "connection closed; the consumer never held the lease"
    assert "exit" not in end and end["duration_ms"] >= 0 and end["peer"] == "tests" and end["peer_fp"]


def test_killed_while_held(shared, tmp_path):
    process, first = victim(shared, tmp_path, "github.com", hold=True)
    lease = first.split()[1]
    kill(process)
    end = wait_end(shared, lease)
    assert end["reason"] == "connection closed before the consumer reported an exit"
    assert end["provenance"]["argv0"] == "victim"


def test_a_real_runwrap_killed_while_its_child_runs(shared, tmp_path):
    pidfile = tmp_path / "child.pid"
    process = subprocess.Popen([runwrap_executable(), "run", "--domain", "github.com", "--env", "T=password",
                                "--", "sh", "-c", f"echo $$ > {pidfile}; exec sleep 600"],
                               env=shared.env, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=20, what="the child")
        lease = answered_lease(shared, "sh")
        kill(process)
    finally:
        if process.poll() is None:
            kill(process)
        # runwrap's child runs in a session of its own: it outlives a kill -9 of runwrap (issue 13, 2).
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    end = wait_end(shared, lease)
    assert "exit" not in end and end["reason"] in ("connection closed before the consumer reported an exit",
                                                   "connection closed; the consumer never held the lease")


def test_killed_while_the_listener_answers():
    """`runwrap connect` killed while the provider works: the answer is audited `allowed` (it leaves
    the listener), and the lease still ends on the record."""
    home = Path(tempfile.mkdtemp(prefix="rw-", dir="/tmp"))
    script = home / "slow.py"
    script.write_text(SLOW)
    command = " ".join(shlex.quote(p) for p in (sys.executable, str(script), str(home)))
    with RunningListener("command", provider_options={"command": command}, home=str(home)) as running:
        running.pair("tests", ["*"])
        process = subprocess.Popen([runwrap_executable(), "connect", "--domain", "github.com"],
                                   env=running.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for((home / "asked").exists, timeout=10, what="the provider to be asked")
        kill(process)
        (home / "go").touch()
        wait_for(lambda: [e for e in running.audit_events() if e["event"] == "request"], timeout=10,
                 what="the request event")
        lease = answered_lease(running, "runwrap")
        end = wait_end(running, lease)
        assert end["reason"] == "connection closed; the consumer never held the lease"
        assert not any("slow-secret-value" in json.dumps(e) for e in running.audit_events())


def test_a_session_given_nothing_logs_no_lease_end(shared, tmp_path):
    process, first = victim(shared, tmp_path, "example.com", hold=False)  # outside the scope
    assert first == "refused denied\n"
    denied = [e for e in shared.audit_events() if e["event"] == "request"][-1]
    kill(process)
    assert shared.run("connect", "--domain", "github.com", check=False).returncode == 0
    later = answered_lease(shared, "runwrap")
    wait_end(shared, later)  # the next session's end is written: the killed one's would be by now
    assert denied["decision"] == "denied" and ends_of(shared, denied["lease"]) == []


def test_connect_ends_its_lease_once(shared):
    assert shared.run("connect", "--domain", "github.com", check=False).returncode == 0
    lease = answered_lease(shared, "runwrap")
    end = wait_end(shared, lease)
    assert end["reason"] == "connection closed; the consumer never held the lease"


def test_a_reported_exit_is_the_one_lease_end(shared):
    done = shared.run("run", "--domain", "github.com", "--env", "T=password", "--", "sh", "-c", "exit 7",
                       check=False)
    assert done.returncode == 7, done.stderr
    lease = answered_lease(shared, "sh")
    end = wait_end(shared, lease)
    assert end["exit"] == 7 and "reason" not in end
    assert shared.run("connect", "--domain", "github.com", check=False).returncode == 0
    wait_end(shared, answered_lease(shared, "runwrap"))
    assert len(ends_of(shared, lease)) == 1


def test_a_listener_that_stops_ends_its_leases_on_the_record(running, tmp_path):
    process, first = victim(running, tmp_path, "github.com", hold=True)
    lease = first.split()[1]
    try:
        running.stop()
    finally:
        kill(process)
    (end,) = ends_of(running, lease)
    assert end["reason"] == "the listener stopped"


def test_a_revoked_lease_ends_once(running, tmp_path):
    process, first = victim(running, tmp_path, "github.com", hold=True)
    lease = first.split()[1]
    try:
        assert "ended 1 running lease" in running.run("peers", "revoke", "tests").stdout
        end = wait_end(running, lease)
    finally:
        kill(process)
    assert end["reason"] == "ended by the listener: peer revoked"
    assert [e["event"] for e in running.audit_events() if e.get("lease") == lease] == [
        "request", "revoke", "lease_end"]
