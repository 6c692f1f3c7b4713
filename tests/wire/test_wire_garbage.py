"""One connection's garbage never affects another connection or the listener: after each kind, a
session opened before it still works and a new consumer is served; handshakes have one deadline."""

from __future__ import annotations

import functools
import os
import socket
import struct
import threading
import time
from collections.abc import Callable

import psutil
import pytest

from runwrap.consumer.client import Channel
from runwrap.consumer.connections import Connections
from runwrap.credential import Query
from runwrap.paths import layout
from runwrap.testing.listener import RunningListener
from runwrap.wire import framing
from runwrap.wire.framing import HANDSHAKE_TIMEOUT
from tests.polling import wait_for
from tests.wire.wire_kit import (
    LOW_ORDER_POINTS,
    RecordingProxy,
    closed_by_peer,
    consumer_private,
    frame,
    ik_message1,
    listener_public,
    read_frame,
    served_within,
    split_frames,
    unix,
)

SESSION = framing.preface(framing.MODE_SESSION)
PAIR = framing.preface(framing.MODE_PAIR)


def send_and_close(listener: RunningListener, data: bytes, *, wait_for_close: bool = True) -> None:
    with unix(listener.socket) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the listener may already have hung up on a bad preface: that is the point
        if wait_for_close:
            assert closed_by_peer(sock, HANDSHAKE_TIMEOUT + 2), "the listener kept a garbage connection open"


def low_order_static(listener: RunningListener, point: bytes) -> bytes:
    return SESSION + frame(ik_message1(listener_public(listener.home), claimed_static=point)[1])


def low_order_ephemeral(listener: RunningListener, point: bytes) -> bytes:
    message1 = ik_message1(listener_public(listener.home), consumer_private(listener.home))[1]
    return SESSION + frame(point + message1[32:])


GARBAGE: dict[str, Callable[[RunningListener], bytes]] = {
    "http": lambda _: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "wrong version": lambda _: framing.MAGIC + b"\x02S",
    "unknown mode": lambda _: framing.MAGIC + b"\x01Z",
    "zero-length frame": lambda _: SESSION + b"\x00\x00",
    "oversize length": lambda _: SESSION + b"\xff\xff" + os.urandom(2000),
    "just over the handshake limit": lambda _: SESSION + struct.pack(">H", framing.MAX_HANDSHAKE_FRAME + 1),
    "truncated frame": lambda _: SESSION + struct.pack(">H", 96) + os.urandom(40),
    "truncated header": lambda _: SESSION + b"\x00",
    "one-byte message 1": lambda _: SESSION + frame(b"\x01"),
    "random message 1": lambda _: SESSION + frame(os.urandom(96)),
    "random long message 1": lambda _: SESSION + frame(os.urandom(framing.MAX_HANDSHAKE_FRAME)),
    "random pair hello": lambda _: PAIR + frame(os.urandom(200)),
    "pair hello with a bad point": lambda _: PAIR + frame(b'{"nameplate":"0000","msg":"41' + b"ff" * 32 + b'"}'),
    "control over a session preface": lambda _: SESSION + frame(b'{"op":"status"}'),
    **{f"low-order ephemeral {i}": functools.partial(low_order_ephemeral, point=p)
       for i, p in enumerate(LOW_ORDER_POINTS)},
    **{f"low-order static {i}": functools.partial(low_order_static, point=p)
       for i, p in enumerate(LOW_ORDER_POINTS)},
}


def open_channel(listener: RunningListener) -> Channel:
    lay = layout({"RUNWRAP_HOME": str(listener.home)})
    return Channel.open(Connections(lay.connections).pick(None), consumer_private(listener.home), 5)


def test_garbage_of_every_kind_leaves_everyone_else_served(paired: RunningListener) -> None:
    bystander = open_channel(paired)  # a session that is already open while the garbage arrives
    try:
        for name, make in GARBAGE.items():
            send_and_close(paired, make(paired))
            assert paired.process is not None and paired.process.poll() is None, f"listener died on {name}"
            served_within(paired.home, 1.0)
        cred = bystander.request(Query(domain="github.com"), ["password"])
        assert bytes(cred["password"].buffer) == b"alligator5"
    finally:
        bystander.close()
    reasons = [e["reason"] for e in paired.audit_events() if e["event"] == "handshake_failed"]
    assert reasons.count("message 1 did not verify (wrong listener key or not runwrap)") >= 2 * len(LOW_ORDER_POINTS)


def test_random_bytes_after_a_valid_handshake_end_only_that_session(paired: RunningListener) -> None:
    for junk in (os.urandom(64), os.urandom(framing.MAX_FRAME), b"\x00" * 17):
        channel = open_channel(paired)
        with channel.sock as sock:
            sock.sendall(frame(junk))
            assert closed_by_peer(sock, 5)
        served_within(paired.home, 1.0)


def test_a_replayed_message_1_gets_nothing(paired: RunningListener, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """IK message 1 can be replayed (Noise says so); the replayer still cannot read or send a thing."""
    proxy = RecordingProxy(tmp_path / "p.sock", paired.socket)
    lay = layout({"RUNWRAP_HOME": str(paired.home)})
    conn = Connections(lay.connections).pick(None)
    conn.address = f"unix:{proxy.path}"
    channel = Channel.open(conn, consumer_private(paired.home), 5)
    channel.request(Query(domain="github.com"), ["password"]).wipe()
    channel.close()
    proxy.close()
    message1, request = split_frames(bytes(proxy.up)[framing.PREFACE_LEN :])[:2]
    requests = len([e for e in paired.audit_events() if e["event"] == "request"])
    with unix(paired.socket) as sock:
        sock.sendall(SESSION + frame(message1))
        assert read_frame(sock)[:1] == framing.ACCEPT  # the listener cannot tell a replay from the original
        sock.sendall(frame(request))  # the recorded request, under keys of the old session
        assert closed_by_peer(sock, 5)
    assert len([e for e in paired.audit_events() if e["event"] == "request"]) == requests
    served_within(paired.home, 1.0)


def test_a_handshake_has_one_deadline_however_its_bytes_arrive(paired: RunningListener) -> None:
    results: dict[str, float] = {}

    def probe(name: str, opening: bytes, drip: bytes = b"") -> None:
        with unix(paired.socket) as sock:
            start = time.monotonic()
            sock.sendall(opening)
            for byte in drip:  # a slow-loris: one byte every 0.3 s, never finishing in time
                time.sleep(0.3)
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
            assert closed_by_peer(sock, HANDSHAKE_TIMEOUT + 3), name
            results[name] = time.monotonic() - start

    message1 = ik_message1(listener_public(paired.home), consumer_private(paired.home))[1]
    cases = {"nothing": (b"",), "half a preface": (b"RW",), "preface only": (SESSION,),
             "half a frame": (SESSION + frame(message1)[:20],),
             "slow-loris": (b"", SESSION + frame(message1))}
    threads = [threading.Thread(target=probe, args=(name, *args)) for name, args in cases.items()]
    for thread in threads:
        thread.start()
    served_within(paired.home, 1.0)  # while all of them hang on
    for thread in threads:
        thread.join(HANDSHAKE_TIMEOUT + 10)
    assert set(results) == set(cases)
    for name, took in results.items():
        assert HANDSHAKE_TIMEOUT - 0.5 < took < HANDSHAKE_TIMEOUT + 1.5, f"{name}: dropped after {took:.2f}s"


def test_memory_stays_bounded_under_a_flood_of_garbage(paired: RunningListener) -> None:
    """Rounds of garbage connections, each let to drain: the listener's RSS levels off, and its
    descriptors all come back (no connection outlives its garbage)."""
    assert paired.process is not None
    process = psutil.Process(paired.process.pid)
    makers = list(GARBAGE.values())
    fds = process.num_fds()

    def flood(count: int) -> int:
        for i in range(count):
            send_and_close(paired, makers[i % len(makers)](paired), wait_for_close=False)
        wait_for(lambda: process.num_fds() <= fds, 30, "the garbage connections to be closed")
        return int(process.memory_info().rss)

    for _ in range(2):  # warm up: imports, caches, the allocator's arenas (RSS steps up ~2 MB, then stays)
        flood(800)
    levels = [flood(800) for _ in range(3)]
    served_within(paired.home, 1.0)
    grown = levels[-1] - levels[0]
    assert grown < 4 * 1024 * 1024, f"listener RSS kept growing: {[round(v / 1e6, 1) for v in levels]} MB"


@pytest.mark.parametrize("count", [200])
def test_idle_half_open_connections_and_a_slow_loris_do_not_delay_a_consumer(paired: RunningListener,
                                                                             count: int) -> None:
    idle = []
    stop = threading.Event()
    try:
        for i in range(count):
            sock = unix(paired.socket)
            sock.sendall([b"", b"RW", SESSION, SESSION + b"\x00"][i % 4])
            idle.append(sock)

        def loris() -> None:
            while not stop.is_set():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(str(paired.socket))
                    for byte in SESSION + struct.pack(">H", 96):
                        if stop.wait(0.2):
                            return
                        try:
                            sock.sendall(bytes([byte]))
                        except OSError:
                            break

        thread = threading.Thread(target=loris)
        thread.start()
        took = [served_within(paired.home, 1.0) for _ in range(5)]
        print(f"served with {count} idle connections and a slow-loris: max {max(took) * 1000:.1f} ms")
    finally:
        stop.set()
        for sock in idle:
            sock.close()
    thread.join(5)
