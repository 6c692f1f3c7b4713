"""Frames on the wire: a 2-byte big-endian length, then that many bytes.

The length is read and checked against the caller's maximum before a single byte of the body is
read or parsed, so a peer cannot make runwrap allocate more than the maximum or wait for a body
that will never fit. A zero length is a protocol error. Both a blocking reader (the consumer) and
an asyncio reader (the listener) live here so the rules are written once.
"""

from __future__ import annotations

import _socket  # not `socket`: see runwrap.wire.address.Socket
import time

from runwrap import json_codec
from runwrap.errors import ConnectionFailed, HandshakeFailed, ProtocolError

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Coroutine
    from typing import Any

LENGTH_SIZE = 2  # a frame's big-endian length prefix (int.from_bytes: `struct` is ~0.3 ms of a launch)
MAX_FRAME = 65535
MAX_HANDSHAKE_FRAME = 1024  # pairing and IK handshake messages are far smaller (at most ~100 bytes)
HANDSHAKE_TIMEOUT = 5.0  # the listener's one deadline from accept to the end of a handshake (pairing: 3x)

# The first bytes of every connection: magic, protocol version, mode.
MAGIC = b"RWP"
VERSION = 1
MODE_SESSION = b"S"
MODE_PAIR = b"P"
MODE_CONTROL = b"C"
PREFACE_LEN = len(MAGIC) + 2

# The listener's answer to a handshake message starts with one of these.
ACCEPT = b"\x01"
REJECT = b"\x00"


def preface(mode: bytes) -> bytes:
    return MAGIC + bytes([VERSION]) + mode


def parse_preface(data: bytes) -> bytes:
    if len(data) != PREFACE_LEN or data[:3] != MAGIC:
        raise ProtocolError("not a runwrap client")
    if data[3] != VERSION:
        raise ProtocolError(f"unsupported protocol version {data[3]} (this listener speaks {VERSION})")
    mode = data[4:5]
    if mode not in (MODE_SESSION, MODE_PAIR, MODE_CONTROL):
        raise ProtocolError("unknown connection mode")
    return mode


def encode(payload: bytes, max_len: int = MAX_FRAME) -> bytes:
    if not 0 < len(payload) <= max_len:
        raise ProtocolError(f"frame of {len(payload)} bytes is outside 1..{max_len}")
    return len(payload).to_bytes(LENGTH_SIZE, "big") + payload


def check_length(header: bytes, max_len: int) -> int:
    if len(header) != LENGTH_SIZE:
        raise ProtocolError(f"frame length prefix of {len(header)} bytes")
    length = int.from_bytes(header, "big")
    if length == 0 or length > max_len:
        raise ProtocolError(f"frame length {length} is outside 1..{max_len}")
    return length


# ---- blocking side (consumer) ----

def _recv_exact(sock: _socket.socket, count: int, deadline: float | None) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HandshakeFailed("the listener did not answer in time")
            sock.settimeout(remaining)
        else:
            sock.settimeout(None)
        try:
            chunk = sock.recv(count - len(chunks))
        except TimeoutError as exc:
            if exc.errno is None:  # our own deadline (socket timeout), not the kernel's ETIMEDOUT
                raise HandshakeFailed("the listener did not answer in time") from None
            raise ConnectionFailed("the connection to the listener broke: it stopped answering "
                                   "(the link or the listener's host went away)") from None
        except OSError as exc:
            raise ConnectionFailed(f"the connection to the listener broke: {exc.strerror or exc}") from None
        if not chunk:
            raise ConnectionFailed("the listener closed the connection")
        chunks += chunk
    return bytes(chunks)


def recv_frame(sock: _socket.socket, *, deadline: float | None, max_len: int = MAX_FRAME) -> bytes:
    length = check_length(_recv_exact(sock, LENGTH_SIZE, deadline), max_len)
    return _recv_exact(sock, length, deadline)


def send_frame(sock: _socket.socket, payload: bytes, max_len: int = MAX_FRAME) -> None:
    try:
        sock.sendall(encode(payload, max_len))
    except OSError as exc:
        raise ConnectionFailed(f"the connection to the listener broke: {exc.strerror or exc}") from None


def set_keepalive(sock: _socket.socket, idle: int, interval: int, count: int) -> None:
    """End a TCP connection whose peer or link went away, in about idle + interval * count seconds.

    Keepalive probes an idle connection, but only while all that was sent has been acknowledged: a
    request cut off before its ACK came back would be retransmitted for ~15 minutes (tcp_retries2),
    so TCP_USER_TIMEOUT bounds unacknowledged data to the same time.
    """
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count),
                        ("TCP_USER_TIMEOUT", (idle + interval * count) * 1000)):
        if hasattr(_socket, name):
            sock.setsockopt(_socket.IPPROTO_TCP, getattr(_socket, name), value)


def reject_reason(answer: bytes) -> tuple[str, str]:
    """The (code, message) of a REJECT answer to a handshake; ("", "refused") if it has none."""
    try:
        body = json_codec.loads(answer[1:])
        return str(body.get("code", "")), str(body.get("message", "refused"))
    except (ValueError, AttributeError):
        return "", "refused"


# ---- asyncio side (listener) ----

def _budget(timeout: float | None, deadline: float | None) -> float | None:
    """Seconds left: the smaller of a per-frame timeout and an absolute (monotonic) deadline."""
    if deadline is None:
        return timeout
    left = max(0.0, deadline - time.monotonic())
    return left if timeout is None else min(timeout, left)


async def read_frame(reader: asyncio.StreamReader, *, timeout: float | None, max_len: int = MAX_FRAME,
                     deadline: float | None = None) -> bytes:
    """One frame, or ProtocolError for a bad length, EOF mid-frame, or the time running out.

    The header and the body share one wait, so a peer that trickles a frame a byte at a time gets
    no more time than one that sends nothing. `deadline` (time.monotonic()) bounds a whole handshake.
    """

    async def frame() -> bytes:
        length = check_length(await reader.readexactly(LENGTH_SIZE), max_len)
        return await reader.readexactly(length)

    return await _within(frame(), _budget(timeout, deadline), closed="mid-frame", waiting="a frame")


async def read_preface(reader: asyncio.StreamReader, timeout: float, *, deadline: float | None = None) -> bytes:
    data = await _within(reader.readexactly(PREFACE_LEN), _budget(timeout, deadline),
                         closed="before the preface", waiting="the preface")
    return parse_preface(data)


async def _within(read: Coroutine[Any, Any, bytes], budget: float | None, *, closed: str, waiting: str) -> bytes:
    """`read` within `budget` seconds; every way it can fail is one ProtocolError that says how."""
    import asyncio  # here, not at the top: the consumer's exec path never needs asyncio

    try:
        return await asyncio.wait_for(read, budget)
    except asyncio.IncompleteReadError:
        raise ProtocolError(f"connection closed {closed}") from None
    except asyncio.TimeoutError:
        raise ProtocolError(f"timed out waiting for {waiting}") from None
    except OSError:
        raise ProtocolError("connection reset") from None
