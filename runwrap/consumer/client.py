"""The consumer's side of a session: the Noise IK channel, its requests, and the lease it holds.

The exec path (`runwrap.run`) and the public `runwrap.api.Client` both open channels through an
`Endpoint` and fetch through `fetch`, so there is one implementation of lookup and errors. Pairing
is `runwrap.consumer.pairing`. Everything here is blocking and single-threaded, so the exec path can
fork safely afterwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runwrap.consumer.connections import Connection, Connections
from runwrap.credential import FIELDS, Credential, Query
from runwrap.errors import (
    FingerprintMismatch,
    HandshakeFailed,
    LeaseRevoked,
    ProtocolError,
    RunwrapError,
    from_code,
)
from runwrap.paths import CONNECTIONS, CONSUMER_KEY, Layout, folder_for_files
from runwrap.profile.model import CredentialSpec
from runwrap.secret import Secret
from runwrap.wire import framing, messages, noise_session
from runwrap.wire.address import connect
from runwrap.wire.identity import load_or_create_identity

if TYPE_CHECKING:
    from _socket import socket

CONNECT_TIMEOUT = 10.0
# A request may wait minutes for an approval with nothing on the wire; TCP keepalive is what notices
# a listener whose host or link went away, in about idle + interval * count seconds.
KEEPALIVE = (5, 2, 3)  # idle, interval, count

# What the consumer says it is about to do (argv[0], pid, profile, folder): its claim, shown in
# approvals and the audit log; see default_provenance.
Claim = Mapping[str, "str | int"]


class Channel:
    """An authenticated Noise IK session with one listener."""

    def __init__(self, sock: socket, session: noise_session.Session, timeout: float) -> None:
        self.sock = sock
        self.session = session
        self.timeout = timeout
        self.lease: str | None = None

    @classmethod
    def open(cls, conn: Connection, private: bytes, timeout: float = CONNECT_TIMEOUT) -> Channel:
        sock = connect(conn.address, timeout, KEEPALIVE)
        try:
            deadline = time.monotonic() + timeout
            handshake = noise_session.initiator_ik(private, conn.public_bytes)
            sock.sendall(framing.preface(framing.MODE_SESSION))
            framing.send_frame(sock, handshake.write(b""))
            answer = framing.recv_frame(sock, deadline=deadline, max_len=framing.MAX_HANDSHAKE_FRAME)
            if answer[:1] == framing.REJECT:
                code, message = framing.reject_reason(answer)
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
                provenance: Claim | None = None) -> Credential:
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
        available = header.get("available")
        names = [str(n) for n in available] if isinstance(available, list) else None
        ttl = header.get("ttl")
        return Credential(values, available=names,
                          ttl=float(ttl) if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) else None)

    def hold(self, provenance: Claim | None = None) -> HeldLease:
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


def default_provenance(argv0: str | None = None, profile: str | None = None) -> dict[str, str | int]:
    """What the consumer says it is about to do: its claim, shown in approvals and the audit log."""
    return {"argv0": os.path.basename(argv0) if argv0 else "", "pid": os.getpid(),
            "profile": profile or "", "cwd": os.path.basename(os.getcwd())}


def fetch(channel: Channel, specs: Sequence[CredentialSpec], source: str, provenance: Claim, *,
          optional: bool = False, on_item: Callable[[CredentialSpec, Credential], None] | None = None
          ) -> dict[str, Secret]:
    """Every variable `specs` name, from one session; the listener is asked only for named fields.

    `source` is where the specs came from (a profile's path), for messages. A field the item lacks
    is an error naming the spec's line, unless `optional` (`run --env-all`: an item with no TOTP or
    notes simply sets no such variable). On any failure nothing is returned and every value fetched
    so far is wiped. `on_item` sees each credential before it is wiped (the exec path copies the
    fields of the spec's `files:` out of it).
    """
    injected: dict[str, Secret] = {}
    try:
        for spec in specs:
            cred = channel.request(spec.query, spec.fields, provenance)
            try:
                if on_item is not None:
                    on_item(spec, cred)
                for var, field in spec.env.items():
                    if field in cred:
                        injected[var] = Secret(cred[field].buffer)
                    elif not optional:
                        has = f" (it has: {', '.join(cred.available)})" if cred.available else ""
                        where = f"{source}:{spec.line}: " if spec.line else ""
                        raise RunwrapError(f"{where}the item for {spec.query} has no {field} value{has}; "
                                           f"remove {var} or pick another field")
            finally:
                cred.wipe()
    except BaseException:
        for value in injected.values():
            value.wipe()
        raise
    return injected


class Endpoint:
    """A paired listener and this consumer's key: what it takes to open a `Channel`."""

    def __init__(self, connection: Connection, private: bytes) -> None:
        self.connection = connection
        self._private = private

    @classmethod
    def pick(cls, lay: Layout, name: str | None) -> Endpoint:
        """The named connection, else the only one, else the default (ConfigError if unpaired)."""
        return cls.pick_in(lay.config, name)

    @classmethod
    def pick_in(cls, config: str | os.PathLike[str], name: str | None) -> Endpoint:
        """`pick` given the config folder (`paths.config_dir`): the exec path builds no Layout."""
        connection = Connections(os.path.join(config, CONNECTIONS)).pick(name)
        folder_for_files(config)
        return cls(connection, load_or_create_identity(os.path.join(config, CONSUMER_KEY)))

    def open(self, timeout: float = CONNECT_TIMEOUT) -> Channel:
        return Channel.open(self.connection, self._private, timeout)

    def __repr__(self) -> str:
        return f"Endpoint({self.connection.name!r} at {self.connection.address})"
