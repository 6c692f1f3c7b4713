"""Reconnection with Noise IK: only the keys of current peers get a session, and an unknown, removed
or revoked key (or a message 1 with a payload) is refused and audited before any request is read."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from runwrap.consumer.client import Channel
from runwrap.consumer.connections import Connections
from runwrap.errors import FingerprintMismatch, HandshakeFailed
from runwrap.listener.peers import Peers
from runwrap.paths import layout
from runwrap.testing.listener import RunningListener
from runwrap.wire import framing
from tests.wire.wire_kit import consumer_private, fetch, frame, ik_message1, listener_public, read_frame, unix


@pytest.fixture
def fresh() -> Iterator[RunningListener]:
    with RunningListener() as running:
        running.pair()
        yield running


def refused(listener: RunningListener, message1: bytes, *, pipelined: bytes = b"") -> dict:
    """Send message 1 (and whatever a client might pipeline after it); return the REJECT body."""
    with unix(listener.socket) as sock:
        sock.sendall(framing.preface(framing.MODE_SESSION) + frame(message1) + pipelined)
        answer = read_frame(sock)
        assert answer[:1] == framing.REJECT
        assert sock.recv(1) == b"", "the listener kept a refused connection open"
    return dict(json.loads(answer[1:]))


def last(listener: RunningListener) -> dict:
    return listener.audit_events()[-1]


def test_an_unknown_key_is_refused_before_its_request_is_read(paired: RunningListener) -> None:
    before = len(paired.audit_events())
    _, message1 = ik_message1(listener_public(paired.home))
    # A request pipelined right behind message 1 must never be looked at.
    body = refused(paired, message1, pipelined=frame(b"\x00" * 64) * 3)
    assert body["code"] == "unknown_peer"
    events = paired.audit_events()[before:]
    assert [(e["event"], e["decision"], e["reason"]) for e in events] == [("handshake_failed", "denied", "unknown key")]
    assert events[0]["peer_fp"]
    assert fetch(paired.home) == "alligator5"


def test_message_1_with_a_payload_is_refused_even_from_a_peer(paired: RunningListener) -> None:
    request = json.dumps({"type": "request", "query": {"domain": "github.com"}}).encode()
    requests = len([e for e in paired.audit_events() if e["event"] == "request"])
    _, message1 = ik_message1(listener_public(paired.home), consumer_private(paired.home), payload=request)
    assert refused(paired, message1)["code"] == "unknown_peer"
    event = last(paired)
    assert (event["event"], event["peer"], event["reason"]) == ("handshake_failed", "tests",
                                                                 "message 1 carried a payload")
    assert len([e for e in paired.audit_events() if e["event"] == "request"]) == requests


def test_a_revoked_peer_is_refused(fresh: RunningListener) -> None:
    assert fetch(fresh.home) == "alligator5"
    fresh.run("peers", "revoke", "tests")
    with pytest.raises(HandshakeFailed, match="not a peer"):
        fetch(fresh.home)
    event = last(fresh)
    assert (event["event"], event["decision"], event["peer"]) == ("handshake_failed", "revoked", "tests")


def test_a_peer_removed_from_the_peers_file_is_refused(fresh: RunningListener) -> None:
    peers = Peers(fresh.home / "peers.json")
    del peers.by_name["tests"]
    peers.save()
    with pytest.raises(HandshakeFailed, match="not a peer"):
        fetch(fresh.home)
    assert (last(fresh)["event"], last(fresh)["reason"]) == ("handshake_failed", "unknown key")


def test_a_listener_with_another_key_is_named_as_such(paired: RunningListener) -> None:
    lay = layout({"RUNWRAP_HOME": str(paired.home)})
    conn = Connections(lay.connections).pick(None)
    conn.public = listener_public(paired.home)[::-1].hex()  # pinned: some other key
    with pytest.raises(FingerprintMismatch, match="does not hold the key pinned"):
        Channel.open(conn, consumer_private(paired.home), 5)
    assert last(paired)["reason"].startswith("message 1 did not verify")
