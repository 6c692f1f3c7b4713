"""The state the listener's parts share, made in one constructor (`ListenerState`).

runwrap.listener.server makes one and hands each part only the pieces it uses, the way
magic-wormhole's boss wires its machines: sessions, pairing and control never see each other or the
server, so the package has no import circle, and a part can be built with just what it takes. What
only one part uses (rate buckets, remembered approvals, failed pairings) stays in that part.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runwrap.listener.audit import AuditError, AuditLog
from runwrap.listener.peers import Peers
from runwrap.listener.policy import check_pattern
from runwrap.paths import Layout, folder_for_files
from runwrap.wire import framing, noise_session, pairing
from runwrap.wire.identity import load_or_create_identity

DEFAULT_INVITE_TTL = 300.0


@dataclass(frozen=True)
class Keys:
    """The listener's static X25519 key pair: the identity consumers pin."""

    private: bytes = field(repr=False)
    public: bytes


class AuditTrail:
    """The audit log as the listener's parts write it: failing closed, and saying so once.

    `broken` (the log's own state) holds why it cannot be written; while it is set the policy refuses
    every request (nothing may leave unaudited). The once-a-second `follow` puts the listener back
    in service when the log can be written again; its first event then is an `audit_gap`.
    """

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._said_down = False  # said so on stderr; said again when it is back

    @property
    def broken(self) -> str | None:
        return self.log.broken

    def write(self, event: str, **fields: Any) -> None:
        """Audit, failing closed: a write that fails stops the answer it would describe."""
        try:
            self.log.write(event, **fields)
        except AuditError as exc:
            self.failed(exc)
            raise

    def failed(self, exc: AuditError) -> None:
        if not self._said_down:
            self._said_down = True
            print(f"runwrap: {exc}; refusing requests until it can be written", file=sys.stderr, flush=True)

    async def follow(self) -> None:
        """Every second: follow a rotated, replaced or repaired log file (never blocking on it), put
        the listener back in service once the log can be written again, then fsync it off the loop."""
        while True:
            await asyncio.sleep(1.0)
            try:
                if self.log.check():  # on the loop: it may swap the fd that writes use
                    self._said_down = False
                    print(f"runwrap: the audit log {self.log.path} can be written again; serving requests",
                          file=sys.stderr, flush=True)
                await asyncio.to_thread(self.log.sync)  # an fsync can take a while; requests go on
            except AuditError as exc:
                self.failed(exc)

    def close(self) -> None:
        self.log.close()


class Handshaking:
    """Connections whose handshake has not completed, oldest first, each closed at its deadline.

    When the table is full the oldest unauthenticated connection is dropped to make room, so idle or
    slow-loris connections can delay nobody. The deadline is a timer that closes the connection (its
    task's read then ends), not a timed wait around each read: that costs a task per read.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending: dict[asyncio.StreamWriter, asyncio.TimerHandle | None] = {}  # an ordered set

    def admit(self, writer: asyncio.StreamWriter, within: float) -> None:
        """In the table, and closed `within` seconds from now unless `done` (or `untimed`) first."""
        if len(self._pending) >= self.limit:
            oldest = next(iter(self._pending))
            self.done(oldest)
            oldest.close()  # its own task sees EOF and ends
        self._pending[writer] = asyncio.get_running_loop().call_later(within, writer.close)

    def untimed(self, writer: asyncio.StreamWriter) -> None:
        """Still in the table, but under a deadline of its own (a pairing's is longer: runwrap.listener.invites)."""
        timer = self._pending.get(writer)
        if timer is not None:
            timer.cancel()
            self._pending[writer] = None

    def done(self, writer: asyncio.StreamWriter) -> None:
        """Authenticated (or closed, or a control connection): never dropped as idle."""
        timer = self._pending.pop(writer, None)
        if timer is not None:
            timer.cancel()


async def reject(writer: asyncio.StreamWriter, code: str, message: str) -> None:
    """Refuse a handshake (session or pair) with a code and a message the consumer shows."""
    body = json.dumps({"code": code, "message": message}).encode()
    writer.write(framing.encode(framing.REJECT + body))
    with contextlib.suppress(OSError):
        await writer.drain()


@dataclass
class LeaseState:
    """One authenticated session of a peer; a lease once the consumer holds it while its child runs."""

    lease: str
    peer: str
    started: float
    writer: asyncio.StreamWriter
    session: noise_session.Session
    held: bool = False
    ended: bool = False
    timer: asyncio.TimerHandle | None = None
    claim: dict[str, str] | None = None  # what the consumer said it runs under this lease (HOLD)
    requests: int = 0  # REQUEST messages received: CHANGED names a request by its place among them
    served: int = 0  # credentials this session was given: from the first, it must end on the record
    end_recorded: bool = False  # its one lease_end event was written (or tried)
    end_reason: str | None = None  # why the listener ended it (revocation, maximum length)
    fp: str | None = None  # the peer's key fingerprint, proven by the handshake


class Leases:
    """The open sessions of every peer: sessions adds and removes them, control ends a peer's."""

    def __init__(self) -> None:
        self._by_peer: dict[str, dict[str, LeaseState]] = {}

    def add(self, state: LeaseState) -> None:
        self._by_peer.setdefault(state.peer, {})[state.lease] = state

    def remove(self, state: LeaseState) -> None:
        leases = self._by_peer.get(state.peer, {})
        leases.pop(state.lease, None)
        if not leases:
            self._by_peer.pop(state.peer, None)

    def of(self, peer: str) -> list[LeaseState]:
        return list(self._by_peer.get(peer, {}).values())

    def all(self) -> list[LeaseState]:
        return [state for leases in self._by_peer.values() for state in leases.values()]

    def counts(self) -> dict[str, int]:
        return {peer: len(leases) for peer, leases in self._by_peer.items() if leases}


@dataclass
class Invite:
    nameplate: str
    code: str
    name: str | None
    scope: list[str]
    expires_at: float

    @property
    def expires_rfc3339(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires_at))


class Invites:
    """The open one-time codes: control and the first start issue them, pairing burns them."""

    def __init__(self) -> None:
        self.by_nameplate: dict[str, Invite] = {}

    def issue(self, name: str | None, scope: list[str], ttl: float) -> Invite:
        """A new invite with a nameplate no open invite uses; expired ones go."""
        now = time.time()
        for key in [k for k, inv in self.by_nameplate.items() if inv.expires_at <= now]:
            del self.by_nameplate[key]
        scope = [check_pattern(p) for p in scope] or ["*"]
        while True:
            nameplate, code = pairing.new_code()
            if nameplate not in self.by_nameplate:
                break
        invite = Invite(nameplate, code, name, scope, now + ttl)
        self.by_nameplate[nameplate] = invite
        return invite

    def take(self, nameplate: str) -> Invite | None:
        """The invite, out of the table: one attempt per code, whatever happens next."""
        return self.by_nameplate.pop(nameplate, None)


class ListenerState:
    """Everything the listener's parts share, made here and nowhere else."""

    def __init__(self, layout: Layout, audit_path: Path | None, *, handshakes: int) -> None:
        folder_for_files(layout.config)
        private = load_or_create_identity(layout.listener_key)
        self.keys = Keys(private, noise_session.public_key(private))
        self.peers = Peers(layout.peers)
        self.audit = AuditTrail(AuditLog(audit_path or layout.audit_log))
        self.handshaking = Handshaking(handshakes)
        self.leases = Leases()
        self.invites = Invites()
