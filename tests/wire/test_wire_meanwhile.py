"""Channel.open(meanwhile=...): work done while the listener answers, one piece per wait (the
handshake's, then each request's), so the exec path loads the supervisor while the listener works
on another core. Against a real listener on a real socket."""

from __future__ import annotations

import select
import time

from runwrap.consumer.client import Channel
from runwrap.consumer.connections import Connections
from runwrap.credential import Query
from runwrap.paths import layout
from runwrap.wire.identity import load_or_create_identity


def _open(listener, meanwhile) -> Channel:
    lay = layout({"RUNWRAP_HOME": str(listener.home)})
    return Channel.open(Connections(lay.connections).pick(None), load_or_create_identity(lay.consumer_key), 5,
                        meanwhile)


def _answer_waiting(channel: Channel) -> bool:
    """True once the listener's answer is readable (and not yet read): the request went out first."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if select.select([channel.sock], [], [], 0.05)[0]:
            return True
    return False


def test_each_piece_runs_once_while_an_answer_is_awaited(listener) -> None:
    events: list[object] = []
    box: list[Channel] = []
    channel = _open(listener, (lambda: events.append("handshake"),
                               lambda: events.append(("request", _answer_waiting(box[0])))))
    box.append(channel)
    try:
        assert events == ["handshake"]
        first = channel.request(Query(domain="github.com"), ["password"])
        assert events == ["handshake", ("request", True)]
        assert bytes(first["password"].buffer) == b"alligator5"
        first.wipe()
        second = channel.request(Query(domain="github.com"), ["password"])
        second.wipe()
        assert events == ["handshake", ("request", True)]  # nothing left to run
    finally:
        channel.close()


def test_a_failing_piece_fails_the_open(listener) -> None:
    def broken() -> None:
        raise RuntimeError("the work failed")

    try:
        _open(listener, (broken,))
    except RuntimeError as exc:
        assert str(exc) == "the work failed"
    else:
        raise AssertionError("the failure of the work was swallowed")
