"""Control mode: the listener's owner manages a running listener over its local socket.

Plain JSON, one request and one reply per connection: `invite`, `revoke`, `scope`, `status`. It
needs no Noise: only the Unix socket accepts it, and the kernel vouches that the caller runs under
the listener's own uid (SO_PEERCRED, checked in runwrap.listener.server).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runwrap.errors import ProtocolError, RunwrapError
from runwrap.listener import policy
from runwrap.listener.audit import AuditError
from runwrap.listener.peers import Peer, Peers, peer_fp
from runwrap.listener.state import DEFAULT_INVITE_TTL, AuditTrail, Invites, Leases, LeaseState
from runwrap.wire import framing

if TYPE_CHECKING:
    import asyncio


@dataclass(kw_only=True, repr=False, eq=False)
class Control:
    """Serves control connections; wired by runwrap.listener.server to what it uses, and no more."""

    peers: Peers
    audit: AuditTrail
    leases: Leases
    invites: Invites
    end_lease: Callable[[LeaseState, str], None]  # the sessions' own: it speaks their Noise session
    address: Callable[[], str]  # asked each time: a TCP port 0 is known only once the listener is bound
    provider_name: str

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frame = await framing.read_frame(reader, timeout=framing.HANDSHAKE_TIMEOUT)
        try:
            request = json.loads(frame)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            raise ProtocolError("malformed control request") from None
        try:
            reply = self._op(op, request)
        except (RunwrapError, ValueError) as exc:
            reply = {"ok": False, "error": str(exc)}
        except (KeyError, TypeError) as exc:
            reply = {"ok": False, "error": f"malformed control request ({type(exc).__name__}: {exc})"}
        writer.write(framing.encode(json.dumps(reply).encode()))
        await writer.drain()

    def _op(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        if op == "invite":
            ttl = float(request.get("ttl") or DEFAULT_INVITE_TTL)
            invite = self.invites.issue(request.get("name"), list(request.get("scope") or []), ttl)
            return {"ok": True, "code": invite.code, "address": self.address(),
                    "expires_at": invite.expires_rfc3339}
        if op == "revoke":
            return {"ok": True, "ended": self.revoke(str(request["name"]))}
        if op == "scope":
            peer = self._peer(str(request["name"]))
            scope = [policy.check_pattern(str(p)) for p in request.get("scope") or []]
            if not scope:
                raise ValueError("name at least one scope pattern (to refuse everything, revoke the peer)")
            old, peer.scope = peer.scope, scope
            self.peers.save()  # the next request, on any session of this peer, sees the new scope
            with contextlib.suppress(AuditError):  # requests are refused anyway while the log is broken
                self.audit.write("scope", peer=peer.name, peer_fp=peer_fp(peer), decision="allowed",
                                 reason=f"scope {' '.join(old)} -> {' '.join(scope)}")
            return {"ok": True, "scope": peer.scope}
        if op == "status":
            return {"ok": True, "address": self.address(), "provider": self.provider_name,
                    "leases": self.leases.counts(), "audit_log": str(self.audit.log.path)}
        raise ValueError(f"unknown control operation {op!r}")

    def _peer(self, name: str) -> Peer:
        peer = self.peers.by_name.get(name)
        if peer is None:
            known = ", ".join(sorted(self.peers.by_name)) or "none"
            raise RunwrapError(f"no peer named {name!r} (peers: {known})")
        return peer

    def revoke(self, name: str) -> int:
        """Refuse the peer's key from now on and end every lease it holds; returns how many ended."""
        peer = self._peer(name)
        peer.revoked = True
        self.peers.save()
        states = self.leases.of(name)
        # A broken audit log must not stop a revocation; the events are written if they can be.
        with contextlib.suppress(AuditError):
            self.audit.write("revoke", peer=name, peer_fp=peer_fp(peer), decision="revoked",
                             reason=f"peer revoked; ending {len(states)} open session(s)")
        for state in states:
            self.end_lease(state, "peer revoked")
        return len(states)
