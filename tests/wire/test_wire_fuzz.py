"""Hypothesis drives the listener's handshake code with arbitrary bytes over a real socket pair: only
runwrap's ProtocolError comes out, nothing hangs, and memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runwrap.errors import ProtocolError
from runwrap.listener.server import Listener
from runwrap.wire import framing, noise_session, pairing
from runwrap.wire.identity import load_or_create_identity
from tests.wire.wire_kit import in_process_listener

NO_HANG = 3.0  # each example has EOF behind its bytes, so anything slower than this is a hang


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    yield from in_process_listener(tmp_path_factory.mktemp("fuzz"), "fuzzer")


def frame(payload: bytes) -> bytes:
    return struct.pack(">H", len(payload)) + payload


async def drive(lis: Listener, data: bytes, mode: str) -> None:
    """Feed `data` then EOF to one of the listener's handshake entry points; only ProtocolError may come out."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=ours, limit=framing.MAX_FRAME + 16)
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(theirs, data)
    theirs.shutdown(socket.SHUT_WR)
    try:
        if mode == "accept":
            await asyncio.wait_for(lis._accept(reader, writer, local=True), NO_HANG)
        elif mode == "session":
            await asyncio.wait_for(lis.sessions.serve(reader, writer), NO_HANG)
        else:
            await asyncio.wait_for(lis.pairing.pair(reader, writer), NO_HANG)
    except ProtocolError:
        pass
    finally:
        writer.close()
        theirs.close()


def run(lis: Listener, data: bytes, mode: str) -> None:
    try:
        asyncio.run(drive(lis, data, mode))
    except asyncio.TimeoutError:
        raise AssertionError(f"the listener's {mode} handshake hung on {data[:40]!r}") from None


def message1_like(lis: Listener) -> st.SearchStrategy[bytes]:
    """Real IK message 1s, then cut, extended or with bytes flipped: deep into the Noise code."""
    def mutate(keep: int, flip: int, tail: bytes, payload: bytes) -> bytes:
        private = load_or_create_identity(Path(lis.layout.config) / "consumer.key")
        msg = bytearray(noise_session.initiator_ik(private, lis.state.keys.public).write(payload))
        if flip < len(msg):
            msg[flip] ^= 0x01
        return bytes(msg[: max(1, keep)]) + tail
    return st.builds(mutate, st.integers(0, 200), st.integers(0, 400), st.binary(max_size=40), st.binary(max_size=8))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_the_session_handshake_only_raises_protocol_error(listener: Listener, data: st.DataObject) -> None:
    body = data.draw(st.one_of(
        st.binary(max_size=1200),
        st.binary(min_size=1, max_size=framing.MAX_HANDSHAKE_FRAME).map(frame),
        message1_like(listener).map(frame),
        st.tuples(message1_like(listener), st.binary(max_size=300)).map(lambda t: frame(t[0]) + frame(t[1] or b"x")),
    ))
    run(listener, body, "session")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_the_pairing_handshake_only_raises_protocol_error(listener: Listener, data: st.DataObject) -> None:
    def hello(nameplate: str, msg: bytes) -> bytes:
        return frame(json.dumps({"nameplate": nameplate, "msg": msg.hex()}).encode())

    body = data.draw(st.one_of(
        st.binary(max_size=600),
        st.builds(lambda obj: frame(json.dumps(obj).encode()),
                  st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                   st.sampled_from(["nameplate", "msg", "x"]), inner, max_size=3), max_leaves=6)),
        st.builds(lambda side, point, rest: hello("%NAMEPLATE%", side + point) + rest,
                  st.sampled_from([b"A", b"B", b"C", b""]), st.binary(max_size=40), st.binary(max_size=120)),
        st.builds(lambda rest: hello("%NAMEPLATE%", pairing.Pake("0000-2222-2222", listener=False).message) + rest,
                  st.binary(max_size=200)),
    ))
    # Every example meets a live invite and no rate limit, so it reaches the PAKE and Noise code.
    listener.pairing.failures.clear()
    listener.state.invites.by_nameplate.clear()
    nameplate = listener.state.invites.issue(None, ["*"], 60).nameplate
    run(listener, body.replace(b"%NAMEPLATE%", nameplate.encode()), "pair")
    assert set(listener.state.peers.by_name) == {"fuzzer"}, "arbitrary bytes became a peer"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=400),
                 st.builds(lambda mode, rest: framing.MAGIC + bytes([1]) + mode + rest,
                           st.sampled_from([b"S", b"P", b"C", b"?"]), st.binary(max_size=400))))
def test_the_connection_entry_point_never_lets_an_error_out(listener: Listener, body: bytes) -> None:
    run(listener, body, "accept")
    assert listener.connections == 0, "a connection was not accounted for when it ended"


def test_memory_stays_bounded_while_fuzzing(listener: Listener) -> None:
    """The same inputs over and over: what the listener allocates for them does not keep growing."""
    private = load_or_create_identity(Path(listener.layout.config) / "consumer.key")
    message1 = noise_session.initiator_ik(private, listener.state.keys.public).write(b"x")
    inputs = [framing.MAGIC + b"\x01S" + frame(message1),
              framing.MAGIC + b"\x01S" + b"\xff\xff" + bytes(3000),
              framing.MAGIC + b"\x01P" + frame(b'{"nameplate":"1","msg":"41"}'),
              framing.MAGIC + b"\x01S" + frame(bytes(96))]
    for body in inputs * 5:  # warm up
        run(listener, body, "accept")
    tracemalloc.start()
    try:
        rounds = []
        for _ in range(4):
            for body in inputs * 10:
                run(listener, body, "accept")
            rounds.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert rounds[-1] - rounds[0] < 256 * 1024, f"traced memory kept growing: {rounds}"
