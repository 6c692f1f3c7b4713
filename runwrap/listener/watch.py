"""Rotation, the listener's half: follow what watched leases were served and push what changed.

A consumer that will follow changes says so in its HOLD (`"watch": true`). From then on, every
`--watch-interval`, the listener looks the items of that session up again and compares them with
what it served. It never keeps a value to compare with: for each served REQUEST it keeps a keyed
BLAKE2b digest (a random key per listener process, so a digest says nothing outside it) over the
fields that request named, the TOTP *seed* rather than its code of the moment. A new digest is a
change; anything else is not, so a new version with the same data restarts nothing.

One lookup per distinct query per tick, however many leases hold it (100 children on one item cost
one lookup). Before it, `Provider.change_signal` may answer cheaply that nothing can have changed
(OpenBao's KV v2 `current_version`, a pass entry's file stamp); the lookup is skipped when every
request of that query was last confirmed under the same signal. Provider calls run in the loop's
executor, as requests' do. A lookup that fails (a sealed server, an item removed) is audited once
(`watch_failed`) until it succeeds again, and is not a change: the children keep what they have.

What changed is pushed over the held session as one CHANGED message (runwrap.wire.messages; the
header names each changed REQUEST by its index on the session and the blobs carry the new values of
the fields it named), audited first as `changed` and acknowledged by the consumer's ROTATED, audited
as `rotated`. The policy is asked again before any value leaves: a peer revoked or no longer in
scope is given nothing and its lease is ended as a revocation ends it.

Dynamic secrets (an item with a lease) are never looked up again: each read would mint a new one.
They change when their lease can be renewed no further (runwrap.listener.leases calls `exhausted`):
a new one is read, kept and pushed with reason `max_ttl`, and the old one is revoked on the ROTATED
that acknowledges it, or when the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from runwrap.credential import Item, Lease, Query
from runwrap.errors import NotFound, ProtocolError, RunwrapError
from runwrap.listener import policy
from runwrap.listener.audit import AuditError
from runwrap.listener.leases import DynamicLeases
from runwrap.listener.state import AuditTrail, LeaseState
from runwrap.providers.base import Provider
from runwrap.secret import Secret, wipe_bytes
from runwrap.wire import framing, messages, noise_session

DEFAULT_INTERVAL = 30.0  # seconds between checks (`runwrap listen --watch-interval`)
PARALLEL = 4  # lookups of one tick in flight at once: a slow vault must not be flooded


@dataclass(eq=False)
class _Served:
    """One answered REQUEST of a session: what it asked for and the digest of what it was given."""

    index: int  # its place among the session's REQUESTs, as CHANGED names it
    query: Query
    fields: list[str]
    digest: bytes
    credential_id: str  # the item it came from (`secret/runwrap/github.com@3`): what change_signal starts from
    lease: Lease | None = None  # a dynamic secret's lease: followed by its max TTL, never looked up again
    signal: str | None = None  # the provider's signal under which the digest was last confirmed
    refused: bytes | None = None  # the digest of new values too large to push: audited once, not each tick


@dataclass(eq=False)
class _Change:
    served: _Served
    item: Item  # the new item, wiped by whoever looked it up
    digest: bytes
    signal: str | None  # the signal it was read under


@dataclass(eq=False)
class _Session:
    state: LeaseState
    served: dict[int, _Served] = field(default_factory=dict)
    watch: bool = False
    seq: int = 0  # the last CHANGED sent
    superseded: dict[int, list[Lease]] = field(default_factory=dict)  # CHANGED seq -> the leases it replaced
    acked: set[int] = field(default_factory=set)  # the seqs a ROTATED confirmed


@dataclass(kw_only=True, eq=False)
class Watcher:
    """The watched sessions of one listener; wired by runwrap.listener.sessions."""

    provider: Provider
    audit: AuditTrail
    dynamic: DynamicLeases
    decide: Callable[[LeaseState, Query], policy.Decision]  # the policy now, not counted against the rate
    end_lease: Callable[[LeaseState, str], None]
    interval: float = DEFAULT_INTERVAL
    refresh: Callable[[], None] = lambda: None  # re-read peers.json if it changed (a peer removed by hand)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), init=False, repr=False)
    _sessions: dict[str, _Session] = field(default_factory=dict, init=False)
    _failed: dict[str, str] = field(default_factory=dict, init=False)  # query key -> the error last audited
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    # ---- what sessions tell it ----

    def served(self, state: LeaseState, index: int, query: Query, fields: list[str], item: Item) -> None:
        """REQUEST `index` of `state` was answered with `item` (still unwiped): keep its digest."""
        session = self._sessions.setdefault(state.lease, _Session(state))
        session.served[index] = _Served(index, query, list(fields), self._digest(item, fields),
                                        item.credential_id, item.lease)

    def hold(self, state: LeaseState, watch: bool) -> None:
        """The consumer holds its lease; with `watch` it follows changes, else nothing is kept."""
        if watch and state.lease in self._sessions:
            self._sessions[state.lease].watch = True
        else:
            self._sessions.pop(state.lease, None)

    def rotated(self, state: LeaseState, seq: int | None) -> None:
        """ROTATED(seq): no child of the consumer holds what CHANGED `seq` replaced any more."""
        session = self._sessions.get(state.lease)
        if session is None or seq is None or not 0 < seq <= session.seq or seq in session.acked:
            return
        session.acked.add(seq)
        with contextlib.suppress(AuditError):
            self.audit.write("rotated", peer=state.peer, peer_fp=state.fp, lease=state.lease, seq=seq)
        for lease in session.superseded.pop(seq, []):
            self.dynamic.retire(state, lease, f"replaced by a new one the consumer confirmed (change {seq})")

    def release(self, state: LeaseState) -> None:
        """The session is over; its dynamic leases (old and new) are DynamicLeases.release's."""
        self._sessions.pop(state.lease, None)

    # ---- the loop ----

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception as exc:  # a bug must not stop the watching for good, nor show a value
                print(f"runwrap: internal error in the watcher ({type(exc).__name__}); it goes on",
                      file=sys.stderr, flush=True)

    async def tick(self) -> None:
        """Look every watched query up once and push what changed, session by session."""
        groups: dict[str, list[tuple[_Session, _Served]]] = {}
        for session in list(self._sessions.values()):
            if not session.watch or session.state.ended:
                continue
            for served in session.served.values():
                if served.lease is None:
                    groups.setdefault(_key_of(served.query), []).append((session, served))
        if not groups:
            return
        gate = asyncio.Semaphore(PARALLEL)
        results = await asyncio.gather(*(self._check(key, entries, gate) for key, entries in groups.items()))
        changes: dict[str, list[_Change]] = {}
        items: list[Item] = []
        for key, result in zip(groups, results, strict=True):
            if result is None:
                continue
            signal, item = result
            items.append(item)
            changed, bumped = False, 0
            for session, served in groups[key]:
                digest = self._digest(item, served.fields)
                if digest == served.refused:  # still the values that could not be sent: said once already
                    continue
                if digest != served.digest:
                    changes.setdefault(session.state.lease, []).append(_Change(served, item, digest, signal))
                    changed = True
                    continue
                served.signal = signal
                if served.credential_id != item.credential_id:  # `path@2` after `path@1`: a version
                    served.credential_id = item.credential_id
                    bumped += 1
            if bumped and not changed:
                with contextlib.suppress(AuditError):
                    self.audit.write("watch_unchanged", query=groups[key][0][1].query.to_wire(), leases=bumped,
                                     credential_id=item.credential_id, decision="unchanged",
                                     reason="a new version with the same data; nothing is pushed")
        try:
            if changes:
                with contextlib.suppress(RunwrapError):
                    self.refresh()
            for lease, changed_items in changes.items():
                current = self._sessions.get(lease)
                if current is not None:
                    self._push(current, changed_items, "changed")
        finally:
            for item in items:
                item.wipe()

    async def _check(self, key: str, entries: list[tuple[_Session, _Served]],
                     gate: asyncio.Semaphore) -> tuple[str | None, Item] | None:
        """The item for one query if it may have changed (with the provider's signal), else None."""
        query = entries[0][1].query
        known = {served.signal for _, served in entries}
        async with gate:
            try:
                signal, item = await asyncio.get_running_loop().run_in_executor(
                    None, self._look, query, entries[0][1].credential_id, known)
            except Exception as exc:
                why = (str(exc) if isinstance(exc, RunwrapError)
                       else f"the provider failed ({type(exc).__name__})")
                if self._failed.get(key) != why:  # once, until it works again
                    self._failed[key] = why
                    with contextlib.suppress(AuditError):
                        self.audit.write("watch_failed", query=query.to_wire(), leases=len(entries),
                                         decision="not_found" if isinstance(exc, NotFound) else "error",
                                         reason=f"{why}; the children keep what they were given")
                return None
        self._failed.pop(key, None)
        if item is None:
            for _, served in entries:
                served.signal = signal
            return None
        if item.lease is not None:  # a query that now mints dynamic secrets: nobody may use this one
            lease = item.lease
            self._spawn(self._drop(lease))
            item.wipe()
            return None
        return signal, item

    def _look(self, query: Query, credential_id: str, known: set[str | None]) -> tuple[str | None, Item | None]:
        """In a worker thread: the signal, and the item unless the signal says nothing changed."""
        try:
            signal = self.provider.change_signal(query, credential_id)
        except Exception:
            signal = None  # a signal is an optimisation: without one, look the item up
        if signal is not None and known == {signal}:
            return signal, None
        return signal, self.provider.lookup(query)

    async def _drop(self, lease: Lease) -> None:
        with contextlib.suppress(Exception):
            await asyncio.get_running_loop().run_in_executor(None, self.provider.revoke_lease, lease)
        lease.wipe()

    # ---- dynamic secrets at their max TTL ----

    def exhausted(self, state: LeaseState, lease: Lease) -> bool:
        """DynamicLeases: `lease` can be renewed no further. True when a watched session takes a new
        one (pushed as max_ttl); False to end the consumer's lease as without rotation."""
        session = self._sessions.get(state.lease)
        if session is None or not session.watch or state.ended:
            return False
        served = next((s for s in session.served.values() if s.lease is lease), None)
        if served is None:
            return False
        self._spawn(self._replace(session, served, lease))
        return True

    async def _replace(self, session: _Session, served: _Served, old: Lease) -> None:
        state = session.state
        verdict = self.decide(state, served.query)
        if not verdict.allowed:
            self.end_lease(state, verdict.reason)
            return
        try:
            item = await asyncio.get_running_loop().run_in_executor(None, self.provider.lookup, served.query)
        except Exception as exc:
            why = str(exc) if isinstance(exc, RunwrapError) else type(exc).__name__
            self.end_lease(state, f"the dynamic secret from {old.path} can be renewed no further and a new one "
                                  f"could not be read ({why})")
            return
        try:
            if item.lease is None or state.ended:
                if item.lease is not None:
                    self._spawn(self._drop(item.lease))
                if not state.ended:
                    self.end_lease(state, f"the dynamic secret from {old.path} can be renewed no further")
                return
            new = item.lease
            self.dynamic.keep(state, new)
            served.lease = new
            if not self._push(session, [_Change(served, item, self._digest(item, served.fields), None)], "max_ttl"):
                self.end_lease(state, f"the dynamic secret from {old.path} can be renewed no further and "
                                      "its replacement could not be sent")
                return
            session.superseded.setdefault(session.seq, []).append(old)
        finally:
            item.wipe()

    # ---- pushing ----

    def _push(self, session: _Session, changed: list[_Change], reason: str) -> bool:
        """One CHANGED with every item in `changed`, if the policy still allows each; True if sent."""
        state = session.state
        if state.ended or state.writer.is_closing():
            return False  # the consumer is gone: its session's own task ends and records the lease
        for change in changed:
            verdict = self.decide(state, change.served.query)
            if verdict.decision == "error":  # the audit log is down: nothing leaves; try again next tick
                return False
            if not verdict.allowed:
                self.end_lease(state, verdict.reason)
                return False
        blobs: dict[str, Secret] = {}
        listed: list[dict[str, Any]] = []
        try:
            for change in changed:
                served, item = change.served, change.item
                values = item.values(served.fields)
                blobs.update({f"{served.index}/{name}": value for name, value in values.items()})
                available = item.field_names() if set(served.fields) - set(values) else None
                listed.append({"request": served.index, "reason": reason,
                               "ttl": item.lease.duration if item.lease is not None else None,
                               "available": available})
            plaintext = messages.encode({"type": messages.CHANGED, "seq": session.seq + 1, "items": listed}, blobs)
            try:  # over ~64 KB it goes in parts, as a first answer does (messages.PARTS)
                frames = messages.seal(plaintext, state.session.encrypt, noise_session.MAX_PLAINTEXT)
            except ProtocolError:  # over MAX_ANSWER: the first answer was refused the same way
                for change in changed:
                    change.served.refused = change.digest
                with contextlib.suppress(AuditError):
                    self.audit.write("watch_failed", peer=state.peer, peer_fp=state.fp, lease=state.lease,
                                     items=[str(c.served.query) for c in changed], decision="error",
                                     reason=f"the new values are over {messages.MAX_ANSWER} bytes; "
                                            "the children keep what they were given")
                return False
            finally:
                wipe_bytes(plaintext)
            try:
                self.audit.write("changed", peer=state.peer, peer_fp=state.fp, lease=state.lease,
                                 items=[str(c.served.query) for c in changed], reason=reason,
                                 seq=session.seq + 1)
            except AuditError:
                return False
            session.seq += 1
            for frame in frames:
                state.writer.write(framing.encode(frame))
        finally:
            for value in blobs.values():
                value.wipe()
        for change in changed:
            change.served.digest = change.digest
            change.served.credential_id = change.item.credential_id
            change.served.signal = change.signal
        return True

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _digest(self, item: Item, fields: Iterable[str]) -> bytes:
        """Keyed BLAKE2b over the named fields' stored values: equal iff (but for 2^-256) the same data."""
        h = hashlib.blake2b(key=self._key, digest_size=32)
        for name in fields:
            raw = _stored(item, name)
            h.update(name.encode() + b"\0")
            if raw is None:
                h.update(b"-")
                continue
            h.update(len(raw).to_bytes(8, "big"))
            h.update(raw)
        return h.digest()


def _stored(item: Item, name: str) -> bytes | bytearray | None:
    """A field's stored value as bytes to digest (the TOTP seed, not its code: codes change every 30 s)."""
    value = item.standard(name) if name in ("username", "password", "totp", "uri", "notes", "domain",
                                            "credential_id") else item.extra.get(name)
    if value is None:
        return None
    return value.buffer if isinstance(value, Secret) else value.encode()


def _key_of(query: Query) -> str:
    return json.dumps(query.to_wire(), sort_keys=True)
