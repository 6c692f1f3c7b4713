"""The consumer's side of the wire: pairing, sessions, requests and leases.

The public API over this is `runwrap.api.Client` (`from runwrap import Client`); the CLI's
`connect`, `run` and `PROFILE -- cmd` use it, so there is one implementation of lookup, pairing and
errors. Everything here is blocking and single-threaded, so the exec path can fork safely afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any

from runwrap.credential import FIELDS, Credential, Query
from runwrap.errors import (
    ConfigError,
    ConnectionFailed,
    FingerprintMismatch,
    HandshakeFailed,
    LeaseRevoked,
    PairingFailed,
    ProtocolError,
    RunwrapError,
    from_code,
)
from runwrap.paths import Layout
from runwrap.secret import Secret
from runwrap.store import Connection, Connections, load_or_create_identity
from runwrap.wire import framing, messages, noise_session

CONNECT_TIMEOUT = 10.0
PAIR_TIMEOUT = 30.0
# A request may wait minutes for an approval with nothing on the wire; TCP keepalive is what notices
# a listener whose host or link went away, in about KEEPIDLE + KEEPINTVL * KEEPCNT seconds.
KEEPIDLE, KEEPINTVL, KEEPCNT = 5, 2, 3


def parse_address(address: str) -> tuple[str, Any]:
    """`unix:/path` or `tcp:host:port` (a bare path means unix)."""
    if address.startswith("tcp:"):
        host, sep, port = address[4:].rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ConfigError(f"not an address: {address!r} (use tcp:HOST:PORT or unix:PATH)")
        return "tcp", (host.strip("[]"), int(port))
    path = address[5:] if address.startswith("unix:") else address
    if not path:
        raise ConfigError(f"not an address: {address!r} (use tcp:HOST:PORT or unix:PATH)")
    return "unix", path


def open_socket(address: str, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    kind, target = parse_address(address)
    family = socket.AF_UNIX if kind == "unix" else socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError as exc:
        sock.close()
        why = exc.strerror or type(exc).__name__
        raise ConnectionFailed(f"cannot reach the listener at {address}: {why}; is `runwrap listen` running?") from None
    if kind == "tcp":
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        framing.set_keepalive(sock, KEEPIDLE, KEEPINTVL, KEEPCNT)
    return sock


class Channel:
    """An authenticated Noise IK session with one listener."""

    def __init__(self, sock: socket.socket, session: noise_session.Session, timeout: float) -> None:
        self.sock = sock
        self.session = session
        self.timeout = timeout
        self.lease: str | None = None

    @classmethod
    def open(cls, conn: Connection, private: bytes, timeout: float = CONNECT_TIMEOUT) -> Channel:
        sock = open_socket(conn.address, timeout)
        try:
            deadline = time.monotonic() + timeout
            handshake = noise_session.initiator_ik(private, conn.public_bytes)
            sock.sendall(framing.preface(framing.MODE_SESSION))
            framing.send_frame(sock, handshake.write(b""))
            answer = framing.recv_frame(sock, deadline=deadline, max_len=framing.MAX_HANDSHAKE_FRAME)
            if answer[:1] == framing.REJECT:
                code, message = _reject_reason(answer)
                if code == "cannot_decrypt":
                    raise FingerprintMismatch(
                        f"the listener at {conn.address} does not hold the key pinned for connection "
                        f"{conn.name!r}; if it was reinstalled, remove the connection and pair again")
                raise HandshakeFailed(f"the listener refused this consumer: {message}")
            if answer[:1] != framing.ACCEPT:
                raise ProtocolError("the listener's answer is not runwrap's protocol")
            try:
                handshake.read(answer[1:])
            except ProtocolError:
                raise FingerprintMismatch(
                    f"the listener at {conn.address} could not prove it holds the key pinned for "
                    f"connection {conn.name!r}") from None
            return cls(sock, handshake.session(), timeout)
        except BaseException:
            sock.close()
            raise

    def _send(self, header: Mapping[str, Any]) -> None:
        framing.send_frame(self.sock, self.session.encrypt(messages.encode(header)))

    def _receive(self, deadline: float | None) -> tuple[dict[str, Any], dict[str, Secret]]:
        frame = framing.recv_frame(self.sock, deadline=deadline)
        return messages.decode(self.session.decrypt(frame))

    def request(self, query: Query, fields: Iterable[str] = FIELDS,
                provenance: Mapping[str, Any] | None = None) -> Credential:
        self._send({"type": messages.REQUEST, "query": query.to_wire(), "fields": list(fields),
                    "provenance": dict(provenance or {})})
        header, values = self._receive(time.monotonic() + self.timeout + 300)  # approval may take a while
        kind = header["type"]
        if kind == messages.ERROR:
            message = str(header.get("message") or "the listener refused the request")
            raise from_code(str(header.get("code")), message)
        if kind == messages.REVOKE:
            raise LeaseRevoked(f"access revoked by the listener: {header.get('reason', '')}")
        if kind != messages.CREDENTIAL:
            raise ProtocolError(f"unexpected answer {kind!r} from the listener")
        self.lease = str(header.get("lease") or "")
        return Credential(values)

    def hold(self, provenance: Mapping[str, Any] | None = None) -> HeldLease:
        self._send({"type": messages.HOLD, "provenance": dict(provenance or {})})
        return HeldLease(self)

    def close(self) -> None:
        self.sock.close()


class HeldLease:
    """The supervisor's view of a lease: poll it for revocation, report the child's end."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.closed = False
        channel.sock.setblocking(False)

    def fileno(self) -> int:
        return -1 if self.closed else self.channel.sock.fileno()

    def poll_revoked(self) -> str | None:
        """A reason if the listener ended the lease; a lost listener just stops being polled."""
        sock = self.channel.sock
        try:
            sock.setblocking(True)
            header, _ = self.channel._receive(time.monotonic() + 2.0)
        except RunwrapError:
            self.closed = True
            return None
        finally:
            if not self.closed:
                sock.setblocking(False)
        if header.get("type") == messages.REVOKE:
            self.closed = True
            return str(header.get("reason") or "revoked")
        return None

    def end(self, exit_status: int, duration_ms: int) -> None:
        if self.closed:
            return
        try:
            self.channel.sock.setblocking(True)
            self.channel.sock.settimeout(2.0)
            self.channel._send({"type": messages.LEASE_END, "exit": exit_status, "duration_ms": duration_ms})
        except (RunwrapError, OSError):
            pass
        finally:
            self.closed = True
            self.channel.close()


def _reject_reason(answer: bytes) -> tuple[str, str]:
    try:
        body = json.loads(answer[1:])
        return str(body.get("code", "")), str(body.get("message", "refused"))
    except (ValueError, AttributeError):
        return "", "refused"


# ---- pairing ----

def pair(code: str, address: str, name: str | None, lay: Layout) -> Connection:
    """Pair with the listener at `address` using a one-time code; pins its key as a connection.

    SPAKE2 on the code -> PSK of Noise_NNpsk0 (the listener's static key in its message 2) -> an IK
    run bound to that handshake's hash, which proves both static keys -> names exchanged inside it.
    Nothing is written on this side unless every step verified (docs/protocol.md, "Pairing").
    """
    from runwrap.wire import pairing  # spake2 costs ~30 ms to import; only pairing needs it

    nameplate, code = pairing.parse_code(code)
    private = load_or_create_identity(lay.consumer_key)
    sock = open_socket(address)
    try:
        deadline = time.monotonic() + PAIR_TIMEOUT
        pake = pairing.Pake(code, listener=False)
        sock.sendall(framing.preface(framing.MODE_PAIR))
        framing.send_frame(sock, json.dumps({"nameplate": nameplate, "msg": pake.message.hex()}).encode())
        listener_msg = _accepted(framing.recv_frame(sock, deadline=deadline, max_len=framing.MAX_HANDSHAKE_FRAME))
        transcript = pairing.transcript(nameplate, pake.message, listener_msg)
        handshake = noise_session.initiator_pair(pake.finish(listener_msg, transcript), transcript)
        framing.send_frame(sock, handshake.write())
        answer = _accepted(framing.recv_frame(sock, deadline=deadline, max_len=framing.MAX_HANDSHAKE_FRAME))
        try:
            listener_key = handshake.read(answer)
        except ProtocolError:
            raise PairingFailed("the other side does not know this code; it is not your listener") from None
        if len(listener_key) != noise_session.KEY_LEN:
            raise ProtocolError("the listener's pairing answer is malformed")
        confirm = noise_session.initiator_confirm(private, listener_key, handshake.handshake_hash)
        framing.send_frame(sock, confirm.write())
        answer = _accepted(framing.recv_frame(sock, deadline=deadline, max_len=framing.MAX_HANDSHAKE_FRAME))
        try:
            if confirm.read(answer):
                raise ProtocolError("unexpected payload")
        except ProtocolError:
            raise PairingFailed("the listener could not prove it holds the key it sent; nothing was pinned") from None
        session = confirm.session()
        proposed = name or socket.gethostname() or "consumer"
        framing.send_frame(sock, session.encrypt(messages.encode({"type": "pair", "name": proposed})))
        header, _ = messages.decode(session.decrypt(framing.recv_frame(sock, deadline=deadline)))
        if header.get("type") != "paired":
            raise ProtocolError("the listener's pairing answer is malformed")
    finally:
        sock.close()
    connections = Connections(lay.connections)
    conn_name = name or _connection_name(address, connections)
    return connections.add(conn_name, address, listener_key)


def _accepted(answer: bytes) -> bytes:
    """The body of a pairing answer that starts with ACCEPT; PairingFailed with the reason otherwise."""
    if answer[:1] == framing.REJECT:
        raise PairingFailed(f"pairing refused: {_reject_reason(answer)[1]}")
    if answer[:1] != framing.ACCEPT:
        raise ProtocolError("the listener's answer is not runwrap's protocol")
    return answer[1:]


def _connection_name(address: str, connections: Connections) -> str:
    for conn in connections.by_name.values():
        if conn.address == address:
            return conn.name
    base = "local" if address.startswith("unix:") else address.split(":")[1]
    name, n = base, 1
    while name in connections.by_name:
        n += 1
        name = f"{base}-{n}"
    return name


def default_provenance(argv0: str | None = None, profile: str | None = None) -> dict[str, Any]:
    """What the consumer says it is about to do: its claim, shown in approvals and the audit log."""
    return {"argv0": os.path.basename(argv0) if argv0 else "", "pid": os.getpid(),
            "profile": profile or "", "cwd": os.path.basename(os.getcwd())}


def fetch_profile(channel: Channel, profile: Any, provenance: Mapping[str, Any], *,
                  optional: bool = False) -> dict[str, Secret]:
    """Every variable a profile names, from one session; the listener is asked only for named fields.

    A field the item lacks is an error naming the profile's line, unless `optional` (`run --env-all`:
    an item with no TOTP or notes simply sets no such variable). On any failure nothing is returned
    and every value fetched so far is wiped.
    """
    injected: dict[str, Secret] = {}
    try:
        for spec in profile.credentials:
            cred = channel.request(spec.query, sorted(set(spec.env.values())), provenance)
            try:
                for var, field in spec.env.items():
                    if field in cred:
                        injected[var] = Secret(cred[field].buffer)
                    elif not optional:
                        raise RunwrapError(f"{profile.path}:{spec.line}: the item for {spec.query} has no "
                                           f"{field} value; remove {var} or pick another field")
            finally:
                cred.wipe()
    except BaseException:
        for value in injected.values():
            value.wipe()
        raise
    return injected
