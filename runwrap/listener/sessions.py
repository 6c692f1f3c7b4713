"""Session mode: a paired consumer's Noise IK handshake, its requests, and the lease it may hold.

Each request is checked against the policy (runwrap.listener.policy), approved, looked up and
audited before the answer leaves. The listener can end a lease at any time (revocation, maximum
lease length), and the consumer then stops its child at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runwrap.credential import FIELDS, Query, is_field_name
from runwrap.errors import NotFound, ProtocolError, ProviderError, RunwrapError
from runwrap.listener import policy
from runwrap.listener.approval import Approver
from runwrap.listener.audit import AuditError
from runwrap.listener.leases import DynamicLeases
from runwrap.listener.peers import Peers, peer_fp
from runwrap.listener.state import AuditTrail, Handshaking, Leases, LeaseState, reject
from runwrap.listener.watch import DEFAULT_INTERVAL, Watcher
from runwrap.providers.base import Provider
from runwrap.secret import wipe_bytes
from runwrap.wire import framing, messages, noise_session
from runwrap.wire.identity import fingerprint

REQUEST_IDLE_TIMEOUT = 60.0


@dataclass(kw_only=True, repr=False, eq=False)
class Sessions:
    """Serves session connections; wired by runwrap.listener.server to what it uses, and no more."""

    private_key: bytes
    peers: Peers
    audit: AuditTrail
    handshaking: Handshaking
    leases: Leases
    provider: Provider
    provider_name: str
    approver: Approver
    rate: tuple[int, float]  # (different items, period in seconds), per peer
    max_lease: float | None
    clock: Callable[[], float] = time.monotonic  # lease lengths and the rate limit
    watch_interval: float = DEFAULT_INTERVAL  # seconds between checks of what watched leases were served
    rates: dict[str, policy.RateState] = field(default_factory=dict, init=False)  # each peer's rate state
    dynamic: DynamicLeases = field(init=False)  # dynamic secrets, kept as long as the lease they were served to
    watch: Watcher = field(init=False)  # what watched leases were served, and its changes (rotation)

    def __post_init__(self) -> None:
        self.dynamic = DynamicLeases(provider=self.provider, audit=self.audit, end_lease=self.end_lease)
        self.watch = Watcher(provider=self.provider, audit=self.audit, dynamic=self.dynamic,
                             decide=lambda state, query: self._decide(state, query, count=False),
                             end_lease=self.end_lease, interval=self.watch_interval, refresh=self.peers.refresh)
        self.dynamic.on_exhausted = self.watch.exhausted

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Noise IK as responder. The initiator's key is looked up among the peers, and an unknown,
        removed or revoked key (or a message 1 with a payload) is refused and audited before a
        single transport message is read. The handshake's deadline is the `handshaking` table's."""
        # Made before message 1 arrives (loading the static key is ~50 us): while the consumer computes
        # message 1, not after, when the consumer waits for the answer.
        handshake = noise_session.responder_ik(self.private_key)
        first = await framing.read_frame(reader, timeout=None, max_len=framing.MAX_HANDSHAKE_FRAME)
        try:
            payload = handshake.read(first)
        except ProtocolError:
            self.audit.write("handshake_failed", decision="denied",
                             reason="message 1 did not verify (wrong listener key or not runwrap)")
            await reject(writer, "cannot_decrypt", "this listener's key is not the one you pinned")
            return
        remote = handshake.remote_static or b""
        # peers.json may have been edited by hand (a peer removed): follow it, failing closed.
        try:
            self.peers.refresh()
        except RunwrapError as exc:
            self.audit.write("handshake_failed", peer_fp=fingerprint(remote), decision="error",
                             reason=f"the peers file cannot be read: {exc}")
            await reject(writer, "error", "the listener cannot read its peers file")
            return
        peer = self.peers.by_key(remote)
        if payload or peer is None or peer.revoked:
            why = ("message 1 carried a payload" if payload else
                   "peer was revoked" if peer is not None else "unknown key")
            self.audit.write("handshake_failed", peer=peer.name if peer else None, peer_fp=fingerprint(remote),
                             decision="revoked" if peer is not None and peer.revoked else "denied", reason=why)
            await reject(writer, "unknown_peer", "this consumer is not a peer of the listener "
                         "(never paired, removed or revoked); pair again with a fresh invite")
            return
        self.handshaking.done(writer)
        writer.write(framing.encode(framing.ACCEPT + handshake.write()))
        await writer.drain()
        session = handshake.session()
        state = LeaseState(lease=secrets.token_hex(8), peer=peer.name, started=self.clock(),
                           writer=writer, session=session, fp=peer_fp(peer))  # the key `remote` proved
        self.leases.add(state)
        try:
            await self._serve_messages(reader, state)
        finally:
            if state.timer:
                state.timer.cancel()
            self.leases.remove(state)
            self.watch.release(state)
            self.dynamic.release(state)
            self.record_lease_end(state, state.end_reason and f"ended by the listener: {state.end_reason}")

    def record_lease_end(self, state: LeaseState, reason: str | None, exit_status: int | None = None) -> None:
        """The one `lease_end` of a session that was given a credential or held a lease, however it ended:
        the consumer's report, a lost connection (a consumer killed mid-request), revocation, shutdown."""
        if state.end_recorded or not (state.served or state.held):
            return
        state.end_recorded = True
        if reason is None and exit_status is None:
            reason = ("connection closed before the consumer reported an exit" if state.held else
                      "connection closed; the consumer never held the lease")
        # The duration is the listener's own measure; the exit status is the consumer's word. A broken log
        # keeps the event and writes it when it can (runwrap.listener.audit.KEPT).
        with contextlib.suppress(AuditError):
            self.audit.write("lease_end", peer=state.peer, peer_fp=state.fp, lease=state.lease, exit=exit_status,
                             reason=reason, provenance=state.claim, duration_ms=self._ms_since(state.started))

    async def _serve_messages(self, reader: asyncio.StreamReader, state: LeaseState) -> None:
        loop = asyncio.get_running_loop()
        while not state.ended:
            # A session that holds no lease is closed after REQUEST_IDLE_TIMEOUT without a message: by a
            # timer (its read then ends), cheaper than a timed wait, which is a task per read.
            idle = None if state.held else loop.call_later(REQUEST_IDLE_TIMEOUT, state.writer.close)
            try:
                frame = await framing.read_frame(reader, timeout=None)
            except ProtocolError:
                return
            finally:
                if idle is not None:
                    idle.cancel()
            header, _ = messages.decode(state.session.decrypt(frame))
            kind = header["type"]
            if kind == messages.REQUEST and not state.held:
                state.requests += 1
                await self._request(state, header)
            elif kind == messages.HOLD and not state.held:
                self._hold(state, header)
            elif kind == messages.ROTATED and state.held:
                self.watch.rotated(state, _int(header.get("seq")))
            elif kind == messages.LEASE_END and state.held:
                state.ended = True
                self.record_lease_end(state, None, exit_status=_int(header.get("exit")))
                return
            else:
                raise ProtocolError(f"unexpected message {kind!r}")

    def _hold(self, state: LeaseState, header: dict[str, Any]) -> None:
        state.held = True
        state.started = self.clock()
        state.claim = _claim(header.get("provenance"))
        self.watch.hold(state, header.get("watch") is True)
        peer = self.peers.by_name.get(state.peer)
        if peer is None or peer.revoked:
            self.end_lease(state, "peer revoked")
        elif self.max_lease:
            loop = asyncio.get_running_loop()
            state.timer = loop.call_later(self.max_lease, self.end_lease, state,
                                          f"maximum lease length ({self.max_lease:g}s) reached")

    def end_lease(self, state: LeaseState, reason: str) -> None:
        """End a lease from the listener's side: the consumer stops its child at once."""
        if state.ended:
            return
        state.ended = True
        state.end_reason = reason
        if state.timer:
            state.timer.cancel()
        # Revocation must work even when the audit log cannot be written: never let that stop it.
        with contextlib.suppress(AuditError):
            self.audit.write("revoke", peer=state.peer, peer_fp=peer_fp(self.peers.by_name.get(state.peer)),
                             lease=state.lease, decision="revoked", reason=reason, provenance=state.claim,
                             duration_ms=self._ms_since(state.started) if state.held else None)
        with contextlib.suppress(Exception):
            state.writer.write(framing.encode(state.session.encrypt(
                messages.encode({"type": messages.REVOKE, "reason": reason}))))
        state.writer.close()

    def _ms_since(self, started: float) -> int:
        return int((self.clock() - started) * 1000)

    async def _request(self, state: LeaseState, header: dict[str, Any]) -> None:
        """Check, approve, look up, audit, answer — in that order; nothing leaves unaudited."""
        try:
            await self._answer(state, header)
        except AuditError as exc:
            # Fail closed, and say why: the refusal itself carries no secret, so it may go unlogged.
            await _send_error(state, "error", f"the listener cannot write its audit log, so it refuses "
                              f"requests until it can ({exc})")

    async def _answer(self, state: LeaseState, header: dict[str, Any]) -> None:
        log = self.audit.write
        base: dict[str, Any] = {"peer": state.peer, "peer_fp": peer_fp(self.peers.by_name.get(state.peer)),
                                "lease": state.lease, "provenance": _claim(header.get("provenance"))}
        try:
            query = Query.from_wire(header.get("query"))
        except ValueError as exc:
            log("request", **base, decision="error", reason=f"bad query: {exc}")
            await _send_error(state, "error", f"bad request: {exc}")
            return
        wanted = header.get("fields") or list(FIELDS)
        if not isinstance(wanted, list) or not all(is_field_name(f) for f in wanted):
            log("request", **base, query=query.to_wire(), decision="error", reason="unknown field")
            await _send_error(state, "error", "bad request: a field is a name such as password or api_key")
            return
        base.update(query=query.to_wire(), fields=wanted)
        verdict = self._decide(state, query, count=True)
        if verdict.allowed and not await self.approver.approve(state.peer, query, wanted, base["provenance"]):
            verdict = policy.Decision("denied", "denied", f"{query} was not approved on the listener")
        if verdict.allowed:
            # The peer may have been revoked or rescoped while the question was open.
            verdict = self._decide(state, query, count=False)
        if not verdict.allowed:
            log("request", **base, decision=verdict.decision, reason=verdict.reason)
            await _send_error(state, verdict.code, verdict.reason, retry_after=verdict.retry_after)
            return
        try:
            # A vault is asked on a thread, so a slow one stalls no other connection; a provider whose
            # lookup never waits (the example's fixed table) is asked here, sparing ~0.2 ms of thread hops.
            if self.provider.lookup_blocks:
                item = await asyncio.get_running_loop().run_in_executor(None, self.provider.lookup, query)
            else:
                item = self.provider.lookup(query)
        except NotFound:
            log("request", **base, decision="not_found", reason=f"no item for {query}")
            await _send_error(state, "not_found", f"the vault has no item for {query}")
            return
        except RunwrapError as exc:
            log("request", **base, decision="error", reason=str(exc))
            await _send_error(state, "provider", str(exc))
            return
        except Exception as exc:  # a provider bug must not take the listener down or leak a value
            log("request", **base, decision="error", reason=f"provider failed: {type(exc).__name__}")
            await _send_error(state, "provider", f"the {self.provider_name} provider failed "
                              f"({type(exc).__name__}); see the listener's output")
            return
        lease, kept = item.lease, False
        try:
            verdict = self._decide(state, query, count=False)
            if not verdict.allowed:  # revoked (or rescoped) while the provider worked
                log("request", **base, decision=verdict.decision, reason=verdict.reason)
                await _send_error(state, verdict.code, verdict.reason)
                return
            try:
                blobs = item.values(wanted)
                # Names only, never values: so the consumer can say which fields the item does have.
                available = item.field_names() if set(wanted) - set(blobs) else None
            except ProviderError as exc:
                log("request", **base, decision="error", reason=str(exc))
                await _send_error(state, "provider", str(exc))
                return
            reply: dict[str, Any] = {"type": messages.CREDENTIAL, "lease": state.lease}
            if lease is not None:  # the consumer may say when it dies if no lease is held (runwrap connect)
                reply["ttl"] = lease.duration
            if available is not None:
                reply["available"] = available
            try:
                plaintext = messages.encode(reply, blobs)
            finally:
                for value in blobs.values():
                    value.wipe()
            if len(plaintext) > messages.MAX_ANSWER:  # refused, and said so, before anything is audited allowed
                wipe_bytes(plaintext)
                why = (f"the item for {query} is {len(plaintext)} bytes with the fields asked for, more than the "
                       f"{messages.MAX_ANSWER // 1024} KiB runwrap carries in one answer")
                log("request", **base, decision="error", reason=why, credential_id=item.credential_id)
                await _send_error(state, "error", f"{why}; ask for fewer fields, or keep a value that large "
                                  "elsewhere (a file the command reads)")
                return
            log("request", **base, decision="allowed", credential_id=item.credential_id)
            state.served += 1
            self.watch.served(state, state.requests - 1, query, wanted, item)
            if lease is not None:
                self.dynamic.keep(state, lease)
                kept = True
        finally:
            item.wipe()
            if lease is not None and not kept:  # read, never served: nobody may use it
                self.dynamic.drop(state, lease, "read but not served")
        try:  # more than one Noise message for an answer over ~64 KB (messages.PARTS)
            frames = messages.seal(plaintext, state.session.encrypt, noise_session.MAX_PLAINTEXT)
        finally:
            wipe_bytes(plaintext)
        for frame in frames:
            state.writer.write(framing.encode(frame))
        await state.writer.drain()

    def _decide(self, state: LeaseState, query: Query, *, count: bool) -> policy.Decision:
        """policy.decide on what the listener knows now; `count` counts it against the peer's rate."""
        peer = self.peers.by_name.get(state.peer)
        now = self.clock()
        rate = None
        if count:
            rate = self.rates.get(state.peer) or policy.RateState.fresh(*self.rate, now)
        decision = policy.decide(query, peer=state.peer, scope=peer.scope if peer else [],
                                 revoked=peer is None or peer.revoked, lease_ended=state.ended,
                                 audit_broken=self.audit.broken, rate=rate, now=now)
        if decision.rate is not None:
            self.rates[state.peer] = decision.rate
        return decision


async def _send_error(state: LeaseState, code: str, message: str, *, retry_after: float | None = None) -> None:
    header: dict[str, Any] = {"type": messages.ERROR, "code": code, "message": message}
    if retry_after is not None:
        header["retry_after"] = retry_after
    if state.writer.is_closing():
        return
    state.writer.write(framing.encode(state.session.encrypt(messages.encode(header))))
    await state.writer.drain()


def _claim(provenance: Any) -> dict[str, str] | None:
    """The consumer's claim (argv[0], pid, profile, folder name), cut short and made printable.

    It is shown on the listener's terminal, so control characters (escape sequences that could
    redraw the question) are replaced.
    """
    if not isinstance(provenance, dict):
        return None
    out = {}
    for key in ("argv0", "pid", "profile", "cwd"):
        if key in provenance:
            text = str(provenance[key])[:200]
            out[key] = text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)
    return out or None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
