"""Rotation, the listener's half, against a real `runwrap listen --provider command --watch-interval 1s`.

The command provider's script reads its item from a JSON file the test rewrites and appends one line
to a counter file per call, so the number of lookups the listener makes is observable from outside.
A raw consumer (tests/helpers/watching.py) holds leases with `"watch": true` and reads what is pushed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.credential import Query
from runwrap.testing.listener import RunningListener
from runwrap.wire import messages
from tests.helpers.watching import Pushed, Watching
from tests.polling import wait_for

INTERVAL = 1.0
SCRIPT = """#!{python}
import json, sys
query = json.load(sys.stdin)
with open({calls!r}, "a") as out:
    out.write(json.dumps(query) + "\\n")
with open({items!r}) as f:
    items = json.load(f)
if items.get("fail"):
    sys.exit(3)
item = items.get(query.get("domain") or query.get("id"))
if item is None:
    print(json.dumps({{"error": "not_found"}}))
    sys.exit(1)
print(json.dumps(item))
"""
QUERY = Query(domain="example.org")


class Vault:
    """The script's item file and its call log."""

    def __init__(self, folder: Path) -> None:
        self.items = folder / "items.json"
        self.calls = folder / "calls.log"
        self.script = folder / "vault"
        self.script.write_text(SCRIPT.format(python=sys.executable, calls=str(self.calls), items=str(self.items)))
        self.script.chmod(0o700)
        self.set(password="pw-one", username="bob")

    def set(self, **item: str) -> None:
        temp = self.items.with_suffix(".tmp")
        temp.write_text(json.dumps({"example.org": item, "other.org": {"password": "pw-other"}}))
        temp.replace(self.items)

    def fail(self) -> None:
        temp = self.items.with_suffix(".tmp")
        temp.write_text(json.dumps({"fail": True}))
        temp.replace(self.items)

    def count(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path)


@pytest.fixture
def listener(vault: Vault) -> Iterator[RunningListener]:
    with RunningListener("command", args=["--watch-interval", f"{INTERVAL:g}s"],
                         provider_options={"command": str(vault.script)}) as running:
        running.pair()
        yield running


def _changed(watching: Watching, timeout: float) -> Pushed:
    pushed = watching.next(timeout)
    assert pushed is not None, f"no CHANGED within {timeout}s"
    assert pushed.kind == "changed", pushed.header
    return pushed


def test_a_change_is_pushed_to_every_watcher_with_one_lookup_per_tick(listener: RunningListener,
                                                                      vault: Vault) -> None:
    watchers = [Watching(listener.home, [(QUERY, ["password"])]) for _ in range(5)]
    try:
        assert all(w.value(0, "password") == "pw-one" for w in watchers)
        start, before = time.monotonic(), vault.count()
        wait_for(lambda: vault.count() >= before + 3, 10, "three ticks of the watcher")
        elapsed, made = time.monotonic() - start, vault.count() - before
        # Five leases on one item: one lookup a tick, not five.
        assert made <= elapsed / INTERVAL + 1, (made, elapsed)
        vault.set(password="pw-two", username="bob")
        changed_at = time.monotonic()
        for watching in watchers:
            pushed = _changed(watching, changed_at + INTERVAL + 2 - time.monotonic())
            assert pushed.header["seq"] == 1
            assert pushed.header["items"] == [{"request": 0, "reason": "changed", "ttl": None, "available": None}]
            assert pushed.values == {"0/password": "pw-two"}  # only the field that request named
        for watching in watchers:
            watching.rotated(1)
        events = wait_for(lambda: [e for e in listener.audit_events() if e["event"] == "rotated"][4:] and
                          listener.audit_events(), 5, "five rotated events")
        changed = [e for e in events if e["event"] == "changed"]
        assert len(changed) == 5
        assert {e["lease"] for e in changed} == {e["lease"] for e in events if e["event"] == "rotated"}
        assert all(e["items"] == ["domain example.org"] and e["reason"] == "changed" and e["peer"] == "tests"
                   for e in changed)
        log = listener.audit_log.read_text()
        assert "pw-two" not in log and "pw-one" not in log
    finally:
        for watching in watchers:
            watching.end()


def test_the_same_data_again_or_another_field_pushes_nothing(listener: RunningListener, vault: Vault) -> None:
    with Watching(listener.home, [(QUERY, ["password"])]) as watching:
        before = vault.count()
        vault.set(password="pw-one", username="bob")  # rewritten, same data
        wait_for(lambda: vault.count() >= before + 2, 10, "two lookups")
        vault.set(password="pw-one", username="carol")  # a field this request did not name
        later = vault.count()
        wait_for(lambda: vault.count() >= later + 2, 10, "two more lookups")
        assert watching.next(0.2) is None
        assert not [e for e in listener.audit_events() if e["event"] == "changed"]


def test_a_lease_that_does_not_watch_is_never_looked_up(listener: RunningListener, vault: Vault) -> None:
    with Watching(listener.home, [(QUERY, ["password"])], watch=False) as quiet, \
            Watching(listener.home, [(Query(domain="other.org"), ["password"])]) as other:
        before = [json.loads(line) for line in vault.calls.read_text().splitlines()]
        wait_for(lambda: vault.count() >= len(before) + 3, 10, "three ticks")
        after = [json.loads(line) for line in vault.calls.read_text().splitlines()][len(before):]
        assert {json.dumps(q) for q in after} == {json.dumps({"domain": "other.org"})}
        vault.set(password="pw-two", username="bob")
        assert quiet.next(INTERVAL + 1) is None
        assert other.next(0.1) is None


def test_two_requests_on_one_session_are_named_by_their_index(listener: RunningListener, vault: Vault) -> None:
    with Watching(listener.home, [(Query(domain="other.org"), ["password"]),
                                  (QUERY, ["username", "password"])]) as watching:
        assert watching.value(1, "username") == "bob"
        vault.set(password="pw-two", username="bob")
        pushed = _changed(watching, INTERVAL + 2)
        assert [item["request"] for item in pushed.header["items"]] == [1]
        assert pushed.values == {"1/username": "bob", "1/password": "pw-two"}


def test_a_failing_lookup_is_audited_once_and_is_no_change(listener: RunningListener, vault: Vault) -> None:
    with Watching(listener.home, [(QUERY, ["password"])]) as watching:
        vault.fail()
        before = vault.count()
        wait_for(lambda: vault.count() >= before + 3, 10, "three failing lookups")
        failed = [e for e in listener.audit_events() if e["event"] == "watch_failed"]
        assert len(failed) == 1 and failed[0]["query"] == {"domain": "example.org"}, failed
        assert "exited with status 3" in failed[0]["reason"]
        assert watching.next(0.1) is None
        vault.set(password="pw-one", username="bob")  # back, unchanged: nothing to push
        later = vault.count()
        wait_for(lambda: vault.count() >= later + 2, 10, "two good lookups")
        assert watching.next(0.1) is None
        vault.set(password="pw-three", username="bob")
        assert _changed(watching, INTERVAL + 2).values == {"0/password": "pw-three"}


def test_a_peer_out_of_scope_gets_no_new_value_and_is_revoked(listener: RunningListener, vault: Vault) -> None:
    home = listener.paired_home("narrow", ["example.org"])
    with Watching(home, [(QUERY, ["password"])]) as watching:
        listener.run("peers", "scope", "narrow", "other.org")
        vault.set(password="pw-two", username="bob")
        pushed = watching.next(INTERVAL + 2)
        assert pushed is not None and pushed.kind == "revoke", pushed and pushed.header
        assert "outside the scope" in pushed.header["reason"]
        assert "pw-two" not in json.dumps(pushed.header) and not pushed.values
    events = wait_for(lambda: [e for e in listener.audit_events() if e["event"] == "lease_end"
                               and e["peer"] == "narrow"], 5, "the narrow peer's lease_end")
    assert "outside the scope" in events[0]["reason"]
    assert not [e for e in listener.audit_events() if e["event"] == "changed"]


def _lookups_of(vault: Vault, domain: str) -> int:
    text = vault.calls.read_text() if vault.calls.exists() else ""
    return sum(1 for line in text.splitlines() if json.loads(line).get("domain") == domain)


def test_a_consumer_that_is_gone_is_cleaned_up(listener: RunningListener, vault: Vault) -> None:
    with Watching(listener.home, [(Query(domain="other.org"), ["password"])]):  # shows the ticks go on
        gone = Watching(listener.home, [(QUERY, ["password"])])
        wait_for(lambda: _lookups_of(vault, "example.org") >= 2, 10, "a watch lookup of example.org")
        gone.channel.close()  # killed: no LEASE_END
        ended = wait_for(lambda: [e for e in listener.audit_events() if e["event"] == "lease_end"], 5,
                         "its lease_end")
        assert ended[0]["reason"] == "connection closed before the consumer reported an exit"
        before, ticks = _lookups_of(vault, "example.org"), _lookups_of(vault, "other.org")
        wait_for(lambda: _lookups_of(vault, "other.org") >= ticks + 3, 10, "three more ticks")
        assert _lookups_of(vault, "example.org") <= before + 1  # at most a tick that was under way


def test_a_new_value_over_one_noise_message_is_pushed_in_parts(listener: RunningListener, vault: Vault) -> None:
    # A rotated certificate chain or kubeconfig is as large as a first answer may be (messages.PARTS):
    # the CHANGED carrying it cannot fit one Noise transport message either.
    big = "k" * 200_000
    with Watching(listener.home, [(QUERY, ["password"])]) as watching:
        vault.set(password=big, username="bob")
        pushed = _changed(watching, INTERVAL + 5)
        assert pushed.value(0, "password") == big
        assert watching.next(0.5) is None  # nothing left over on the session after the parts


def test_a_new_value_over_the_answer_limit_is_audited_once_and_not_pushed(listener: RunningListener,
                                                                          vault: Vault) -> None:
    too_big = "k" * (messages.MAX_ANSWER + 1)
    with Watching(listener.home, [(QUERY, ["password"])]) as watching:
        vault.set(password=too_big, username="bob")
        before = vault.count()
        wait_for(lambda: vault.count() >= before + 4, 15, "four lookups of the oversized value")
        failed = [e for e in listener.audit_events() if e["event"] == "watch_failed"]
        assert len(failed) == 1, failed  # once, not at every tick
        assert f"over {messages.MAX_ANSWER} bytes" in failed[0]["reason"]
        assert "kkkk" not in json.dumps(failed)
        assert watching.next(0.1) is None  # the children keep what they were given
        vault.set(password="pw-small", username="bob")  # a value that fits is pushed again
        assert _changed(watching, INTERVAL + 2).values == {"0/password": "pw-small"}
