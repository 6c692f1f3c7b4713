"""A session that holds no lease is closed once it has sent nothing for REQUEST_IDLE_TIMEOUT; one that
holds a lease is never closed for being quiet. Over a real socket pair into the listener's own
connection entry point, with the timeout made short."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from runwrap.listener import sessions
from runwrap.listener.server import Listener
from runwrap.wire import framing, messages, noise_session
from runwrap.wire.identity import load_or_create_identity
from tests.wire.wire_kit import in_process_listener

IDLE = 0.5


@pytest.fixture
def listener(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sessions, "REQUEST_IDLE_TIMEOUT", IDLE)
    yield from in_process_listener(tmp_path, "quiet")


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = await loop.sock_recv(sock, count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


async def _quiet_session(lis: Listener, *, hold: bool) -> float | None:
    """Handshake (then HOLD when `hold`), send nothing more; seconds until the listener hung up, or None
    if it kept the session for 3 x IDLE (then LEASE_END ends it)."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    reader, writer = await asyncio.open_unix_connection(sock=ours, limit=framing.MAX_FRAME + 16)
    served = asyncio.create_task(lis._accept(reader, writer, local=True))
    try:
        private = load_or_create_identity(lis.layout.config / "consumer.key")
        handshake = noise_session.initiator_ik(private, lis.state.keys.public)
        await loop.sock_sendall(theirs, framing.preface(framing.MODE_SESSION) + framing.encode(handshake.write(b"")))
        length = framing.check_length(await _recv_exactly(loop, theirs, 2), framing.MAX_HANDSHAKE_FRAME)
        answer = await _recv_exactly(loop, theirs, length)
        assert answer[:1] == framing.ACCEPT, "the listener refused its own peer"
        handshake.read(answer[1:])
        session = handshake.session()
        if hold:
            await loop.sock_sendall(theirs, framing.encode(session.encrypt(messages.encode(
                {"type": messages.HOLD, "provenance": {}}))))
        quiet_since = time.monotonic()
        try:
            got = await asyncio.wait_for(loop.sock_recv(theirs, 1), 3 * IDLE)
        except asyncio.TimeoutError:
            await loop.sock_sendall(theirs, framing.encode(session.encrypt(messages.encode(
                {"type": messages.LEASE_END, "exit": 0}))))
            await asyncio.wait_for(served, 2.0)
            return None
        assert got == b"", "the listener sent something to a quiet session"
        took = time.monotonic() - quiet_since
        await asyncio.wait_for(served, 2.0)
        return took
    finally:
        theirs.close()
        if not served.done():
            served.cancel()


def test_a_session_that_asks_nothing_is_closed_after_the_idle_timeout(listener: Listener) -> None:
    took = asyncio.run(_quiet_session(listener, hold=False))
    assert took is not None, "the listener kept an idle session that holds no lease open"
    assert IDLE - 0.1 < took < IDLE + 1.0, f"closed after {took:.2f}s, not after {IDLE}s"
    assert listener.connections == 0


def test_a_held_lease_is_never_closed_for_being_quiet(listener: Listener) -> None:
    assert asyncio.run(_quiet_session(listener, hold=True)) is None, "the listener closed a held lease"
    assert listener.connections == 0
