"""Fast tests of the pure policy logic: scope patterns, matching, the token bucket, audit lines."""

from __future__ import annotations

import json
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


def test_token_bucket_bursts_then_refills_evenly():
    now = [100.0]
    bucket = policy.TokenBucket(3, 60.0, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(20.0)  # one token every 20 s
    now[0] += 19.0
    assert bucket.take() == pytest.approx(1.0)
    now[0] += 1.0
    assert bucket.take() == 0.0
    now[0] += 1000.0  # never more than the burst
    assert [bucket.take() for _ in range(4)][-1] > 0


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


def test_write_to_a_full_device_raises():
    log = AuditLog(Path("/dev/full"))
    with pytest.raises(AuditError, match="No space left"):
        log.write("request")
    log.close()


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
    log.check()
    log.write("request", peer="b")
    log.close()
    assert [e["peer"] for e in read_events(folder / "audit.log")] == ["b"]


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
