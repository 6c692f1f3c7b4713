"""Helpers for the wire tests: a consumer in this process, raw sockets, a recording proxy.

Nothing here fakes the listener: the tests talk to a real `runwrap listen` process (or, for the
fuzzing and the rogue-listener tests, to a `Listener` object on a real socket in this process).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from runwrap.consumer.client import Channel
from runwrap.consumer.connections import Connections
from runwrap.credential import Query
from runwrap.listener.server import Listener, Options
from runwrap.paths import layout
from runwrap.providers.example import ExampleProvider
from runwrap.wire import framing, noise_ik, noise_session
from runwrap.wire.identity import load_or_create_identity


def fetch(home: Path, domain: str = "github.com", timeout: float = 5.0) -> str:
    """The password for `domain`, asked by `home`'s consumer from this process over a fresh IK session."""
    lay = layout({"RUNWRAP_HOME": str(home)})
    conn = Connections(lay.connections).pick(None)
    channel = Channel.open(conn, load_or_create_identity(lay.consumer_key), timeout)
    try:
        cred = channel.request(Query(domain=domain), ["password"])
        value = bytes(cred["password"].buffer).decode()
        cred.wipe()
        return value
    finally:
        channel.close()


def served_within(home: Path, seconds: float, domain: str = "github.com") -> float:
    """Fetch once and return how long it took; fails if it took longer than `seconds`."""
    start = time.monotonic()
    assert fetch(home, domain, timeout=seconds + 5) == "alligator5"
    elapsed = time.monotonic() - start
    assert elapsed < seconds, f"a legitimate consumer waited {elapsed:.2f}s (limit {seconds}s)"
    return elapsed


def listener_public(home: Path) -> bytes:
    data = json.loads((home / "listener.key").read_bytes())
    return noise_session.public_key(bytes.fromhex(data["private"]))


def unix(path: Path, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    return sock


def frame(payload: bytes) -> bytes:
    return struct.pack(">H", len(payload)) + payload


def read_frame(sock: socket.socket, timeout: float = 10.0) -> bytes:
    return framing.recv_frame(sock, deadline=time.monotonic() + timeout)


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True once the other side has closed (EOF or reset), False if it was still open at `timeout`."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def split_frames(data: bytes) -> list[bytes]:
    frames, at = [], 0
    while at < len(data):
        (length,) = struct.unpack_from(">H", data, at)
        frames.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    assert at == len(data), "recorded stream ends mid-frame"
    return frames


class RecordingProxy:
    """A Unix socket that forwards one connection to `target` and records both directions."""

    def __init__(self, path: Path, target: Path) -> None:
        self.path, self.target = path, target
        self.up = bytearray()  # consumer -> listener
        self.down = bytearray()  # listener -> consumer
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        client, _ = self.server.accept()
        upstream = unix(self.target)
        pumps = [threading.Thread(target=self._pump, args=(client, upstream, self.up), daemon=True),
                 threading.Thread(target=self._pump, args=(upstream, client, self.down), daemon=True)]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join(30)
        client.close()
        upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, record: bytearray) -> None:
        src.settimeout(30)
        try:
            while data := src.recv(65536):
                record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (dst, src):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.thread.join(30)
        self.server.close()
        os.unlink(self.path)


# Curve25519 points of small order (libsodium's list): DH with any of them gives a fixed output.
LOW_ORDER_POINTS = [bytes.fromhex(h) for h in (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
)]


def ik_message1(listener_key: bytes, static_private: bytes | None = None, *, payload: bytes = b"",
                claimed_static: bytes | None = None) -> tuple[noise_ik.Initiator | noise_session.Handshake, bytes]:
    """An IK message 1 to the listener; `claimed_static` replaces the static key it carries."""
    private = static_private or noise_session.generate_keypair()[0]
    if claimed_static is None:
        handshake: noise_ik.Initiator | noise_session.Handshake = noise_session.initiator_ik(private, listener_key)
    else:  # noiseprotocol's initiator, whose state a test can reach into
        handshake = noise_session.Handshake(noise_session.IK, initiator=True, prologue=noise_session.PROLOGUE_SESSION,
                                            static_private=private, remote_static=listener_key)
        handshake._protocol.handshake_state.s.public_bytes = claimed_static
    return handshake, handshake.write(payload)


def consumer_private(home: Path) -> bytes:
    return load_or_create_identity(home / "consumer.key")


def in_process_listener(home: Path, peer: str) -> Iterator[Listener]:
    """A Listener on the example provider in this process (not serving), home's consumer key its peer
    `peer` with scope *; for fixtures to `yield from`. The audit log is closed afterwards."""
    home.chmod(0o700)
    lis = Listener(layout({"RUNWRAP_HOME": str(home)}), ExampleProvider(), Options(), out=lambda _line: None)
    consumer = noise_session.public_key(load_or_create_identity(home / "consumer.key"))
    lis.state.peers.add(peer, consumer, ["*"])
    yield lis
    lis.state.audit.close()
