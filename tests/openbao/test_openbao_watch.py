"""Rotation against the session's real `bao server -dev`: a `runwrap listen --provider openbao
--watch-interval 1s` and a raw watching consumer (tests/helpers/watching.py).

A KV v2 item written again gives CHANGED with the new value; the same data written again (a new
version) gives nothing, though the version is seen; while nothing changes the listener reads only the
item's metadata (a policy narrowed to metadata shows it); a dynamic database secret at its
max TTL is replaced by a new role, and the old one leaves pg_roles once the consumer says ROTATED.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from runwrap.credential import Query
from runwrap.testing.listener import RunningListener
from tests.helpers.watching import Watching
from tests.polling import wait_for

from .bao_kit import LISTENER_POLICY, BaoServer, Postgres, watching_listener

INTERVAL = 1.0


@pytest.fixture(scope="module")
def listener(bao: BaoServer, listener_token: str) -> Iterator[RunningListener]:
    with watching_listener(bao, listener_token, INTERVAL) as running:
        yield running


@pytest.fixture
def item(bao: BaoServer) -> str:
    """A fresh KV v2 item for one test: its domain (secret/runwrap/DOMAIN)."""
    domain = f"watch-{secrets.token_hex(4)}.test"
    bao.kv_put(f"secret/runwrap/{domain}", {"username": "alice", "password": "pw-1"})
    return domain


def _events(listener: RunningListener, event: str) -> list[dict[str, object]]:
    return [e for e in listener.audit_events() if e["event"] == event]


def test_a_kv_change_is_pushed_within_the_interval(listener: RunningListener, bao: BaoServer, item: str) -> None:
    with Watching(listener.home, [(Query(domain=item), ["password"])]) as watching:
        assert watching.value(0, "password") == "pw-1"
        bao.kv_put(f"secret/runwrap/{item}", {"username": "alice", "password": "pw-2"})
        written = time.monotonic()
        pushed = watching.next(INTERVAL + 2)
        took = time.monotonic() - written
        assert pushed is not None and pushed.kind == "changed", pushed and pushed.header
        assert pushed.values == {"0/password": "pw-2"}, took
        assert pushed.header["items"][0]["reason"] == "changed"
        watching.rotated(pushed.header["seq"])
        wait_for(lambda: _events(listener, "rotated"), 5, "the rotated event")
    changed = [e for e in _events(listener, "changed") if e["items"] == [f"domain {item}"]]
    assert len(changed) == 1 and changed[0]["peer"] == "tests"
    assert "pw-2" not in listener.audit_log.read_text()


def test_the_same_data_in_a_new_version_pushes_nothing(listener: RunningListener, bao: BaoServer, item: str) -> None:
    with Watching(listener.home, [(Query(domain=item), ["username", "password"])]) as watching:
        bao.kv_put(f"secret/runwrap/{item}", {"username": "alice", "password": "pw-1"})  # version 2, same data
        seen = wait_for(lambda: [e for e in _events(listener, "watch_unchanged") if e["query"] == {"domain": item}],
                        INTERVAL + 5, "the new version to be seen")
        assert seen[0]["leases"] == 1
        assert watching.next(INTERVAL + 0.5) is None
        bao.kv_put(f"secret/runwrap/{item}", {"username": "alice", "password": "pw-3"})  # version 3: a change
        pushed = watching.next(INTERVAL + 2)
        assert pushed is not None and pushed.values == {"0/username": "alice", "0/password": "pw-3"}


def test_while_the_version_stays_only_the_metadata_is_read(bao: BaoServer, item: str) -> None:
    # A listener of its own, on a policy of its own that the test then narrows to metadata only: a
    # full lookup would now be refused (and audited as watch_failed), a metadata read is not.
    bao.ok("PUT", "sys/policies/acl/rwwatch", {"policy": LISTENER_POLICY})
    token = bao.grant(policy="rwwatch")
    with RunningListener("openbao", args=["--watch-interval", f"{INTERVAL:g}s"],
                         provider_options={"address": bao.address}, extra_env={"BAO_TOKEN": token}) as running:
        running.pair()
        with Watching(running.home, [(Query(domain=item), ["password"])]) as watching:
            wait_for(lambda: watching.next(INTERVAL * 2) is None, 10, "a first check")
            narrowed = LISTENER_POLICY.replace('path "secret/data/runwrap/*"', 'path "secret/data/nothing/*"')
            bao.ok("PUT", "sys/policies/acl/rwwatch", {"policy": narrowed})
            failed = lambda: [e for e in _events(running, "watch_failed") if e["query"] == {"domain": item}]  # noqa: E731
            until = time.monotonic() + INTERVAL * 3
            wait_for(lambda: failed() or time.monotonic() > until, 10, "three ticks")
            assert not failed()  # three ticks and no data read
            bao.kv_put(f"secret/runwrap/{item}", {"username": "alice", "password": "pw-1"})  # a new version
            seen = wait_for(failed, INTERVAL + 5, "the full lookup the new version asks for")
            assert "permission denied" in str(seen[0]["reason"]) and watching.next(0.1) is None


def test_a_deleted_item_is_audited_once_and_is_no_change(listener: RunningListener, bao: BaoServer,
                                                         item: str) -> None:
    with Watching(listener.home, [(Query(domain=item), ["password"])]) as watching:
        bao.ok("DELETE", f"secret/data/runwrap/{item}")
        failed = wait_for(lambda: [e for e in _events(listener, "watch_failed") if e["query"] == {"domain": item}],
                          INTERVAL + 5, "the failed lookup")
        assert watching.next(INTERVAL * 2.5) is None
        assert len([e for e in _events(listener, "watch_failed") if e["query"] == {"domain": item}]) == 1
        assert failed[0]["decision"] == "not_found"


def test_a_dynamic_secret_at_its_max_ttl_is_replaced_and_the_old_role_goes(listener: RunningListener,
                                                                         database: Postgres) -> None:
    # Role `eight`: 6 s leases, max 8 s. The renewal at 4 s is cut short: a new role is read and pushed.
    with Watching(listener.home, [(Query(id="database/creds/eight"), ["username", "password"])]) as watching:
        old = watching.value(0, "username")
        assert old in database.roles()
        pushed = watching.next(15)
        assert pushed is not None and pushed.kind == "changed", pushed and pushed.header
        (entry,) = pushed.header["items"]
        assert entry["reason"] == "max_ttl" and entry["ttl"] == 6
        new = pushed.value(0, "username")
        assert new != old and new in database.roles()
        assert database.psql("SELECT 1", user=new, password=pushed.value(0, "password")).stdout.strip() == "1"
        assert old in database.roles()  # still in use until the consumer says so
        watching.rotated(pushed.header["seq"])
        wait_for(lambda: old not in database.roles(), 10, "the old role to be revoked")
        assert new in database.roles()
        revoked = [e for e in _events(listener, "dynamic_revoke") if "confirmed" in str(e.get("reason"))]
        assert revoked and revoked[0]["decision"] == "revoked"
        assert [e["reason"] for e in _events(listener, "changed") if e["lease"] == revoked[0]["lease"]] == ["max_ttl"]
    wait_for(lambda: new not in database.roles(), 10, "the new role to go with the lease")
