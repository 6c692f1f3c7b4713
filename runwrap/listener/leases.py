"""Dynamic secrets kept for exactly as long as the consumer's lease that was served them.

An item that comes with an `Item.lease` (OpenBao's `database/creds/ROLE`) is handed to `DynamicLeases.keep`
under the session that asked for it. From then on the listener renews it at two thirds of each grant,
asking for the duration its read gave, and revokes it when that session's lease ends: the child exited
(LEASE_END), the peer was revoked, `--max-lease` passed, the connection was lost, or the listener stops.
A renewal that fails, or that the server cuts short (LeaseExhausted: the role's max TTL), ends the
consumer's lease the way a revocation does, so no child runs on a credential about to die. A session
that is answered but never holds a lease (`runwrap connect`) leaves its credential to expire by its TTL.

Provider calls block (HTTP), so they run in the loop's executor. The audit log gets the engine path,
durations, each renewal and the revocation with its reason; never a lease id (runwrap.credential.Lease).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from runwrap.credential import Lease
from runwrap.errors import LeaseExhausted, RunwrapError
from runwrap.listener.audit import AuditError
from runwrap.listener.state import AuditTrail, LeaseState
from runwrap.providers.base import Provider

RENEW_AT = 2 / 3  # of each grant: room for a slow server and one retry of the request
MIN_RENEW_WAIT = 0.5  # seconds; a lease of a second or two is still renewed, not hammered
STOP_TIMEOUT = 15.0  # seconds the listener gives its revocations at shutdown, all together


@dataclass(eq=False)
class _Held:
    """One dynamic lease under one session, with the task that renews it."""

    lease: Lease
    session: LeaseState
    renewer: asyncio.Task[None] | None = None
    renewals: int = 0


@dataclass(kw_only=True, eq=False)
class DynamicLeases:
    """The dynamic leases of every open session; `end_lease` stops a session's consumer (Sessions.end_lease)."""

    provider: Provider
    audit: AuditTrail
    end_lease: Callable[[LeaseState, str], None]
    _held: dict[str, list[_Held]] = field(default_factory=dict, init=False)  # session lease -> its leases
    _revoking: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def keep(self, session: LeaseState, lease: Lease) -> None:
        """Take charge of `lease`, just served under `session`: audit it and start renewing it."""
        held = _Held(lease, session)
        self._held.setdefault(session.lease, []).append(held)
        self._write("dynamic_lease", session, lease, duration_s=lease.duration, renewable=lease.renewable)
        if lease.renewable and lease.duration > 0:
            held.renewer = asyncio.get_running_loop().create_task(self._renew(held, lease.duration))

    def count(self) -> int:
        return sum(len(held) for held in self._held.values())

    def release(self, session: LeaseState) -> None:
        """The session is over: revoke what it held (in the background), or leave it to its TTL if the
        consumer never held a lease (`runwrap connect` prints the credential for later use)."""
        if session.end_reason:
            reason = f"ended by the listener: {session.end_reason}"
        elif session.held:
            reason = "the child exited" if session.ended else "the consumer's connection was lost"
        else:
            reason = None
        for held in self._held.pop(session.lease, []):
            if held.renewer is not None:
                held.renewer.cancel()
            if reason is None:
                self._write("dynamic_left", session, held.lease, reason="the consumer never held a lease; "
                            "the credential expires by its TTL")
                held.lease.wipe()
                continue
            self._start_revoke(held, reason)

    def drop(self, session: LeaseState, lease: Lease, reason: str) -> None:
        """A dynamic secret read but not served (the peer was revoked meanwhile): revoke it at once."""
        self._write("dynamic_lease", session, lease, duration_s=lease.duration, renewable=lease.renewable)
        self._start_revoke(_Held(lease, session), reason)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """The listener stops: stop the children whose credentials are about to die (as a revocation
        does), and revoke every dynamic lease still held, waiting at most `timeout` seconds."""
        for session_lease in list(self._held):
            for held in self._held.pop(session_lease):
                if held.session.held:
                    self.end_lease(held.session, "the listener stopped")
                if held.renewer is not None:
                    held.renewer.cancel()
                self._start_revoke(held, "the listener stopped")
        if self._revoking:
            await asyncio.wait(list(self._revoking), timeout=timeout)

    def _start_revoke(self, held: _Held, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(self._revoke(held, reason))
        self._revoking.add(task)
        task.add_done_callback(self._revoking.discard)

    async def _renew(self, held: _Held, granted: float) -> None:
        lease, loop = held.lease, asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(MIN_RENEW_WAIT, granted * RENEW_AT))
            try:
                granted = await loop.run_in_executor(None, self.provider.renew_lease, lease, lease.duration)
            except LeaseExhausted as exc:
                why = f"the dynamic secret from {lease.path} can be renewed no further ({exc})"
                self._write("dynamic_renew", held.session, lease, decision="exhausted", reason=str(exc),
                            granted_s=exc.remaining)
                self.end_lease(held.session, why)
                return
            except RunwrapError as exc:
                self._write("dynamic_renew", held.session, lease, decision="error", reason=str(exc))
                self.end_lease(held.session, f"the dynamic secret from {lease.path} could not be renewed ({exc})")
                return
            except Exception as exc:  # a provider bug: stop the child rather than let its credential die
                name = type(exc).__name__
                self._write("dynamic_renew", held.session, lease, decision="error", reason=f"provider failed: {name}")
                self.end_lease(held.session, f"the dynamic secret from {lease.path} could not be renewed ({name})")
                return
            held.renewals += 1
            self._write("dynamic_renew", held.session, lease, decision="renewed", granted_s=granted,
                        renewals=held.renewals)

    async def _revoke(self, held: _Held, reason: str) -> None:
        lease = held.lease
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.provider.revoke_lease, lease)
        except Exception as exc:
            why = str(exc) if isinstance(exc, RunwrapError) else f"provider failed: {type(exc).__name__}"
            self._write("dynamic_revoke", held.session, lease, decision="error", reason=reason, error=why,
                        renewals=held.renewals)
        else:
            self._write("dynamic_revoke", held.session, lease, decision="revoked", reason=reason,
                        renewals=held.renewals)
        finally:
            lease.wipe()

    def _write(self, event: str, session: LeaseState, lease: Lease, **fields: object) -> None:
        # Renewals and revocations go on whatever the log's state: a broken log keeps them (audit.KEPT).
        with contextlib.suppress(AuditError):
            self.audit.write(event, peer=session.peer, peer_fp=session.fp, lease=session.lease,
                             engine_path=lease.path, **fields)
