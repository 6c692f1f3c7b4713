"""The audit log: one event per answer, written before the answer leaves, so nothing a consumer
received is missing even after `kill -9`; the listener fails closed when the log cannot be written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest

from runwrap.credential import Query
from runwrap.errors import RunwrapError
from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.polling import wait_for

from .policy_support import open_channel

FAST = ["--rate", "100000/1m"]


@pytest.fixture
def paired() -> Iterator[RunningListener]:
    with RunningListener(args=FAST) as running:
        running.pair("load", ["*"])
        yield running


def hammer(running: RunningListener, consumers: int, requests: int | None, received: list[str],
           stop: threading.Event | None = None) -> list[BaseException]:
    """`consumers` threads, each its own session, each request tagged in its claim; `received` gets
    the tag of every answer that arrived. Returns the errors the threads ended with."""
    errors: list[BaseException] = []
    start = threading.Barrier(consumers)
    lock = threading.Lock()

    def consumer(n: int) -> None:
        try:
            channel = open_channel(running.home, timeout=60)
            start.wait(timeout=60)
            try:
                r = 0
                while (requests is None or r < requests) and not (stop and stop.is_set()):
                    tag = f"c{n}-r{r}"
                    channel.request(Query(domain="github.com"), ["password"],
                                    {"argv0": "hammer", "pid": os.getpid(), "profile": tag, "cwd": "x"}).wipe()
                    with lock:
                        received.append(tag)
                    r += 1
            finally:
                channel.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consumer, args=(n,)) for n in range(consumers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return errors


def test_50_consumers_by_20_requests_are_exactly_1000_events(paired):
    received: list[str] = []
    errors = hammer(paired, 50, 20, received)
    assert errors == [] and len(received) == 1000
    requests = [e for e in paired.audit_events() if e["event"] == "request"]
    assert len(requests) == 1000
    assert sorted(e["provenance"]["profile"] for e in requests) == sorted(received)
    assert {e["decision"] for e in requests} == {"allowed"}
    assert len({e["lease"] for e in requests}) == 50
    raw = paired.audit_log.read_bytes()
    assert b"alligator5" not in raw and raw.endswith(b"\n")


def test_kill_9_mid_load_loses_no_event_for_an_answer_that_was_received(paired):
    received: list[str] = []
    stop = threading.Event()
    result: list[list[BaseException]] = []
    load = threading.Thread(target=lambda: result.append(hammer(paired, 16, None, received, stop)))
    load.start()
    try:
        wait_for(lambda: len(received) >= 300, timeout=120, what="300 answers")
        paired.kill()  # SIGKILL while requests are in flight
    finally:
        stop.set()
        load.join(timeout=120)
    assert result and result[0], "no consumer noticed that the listener died"
    assert all(isinstance(e, (RunwrapError, OSError)) for e in result[0])
    got = set(received)

    lines = paired.audit_log.read_bytes().split(b"\n")
    complete, last = lines[:-1], lines[-1]
    for line in complete:
        json.loads(line)  # every complete line is a whole event
    logged = {e["provenance"]["profile"] for e in paired.audit_events()
              if e["event"] == "request" and e["decision"] == "allowed"}
    assert got <= logged, f"{len(got - logged)} answers have no event"
    assert len(logged) - len(got) <= 16  # at most one answered-but-unread request per consumer

    # Restart on the same home: the log is closed off, kept, and appended to.
    again = RunningListener(args=FAST, home=str(paired.home))
    again.start()
    try:
        assert again.run("connect", "--domain", "github.com", check=False).returncode == 0
        after = again.audit_log.read_bytes()
        assert after.startswith(b"\n".join(complete))
        bad = [line for line in after.split(b"\n")[:-1] if not _parses(line)]
        assert bad == ([last] if last else [])
        assert [e for e in again.audit_events() if e["event"] != "lease_end"][-1]["event"] == "request"
    finally:
        again.stop()


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def restart(running: RunningListener, *args: str) -> RunningListener:
    running.stop()
    again = RunningListener(args=[*FAST, *args], home=str(running.home))
    return again


def _make_read_only(path) -> list[str]:
    """chmod 0400, or — as root, whom modes do not stop — the immutable attribute. Returns the undo."""
    if os.getuid() != 0:
        path.chmod(0o400)
        return ["chmod", "600", str(path)]
    subprocess.run(["chattr", "+i", str(path)], check=True)
    return ["chattr", "-i", str(path)]


def test_a_read_only_log_stops_the_listener_from_starting(paired):
    paired.stop()
    undo = _make_read_only(paired.audit_log)
    try:
        with pytest.raises(OSError):
            open(paired.audit_log, "ab").close()  # the precondition: it really cannot be written
        blocked = RunningListener(args=FAST, home=str(paired.home))
        with pytest.raises(RuntimeError, match=r"cannot open the audit log .*(Permission denied|not permitted)"):
            blocked.start(timeout=15)
    finally:
        subprocess.run(undo, check=True)


def test_a_removed_log_folder_fails_closed_until_it_is_back(paired):
    logs = paired.home / "logs"
    moved = restart(paired, "--audit-log", str(logs / "audit.log")).start()
    try:
        assert moved.run("connect", "--domain", "github.com", check=False).returncode == 0
        shutil.rmtree(logs)
        refused = moved.run("connect", "--domain", "github.com", "--output", "json", check=False)
        assert refused.returncode == 1 and "audit log" in json.loads(refused.stdout)["error"]["message"]
        # Whichever noticed first — the write (file unlinked) or the once-a-second check (cannot reopen).
        assert re.search(r"audit log \S+/logs/audit\.log(:| was removed).*; refusing requests until it can be "
                         r"written", moved.output()), moved.output()
        logs.mkdir(mode=0o700)
        wait_for(lambda: moved.run("connect", "--domain", "github.com", check=False).returncode == 0,
                 timeout=10, what="the listener to write its log again")
        assert "can be written again" in moved.output()
        events = [json.loads(line) for line in (logs / "audit.log").read_text().splitlines()]
        assert events[0]["event"] == "audit_gap" and "audit log" in events[0]["reason"]
        assert [e["decision"] for e in events if e["event"] == "request"][-1] == "allowed"
    finally:
        moved.stop()


def test_audit_table_json_and_follow(paired):
    assert paired.run("connect", "--domain", "github.com", check=False).returncode == 0
    wait_for(lambda: len(paired.audit_events()) == 3, what="the lease_end after the request")
    table = paired.run("audit").stdout.splitlines()
    assert table[0].split() == ["TS", "EVENT", "PEER", "QUERY", "FIELDS", "DECISION", "CLAIM", "REASON"]
    assert "request" in table[-2] and "domain=github.com" in table[-2] and "allowed" in table[-2]
    assert "lease_end" in table[-1] and "the consumer never held the lease" in table[-1]
    events = [json.loads(line) for line in paired.run("audit", "--output", "json").stdout.splitlines()]
    assert [e["event"] for e in events] == ["pair", "request", "lease_end"]
    assert events[1]["provenance"]["argv0"] == "runwrap" and events[1]["provenance"]["cwd"]
    assert events[1]["ts"].endswith("Z") and events[1]["fields"] == ["username", "password", "totp", "uri",
                                                                     "notes", "domain", "credential_id"]

    follower = subprocess.Popen([runwrap_executable(), "audit", "--follow", "--output", "json"], env=paired.env,
                                stdout=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, "")), daemon=True)
        reader.start()
        wait_for(lambda: len(lines) >= 3, what="the existing events")
        assert paired.run("connect", "--domain", "test.com", check=False).returncode == 0
        wait_for(lambda: len(lines) >= 4, what="the new event")
        assert json.loads(lines[3])["query"] == {"domain": "test.com"}
    finally:
        follower.terminate()
        follower.wait(10)
