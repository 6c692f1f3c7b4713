"""Approval on the listener's terminal, driven in tmux: the question names the peer, the domain, the
fields and the consumer's claim; the vault is not read before the answer; `first` remembers it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.polling import wait_for

from .policy_support import calls_made, recorder, start_listener_in_pane


@pytest.fixture
def recorded(tmp_path) -> Iterator[tuple[RunningListener, dict[str, str], object]]:
    options, calls = recorder(tmp_path)
    running = RunningListener("command", provider_options=options)  # its home and env; started in a pane
    try:
        yield running, options, calls
    finally:
        running.cleanup()


def consumer(running: RunningListener, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([runwrap_executable(), *args], env=running.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_always_asks_before_the_vault_is_read_and_the_answer_decides(recorded, tmp_path):
    running, options, calls = recorded
    pane = start_listener_in_pane(running, "always", ["--approve", "always"], options)
    try:
        running.pair("laptop", ["*"])
        profile = tmp_path / "deploy.yaml"
        profile.write_text("credentials:\n  - domain: github.com\n    env:\n      TOKEN: password\n"
                           "      WHO: username\n")
        yes = consumer(running, str(profile), "--", "sh", "-c", 'test "$WHO" = rec')
        text = pane.wait_text("allow? [y/N]")
        assert "peer laptop asks for domain github.com (fields: password, username)" in text
        assert "it says it will run sh with profile deploy" in text and "its claim, not proof" in text
        time.sleep(0.5)  # a question left open a while must still not have read the vault
        assert calls_made(calls) == 0 and yes.poll() is None
        pane.send("y", "Enter")
        assert yes.wait(timeout=15) == 0, yes.stderr.read() if yes.stderr else ""
        assert calls_made(calls) == 1

        no = consumer(running, "connect", "--domain", "test.com", "--output", "json")
        pane.wait_text("allow? [y/N]", count=2)
        assert "peer laptop asks for domain test.com" in pane.text()
        pane.send("n", "Enter")
        out, _ = no.communicate(timeout=15)
        assert no.returncode == 4 and "domain test.com was not approved on the listener" in out
        assert calls_made(calls) == 1  # a refusal never reaches the vault

        events = [e for e in running.audit_events() if e["event"] == "request"]
        assert [(e["query"]["domain"], e["decision"]) for e in events] == [("github.com", "allowed"),
                                                                           ("test.com", "denied")]
        assert events[0]["provenance"]["argv0"] == "sh" and events[0]["provenance"]["profile"] == "deploy"
    finally:
        pane.close()


def test_first_asks_once_per_peer_and_domain_and_forgets_after_the_ttl(recorded):
    running, options, calls = recorded
    pane = start_listener_in_pane(running, "first", ["--approve", "first", "--approve-ttl", "4s"], options)
    try:
        running.pair("ci", ["*"])
        asked = consumer(running, "connect", "--domain", "github.com")
        pane.wait_text("allow for 4s? [y/N]")
        pane.send("y", "Enter")
        assert asked.wait(timeout=15) == 0
        remembered_at = time.monotonic()
        again = running.run("connect", "--domain", "GitHub.com.", check=False)  # the same domain
        assert again.returncode == 0 and time.monotonic() - remembered_at < 4
        assert pane.text().count("allow for 4s?") == 1

        other = consumer(running, "connect", "--domain", "test.com")
        pane.wait_text("allow for 4s? [y/N]", count=2)
        pane.send("n", "Enter")
        assert other.wait(timeout=15) == 4
        refused = running.run("connect", "--domain", "test.com", check=False)  # the no is remembered too
        assert refused.returncode == 4 and "not approved" in refused.stderr
        assert pane.text().count("allow for 4s?") == 2
        assert calls_made(calls) == 2

        wait_for(lambda: time.monotonic() - remembered_at > 4.5, timeout=10, what="the ttl to pass")
        later = consumer(running, "connect", "--domain", "github.com")
        pane.wait_text("allow for 4s? [y/N]", count=3)
        pane.send("y", "Enter")
        assert later.wait(timeout=15) == 0
    finally:
        pane.close()


def test_approval_without_a_terminal_is_refused_at_start():
    with pytest.raises(RuntimeError, match="asks on the listener's terminal, and this listener has none"):
        with RunningListener(args=["--approve", "always"]):
            pass


def test_term_while_a_question_waits_stops_the_listener_at_once(recorded, tmp_path):
    # The question waits on the terminal in a thread; a TERM must not wait for its answer (or its
    # --approve-timeout) before the listener stops, and nothing may be read or started meanwhile.
    running, options, calls = recorded
    pane = start_listener_in_pane(running, "term", ["--approve", "always", "--approve-timeout", "60s"], options)
    try:
        running.pair("laptop", ["*"])
        marker = tmp_path / "ran"
        waiting = consumer(running, "connect", "--domain", "github.com", "--output", "json")
        child = consumer(running, "exec", "--domain", "test.com", "--", "touch", str(marker))
        pane.wait_text("allow? [y/N]")
        pid = json.loads((running.home / "listener.json").read_text())["pid"]
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        text = pane.wait_text("LISTENER-EXITED=", timeout=10)
        assert time.monotonic() - started < 3, text
        assert "LISTENER-EXITED=0" in text
        assert waiting.wait(timeout=10) == 2 and child.wait(timeout=10) == 125  # the listener went away
        assert waiting.stdout is not None and child.stderr is not None
        assert json.loads(waiting.stdout.read())["success"] is False  # connect --output json: on stdout
        assert len(child.stderr.read().strip().splitlines()) == 1
        assert not marker.exists() and calls_made(calls) == 0
    finally:
        pane.close()
