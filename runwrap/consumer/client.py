"""The consumer's side of a session: the Noise IK channel, its requests, and the lease it holds.

The exec path (`runwrap.run`) and the public `runwrap.api.Client` both open channels through an
`Endpoint` and fetch through `fetch`, so there is one implementation of lookup and errors. Pairing
is `runwrap.consumer.pairing`. Everything here is blocking and single-threaded, so the exec path can
fork safely afterwards.
"""

from __future__ import annotations

import os
import time

from runwrap.consumer.connections import Connection, Connections
from runwrap.credential import FIELDS, Credential, Query
from runwrap.errors import (
    FingerprintMismatch,
    HandshakeFailed,
    LeaseRevoked,
    ProtocolError,
    RateLimited,
    RunwrapError,
    UsageError,
    from_code,
)
from runwrap.paths import CONNECTIONS, CONSUMER_KEY, Layout, folder_for_files
from runwrap.profile.model import CredentialSpec
from runwrap.secret import Secret
from runwrap.wire import framing, messages, noise_ik
from runwrap.wire.address import connect
from runwrap.wire.identity import load_or_create_identity

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    from runwrap.consumer.changes import Changed

    # What the consumer says it is about to do (argv[0], pid, profile, folder): its claim, shown in
    # approvals and the audit log; see default_provenance.
    Claim = Mapping[str, str | int]

CONNECT_TIMEOUT = 10.0
# A request may wait minutes for an approval with nothing on the wire; TCP keepalive is what notices
# a listener whose host or link went away, in about idle + interval * count seconds.
KEEPALIVE = (5, 2, 3)  # idle, interval, count

# A rate-limited answer says when to retry; the consumer waits that long when it is within its rate wait
# (`--rate-wait DUR`, RUNWRAP_RATE_WAIT), so a burst of builds rides out a short limit instead of failing.
DEFAULT_RATE_WAIT = 5.0
# The listener ends a session that sends nothing for a minute (sessions.REQUEST_IDLE_TIMEOUT): stay under it.
LONGEST_RATE_WAIT = 50.0


class Channel:
    """An authenticated Noise IK session with one listener."""

    def __init__(self, sock: socket, session: noise_ik.Session, timeout: float) -> None:
        self.sock = sock
        self.session = session
        self.timeout = timeout
        self.lease: str | None = None
        self.rate_wait = DEFAULT_RATE_WAIT  # the longest a request waits out the listener's rate limit

    @classmethod
    def open(cls, conn: Connection, private: bytes, timeout: float = CONNECT_TIMEOUT,
             meanwhile: Callable[[], object] | None = None) -> Channel:
        """Connect and shake hands; `meanwhile` runs between the two messages, while the listener
        computes its answer (the exec path loads its supervisor then: ~1 ms of every launch)."""
        sock = connect(conn.address, timeout, KEEPALIVE)
        try:
            deadline = time.monotonic() + timeout
            handshake = noise_ik.initiator_ik(private, conn.public_bytes)
            sock.sendall(framing.preface(framing.MODE_SESSION))
            framing.send_frame(sock, handshake.write(b""))
            if meanwhile is not None:
                meanwhile()
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
        def next_plaintext() -> bytes:
            return self.session.decrypt(framing.recv_frame(self.sock, deadline=deadline))

        header, values = messages.decode(next_plaintext())
        if header["type"] == messages.PARTS:  # an answer too large for one Noise message
            header, values = messages.decode(messages.join(header.get("length"), next_plaintext))
        return header, values

    def request(self, query: Query, fields: Iterable[str] = FIELDS,
                provenance: Claim | None = None) -> Credential:
        """One item's `fields`; a rate-limited answer is waited out while that fits in `rate_wait`."""
        give_up = time.monotonic() + self.rate_wait
        while True:
            self._send({"type": messages.REQUEST, "query": query.to_wire(), "fields": list(fields),
                        "provenance": dict(provenance or {})})
            header, values = self._receive(time.monotonic() + self.timeout + 300)  # approval may take a while
            retry = _retry_after(header)
            if retry is None:
                break
            if time.monotonic() + retry > give_up:
                at = time.strftime("%H:%M:%S", time.localtime(time.time() + retry))
                raise RateLimited(f"{header.get('message') or 'rate limited'} (at {at}); waiting that long is "
                                  f"more than the rate wait of {self.rate_wait:g}s (--rate-wait, RUNWRAP_RATE_WAIT)",
                                  retry_after=retry)
            time.sleep(retry + 0.05)  # the listener's window has moved on by then
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

    def hold(self, provenance: Claim | None = None, *, watch: bool = False) -> HeldLease:
        """Keep the session as the lease; `watch`: the consumer follows changes (on_change is not none)."""
        header: dict[str, Any] = {"type": messages.HOLD, "provenance": dict(provenance or {})}
        if watch:
            header["watch"] = True
        self._send(header)
        return HeldLease(self)

    def close(self) -> None:
        self.sock.close()


class Revoked:
    """The listener ended the lease: `reason` says why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class HeldLease:
    """The supervisor's view of a lease: poll it for a revocation or a change, acknowledge a change
    once applied, report the child's end."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.closed = False
        channel.sock.setblocking(False)

    def fileno(self) -> int:
        return -1 if self.closed else self.channel.sock.fileno()

    def poll(self) -> Revoked | Changed | None:
        """What the listener sent; a lost listener (or a message out of protocol) just stops being polled."""
        sock = self.channel.sock
        try:
            sock.setblocking(True)
            header, values = self.channel._receive(time.monotonic() + 2.0)
        except RunwrapError:
            self.closed = True
            return None
        finally:
            if not self.closed:
                sock.setblocking(False)
        kind = header.get("type")
        if kind == messages.REVOKE:
            self.closed = True
            return Revoked(str(header.get("reason") or "revoked"))
        if kind == messages.CHANGED:
            from runwrap.consumer.changes import changed_of  # only a watching lease is sent one

            try:
                return changed_of(header, values)
            except ProtocolError:
                self.closed = True
        for value in values.values():
            value.wipe()
        return None

    def poll_revoked(self) -> str | None:
        """A reason if the listener ended the lease (a change is dropped: see `poll`)."""
        event = self.poll()
        if isinstance(event, Revoked):
            return event.reason
        if event is not None:
            event.wipe()
        return None

    def rotated(self, seq: int) -> None:
        """Tell the listener no running child holds the values CHANGED `seq` superseded any more."""
        self._send_quietly({"type": messages.ROTATED, "seq": seq}, close=False)

    def end(self, exit_status: int, duration_ms: int) -> None:
        self._send_quietly({"type": messages.LEASE_END, "exit": exit_status, "duration_ms": duration_ms},
                           close=True)

    def _send_quietly(self, header: dict[str, Any], *, close: bool) -> None:
        if self.closed:
            return
        sock = self.channel.sock
        try:
            sock.settimeout(2.0)
            self.channel._send(header)
        except (RunwrapError, OSError):
            close = True
        finally:
            if close:
                self.closed = True
                self.channel.close()
            else:
                sock.setblocking(False)


def _retry_after(header: Mapping[str, Any]) -> float | None:
    """Seconds to wait, when `header` is a rate-limited answer that says when to retry; else None."""
    if header.get("type") != messages.ERROR or header.get("code") != RateLimited.code:
        return None
    retry = header.get("retry_after")
    if not isinstance(retry, (int, float)) or isinstance(retry, bool) or not 0 <= retry < 86400:
        return None  # an answer that does not say (or says nonsense) is not waited for
    return float(retry)


def parse_rate_wait(text: str) -> float:
    """`--rate-wait`/RUNWRAP_RATE_WAIT as seconds, 0 to 50s; ValueError saying what is accepted."""
    from runwrap.durations import check_wait, parse_duration

    return check_wait(parse_duration(text), text, LONGEST_RATE_WAIT, f"{LONGEST_RATE_WAIT:g}s",
                      "the listener ends a session that is idle for a minute")


def rate_wait(flag: float | None, environ: Mapping[str, str]) -> float:
    """The rate wait: the flag's, else RUNWRAP_RATE_WAIT's (UsageError if it is bad), else the default."""
    if flag is not None:
        return flag
    text = environ.get("RUNWRAP_RATE_WAIT", "")
    if not text:
        return DEFAULT_RATE_WAIT
    try:
        return parse_rate_wait(text)
    except ValueError as exc:
        raise UsageError(f"RUNWRAP_RATE_WAIT: {exc}") from None


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
                injected.update(variables(spec, cred, source, optional=optional))
            finally:
                cred.wipe()
    except BaseException:
        for value in injected.values():
            value.wipe()
        raise
    return injected


def variables(spec: CredentialSpec, cred: Credential, source: str, *, optional: bool = False) -> dict[str, Secret]:
    """The variables one spec sets from its credential, as copies (`fetch`'s rules; a pushed change
    goes through this too)."""
    found: dict[str, Secret] = {}
    for var, field in spec.env.items():
        if field in cred:
            found[var] = Secret(cred[field].buffer)
        elif not optional:
            for value in found.values():
                value.wipe()
            has = f" (it has: {', '.join(cred.available)})" if cred.available else ""
            where = f"{source}:{spec.line}: " if spec.line else ""
            raise RunwrapError(f"{where}the item for {spec.query} has no {field} value{has}; "
                               f"remove {var} or pick another field")
    return found


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

    def open(self, timeout: float = CONNECT_TIMEOUT, meanwhile: Callable[[], object] | None = None) -> Channel:
        return Channel.open(self.connection, self._private, timeout, meanwhile)

    def __repr__(self) -> str:
        return f"Endpoint({self.connection.name!r} at {self.connection.address})"
