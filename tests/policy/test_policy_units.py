"""Fast tests of the pure policy logic: scope patterns, matching, the token bucket, the decision on one
query (each rule and their order, on a fake clock), audit lines, the peers file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from runwrap.credential import Query
from runwrap.listener import policy
from runwrap.listener.audit import AuditError, AuditLog, format_row, read_events


@pytest.mark.parametrize(("pattern", "canonical"), [
    ("github.com", "github.com"),
    ("GitHub.COM.", "github.com"),
    ("*.Example.com", "*.example.com"),
    ("id:8b4c5e0a-0000-4000-8000-000000000001", "id:8b4c5e0a-0000-4000-8000-000000000001"),
    ("*", "*"),
])
def test_patterns_are_canonical(pattern, canonical):
    assert policy.check_pattern(pattern) == canonical


@pytest.mark.parametrize("pattern", ["id:../../etc", "id:/etc/passwd", "id:", "*.", "example.*", "**.a.com",
                                     "a b", "github.com/x", "ID:abc", ""])
def test_bad_patterns_are_refused_with_the_accepted_forms(pattern):
    with pytest.raises(ValueError, match="not a scope pattern"):
        policy.check_pattern(pattern)


@pytest.mark.parametrize(("scope", "query", "allowed"), [
    (["github.com"], Query(domain="GITHUB.com"), True),
    (["github.com"], Query(domain="github.com."), True),
    (["github.com"], Query(domain="api.github.com"), False),
    (["github.com"], Query(domain="notgithub.com"), False),
    (["*.example.com"], Query(domain="example.com"), False),
    (["*.example.com"], Query(domain="WWW.Example.Com."), True),
    (["*.example.com"], Query(domain="a.b.example.com"), True),
    (["*.example.com"], Query(domain="badexample.com"), False),
    (["*.example.com"], Query(domain="example.com.evil.org"), False),
    (["id:8b4c5e0a-0000-4000-8000-000000000001"], Query(id="8b4c5e0a-0000-4000-8000-000000000001"), True),
    (["id:8b4c5e0a-0000-4000-8000-000000000001"], Query(id="8B4C5E0A-0000-4000-8000-000000000001"), False),
    (["id:web:github.com"], Query(id="web:github.com:..:..:etc"), False),
    (["id:8b4c5e0a-0000-4000-8000-000000000001"], Query(domain="github.com"), False),
    (["github.com"], Query(id="8b4c5e0a-0000-4000-8000-000000000001"), False),
    (["*"], Query(id="anything"), True),
    ([], Query(domain="github.com"), False),
])
def test_scope_matching(scope, query, allowed):
    assert policy.allows([policy.check_pattern(p) for p in scope], query) is allowed


@pytest.mark.parametrize("bad_id", ["../../etc", "/etc/passwd", "a/../b", "..", "x\0y"])
def test_ids_that_look_like_paths_are_not_queries(bad_id):
    with pytest.raises(ValueError, match="not a vault item id"):
        Query(id=bad_id)


class FakeClock:
    """The listener's monotonic clock, moved by hand."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def take(bucket: policy.TokenBucket, clock: FakeClock) -> tuple[float, policy.TokenBucket]:
    return bucket.take(clock())


def test_token_bucket_bursts_then_refills_evenly():
    clock = FakeClock()
    bucket = policy.TokenBucket.full(3, 60.0, clock())
    waits = []
    for _ in range(3):
        wait, bucket = take(bucket, clock)
        waits.append(wait)
    assert waits == [0.0, 0.0, 0.0]
    wait, bucket = take(bucket, clock)
    assert wait == pytest.approx(20.0)  # one token every 20 s
    clock.now += 19.0
    wait, bucket = take(bucket, clock)
    assert wait == pytest.approx(1.0)
    clock.now += 1.0
    wait, bucket = take(bucket, clock)
    assert wait == 0.0
    clock.now += 1000.0  # never more than the burst
    for _ in range(4):
        wait, bucket = take(bucket, clock)
    assert wait > 0


def test_a_token_bucket_is_a_value_that_take_does_not_change():
    bucket = policy.TokenBucket.full(1, 60.0, 100.0)
    assert bucket.take(100.0)[0] == 0.0
    assert bucket.take(100.0)[0] == 0.0  # the same state twice: the same answer


# ---- the decision on one query: each rule, and which one wins ----

QUERY = Query(domain="github.com")


def decide(clock: FakeClock | None = None, *, scope: Sequence[str] = ("*",), revoked: bool = False,
           lease_ended: bool = False, audit_broken: str | None = None,
           rate: policy.RateState | None = None, query: Query = QUERY) -> policy.Decision:
    """policy.decide for peer `ci` asking for github.com: healthy, unrevoked, scope `*`, unless told."""
    return policy.decide(query, peer="ci", scope=scope, revoked=revoked, lease_ended=lease_ended,
                         audit_broken=audit_broken, rate=rate, now=(clock or FakeClock())())


def spent_rate(clock: FakeClock) -> policy.RateState:
    """A limit of 2 different items a minute, both taken (by other items) 30 s ago."""
    fresh = policy.RateState.fresh(2, 60.0, clock())
    return policy.RateState(2, 60.0, (("domain a.com", clock() - 30.0), ("domain b.com", clock() - 20.0)),
                            fresh.flood)


def test_a_query_in_scope_of_a_healthy_peer_is_allowed():
    verdict = decide()
    assert (verdict.allowed, verdict.decision, verdict.code, verdict.reason, verdict.retry_after) == (
        True, "allowed", "", "", None)


def test_a_query_outside_the_scope_is_denied_with_the_way_to_widen_it():
    verdict = decide(scope=["*.example.com"])
    assert (verdict.decision, verdict.code) == ("denied", "denied")
    assert verdict.reason == ("domain github.com is outside the scope of peer ci (*.example.com); the listener's "
                              "owner can change it with `runwrap peers scope ci PATTERN...`")
    assert "(nothing)" in decide(scope=[]).reason


def test_a_revoked_peer_is_refused_as_revoked():
    verdict = decide(revoked=True)
    assert (verdict.decision, verdict.code, verdict.reason) == (
        "revoked", "revoked", "this peer was revoked on the listener")


def test_an_ended_lease_is_refused_as_revoked():
    verdict = decide(lease_ended=True)
    assert (verdict.decision, verdict.code, verdict.reason) == (
        "revoked", "revoked", "this lease was ended by the listener")


def test_a_broken_audit_log_refuses_everything_and_says_why():
    verdict = decide(audit_broken="disk full")
    assert (verdict.decision, verdict.code) == ("error", "error")
    assert verdict.reason == ("the listener cannot write its audit log, so it refuses requests until it can "
                              "(disk full)")


def test_a_new_item_past_the_limit_is_rate_limited_with_when_to_retry():
    clock = FakeClock()
    verdict = decide(clock, rate=spent_rate(clock))
    assert (verdict.decision, verdict.code, verdict.retry_after) == ("rate_limited", "rate_limited", 30.0)
    assert verdict.reason == "rate limit of 2 different items per 1m reached for peer ci; retry in 30.0s"


def test_repeats_of_an_item_received_in_the_period_are_not_limited():
    clock = FakeClock()
    rate = policy.RateState.fresh(1, 60.0, clock())
    for _ in range(1000):  # a build running one profile over and over
        verdict = decide(clock, rate=rate)
        assert verdict.allowed and verdict.rate is not None
        rate = verdict.rate
        clock.now += 0.05  # 20 a second: under the flood guard
    assert decide(clock, rate=rate, query=Query(domain="other.com")).decision == "rate_limited"


def test_an_enumeration_is_limited_at_n_plus_one_different_items():
    clock = FakeClock()
    rate = policy.RateState.fresh(5, 60.0, clock())
    decisions = []
    for n in range(6):
        verdict = decide(clock, rate=rate, query=Query(domain=f"host{n}.example.com"))
        decisions.append(verdict.decision)
        rate = verdict.rate or rate
    assert decisions == ["allowed"] * 5 + ["rate_limited"]


def test_the_rate_state_comes_back_only_when_the_query_was_counted():
    clock = FakeClock()
    fresh = policy.RateState.fresh(2, 60.0, clock())
    counted = decide(clock, rate=fresh).rate
    assert counted is not None and counted.seen == (("domain github.com", clock()),)
    assert decide(clock).rate is None  # a re-check after approval or lookup is not counted


def test_the_window_slides_with_the_injected_clock():
    clock = FakeClock()
    rate = spent_rate(clock)
    assert decide(clock, rate=rate).decision == "rate_limited"
    clock.now += 30.0  # the oldest item leaves the window
    assert decide(clock, rate=rate).allowed


def test_every_denied_query_counts_even_a_repeat():
    clock = FakeClock()
    rate = policy.RateState.fresh(2, 60.0, clock())
    for _ in range(2):
        verdict = decide(clock, rate=rate, scope=["example.com"])
        assert verdict.decision == "denied" and verdict.rate is not None
        rate = verdict.rate
    assert decide(clock, rate=rate, scope=["example.com"]).decision == "rate_limited"
    assert decide(clock, rate=rate).decision == "rate_limited"  # and an allowed new item after the probes


def test_the_flood_guard_limits_repeats_too():
    clock = FakeClock()
    rate = policy.RateState.fresh(5, 60.0, clock())
    for _ in range(policy.FLOOD_BURST):
        verdict = decide(clock, rate=rate)
        assert verdict.allowed and verdict.rate is not None
        rate = verdict.rate
    verdict = decide(clock, rate=rate)
    assert verdict.decision == "rate_limited" and verdict.retry_after == round(1 / policy.FLOOD_PER_SECOND, 3)
    assert verdict.reason.startswith(f"more than {policy.FLOOD_BURST} requests at once reached for peer ci")


def test_the_flood_guard_is_never_tighter_than_the_rate_the_owner_chose():
    # `listen --rate 100000/1s` (a load test): repeats of one item are not cut at the default guard.
    clock = FakeClock()
    rate = policy.RateState.fresh(100_000, 1.0, clock())
    for _ in range(policy.FLOOD_BURST * 5):
        verdict = decide(clock, rate=rate)
        assert verdict.allowed and verdict.rate is not None
        rate = verdict.rate
    assert rate.flood.capacity == 100_000


@pytest.mark.parametrize("rule", ["scope", "rate", "lease"])
def test_revoked_wins_over_every_rule_but_the_audit_log(rule):
    clock = FakeClock()
    if rule == "scope":
        verdict = decide(clock, revoked=True, scope=[])
    elif rule == "rate":
        verdict = decide(clock, revoked=True, rate=spent_rate(clock))
    else:
        verdict = decide(clock, revoked=True, lease_ended=True)
    assert (verdict.decision, verdict.reason) == ("revoked", "this peer was revoked on the listener")
    assert verdict.rate is None  # a revoked peer's queries are not counted


def test_an_ended_lease_wins_over_rate_and_scope():
    clock = FakeClock()
    verdict = decide(clock, lease_ended=True, rate=spent_rate(clock), scope=[])
    assert (verdict.decision, verdict.reason) == ("revoked", "this lease was ended by the listener")


def test_a_broken_audit_log_wins_over_everything():
    clock = FakeClock()
    verdict = decide(clock, audit_broken="gone", revoked=True, lease_ended=True, rate=spent_rate(clock),
                     scope=[])
    assert verdict.decision == "error" and verdict.rate is None


def test_torn_last_line_is_closed_and_skipped(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.write("request", peer="a", decision="allowed")
    log.close()
    with open(path, "ab") as handle:
        handle.write(b'{"ts":"2026-01-01T00:00:00Z","event":"requ')  # a crash mid-write
    log = AuditLog(path)
    log.write("request", peer="b", decision="denied")
    log.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    assert [e["peer"] for e in read_events(path)] == ["a", "b"]
    json.loads(lines[2])  # the event after the torn line starts on a line of its own


@pytest.mark.parametrize("device", ["/dev/full", "/dev/null"])
def test_a_device_is_refused_not_written(device):
    with pytest.raises(AuditError, match=f"the audit log {device} is a character device, not a regular file"):
        AuditLog(Path(device))


def test_a_removed_file_is_noticed_and_a_recreated_folder_reopened(tmp_path):
    folder = tmp_path / "state"
    log = AuditLog(folder / "audit.log")
    log.write("request", peer="a")
    (folder / "audit.log").unlink()
    folder.rmdir()
    with pytest.raises(AuditError, match="was removed"):
        log.write("request", peer="lost")
    with pytest.raises(AuditError):
        log.check()  # the folder is gone: nothing to reopen
    folder.mkdir()
    assert log.check() is True  # back in service, and the gap is on the record
    log.write("request", peer="b")
    log.close()
    events = list(read_events(folder / "audit.log"))
    assert [e["event"] for e in events] == ["audit_gap", "request"] and events[1]["peer"] == "b"
    assert events[0]["lost"] == 1 and "was removed while the listener ran" in events[0]["reason"]


def test_table_rows_cannot_drive_a_terminal():
    row = format_row({"ts": "t", "event": "request", "peer": "p", "query": {"domain": "github.com"},
                      "fields": ["password"], "decision": "allowed",
                      "provenance": {"argv0": "evil\x1b[2Jx", "profile": "deploy"}, "reason": "r\x07"})
    assert row[6] == "evil?[2Jx (deploy)" and row[7] == "r?"


GOOD_KEY = "11" * 32


@pytest.mark.parametrize("entry", [
    {"public": GOOD_KEY},
    {"public": GOOD_KEY, "scope": None},
    {"public": GOOD_KEY, "scope": "*"},
    {"public": GOOD_KEY, "scope": ["github.com", 7]},
    {"public": GOOD_KEY, "scope": ["id:../../etc"]},
    {"public": GOOD_KEY, "scope": ["*"], "revoked": "no"},
    {"public": "zz", "scope": ["*"]},
    {"public": GOOD_KEY, "scope": ["*"], "admin": True},
])
def test_a_hand_edited_peer_entry_that_is_malformed_is_refused_never_widened(tmp_path, entry):
    from runwrap.errors import ConfigError
    from runwrap.listener.peers import Peers

    path = tmp_path / "peers.json"
    path.write_text(json.dumps({"peers": {"ci": entry}}))
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="does not understand"):
        Peers(path)


def test_a_well_formed_peer_entry_is_read_as_written(tmp_path):
    from runwrap.listener.peers import Peers

    path = tmp_path / "peers.json"
    path.write_text(json.dumps({"peers": {"ci": {"public": GOOD_KEY, "scope": ["GitHub.com"], "revoked": True}}}))
    path.chmod(0o600)
    peer = Peers(path).by_name["ci"]
    assert (peer.scope, peer.revoked, peer.public_bytes) == (["GitHub.com"], True, bytes.fromhex(GOOD_KEY))


def _write_peers(path: Path, peers: dict[str, dict[str, object]]) -> None:
    path.write_text(json.dumps({"peers": peers}))
    path.chmod(0o600)


def test_peers_follow_a_hand_edit_of_the_file(tmp_path):
    from runwrap.listener.peers import Peers

    path = tmp_path / "peers.json"
    _write_peers(path, {"ci": {"public": GOOD_KEY, "scope": ["*"]}, "old": {"public": "22" * 32, "scope": ["*"]}})
    peers = Peers(path)
    peers.refresh()  # unchanged: what was read stays, in-memory state and all
    peers.by_name["ci"].scope = ["github.com"]
    peers.refresh()
    assert peers.by_name["ci"].scope == ["github.com"]
    _write_peers(path, {"ci": {"public": GOOD_KEY, "scope": ["*"]}})  # `old` removed by hand
    peers.refresh()
    assert set(peers.by_name) == {"ci"} and peers.by_name["ci"].scope == ["*"]


def test_peers_refuse_a_broken_edit_until_it_is_fixed(tmp_path):
    from runwrap.errors import ConfigError
    from runwrap.listener.peers import Peers

    path = tmp_path / "peers.json"
    _write_peers(path, {"ci": {"public": GOOD_KEY, "scope": ["*"]}})
    peers = Peers(path)
    path.write_text('{"peers": {"ci": ')
    for _ in range(2):  # every call fails closed, not only the first after the edit
        with pytest.raises(ConfigError, match="not valid JSON"):
            peers.refresh()
    _write_peers(path, {"ci": {"public": GOOD_KEY, "scope": ["github.com"]}})
    peers.refresh()
    assert peers.by_name["ci"].scope == ["github.com"]


@pytest.mark.parametrize(("text", "rate"), [
    ("5/min", (5, 60.0)), ("5/minute", (5, 60.0)), ("5/minutes", (5, 60.0)), ("100/s", (100, 1.0)),
    ("100/sec", (100, 1.0)), ("3600/hour", (3600, 3600.0)), ("5/1m", (5, 60.0)), ("120/1m", (120, 60.0)),
    ("10/m", (10, 60.0)), ("2/day", (2, 86400.0)), ("7/30s", (7, 30.0))])
def test_rates_as_people_write_them(text, rate):
    from runwrap.durations import parse_rate

    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["5", "5/", "x/min", "0/min", "5/fortnight", "5/0s"])
def test_bad_rates_are_refused_with_the_forms(text):
    from runwrap.durations import parse_rate

    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(text)
