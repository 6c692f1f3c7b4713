"""Control mode: the listener's owner manages a running listener over its local socket.

Plain JSON, one request and one reply per connection: `invite`, `revoke`, `scope`, `status`. It
needs no Noise: only the Unix socket accepts it, and the kernel vouches that the caller runs under
the listener's own uid (SO_PEERCRED, checked in runwrap.listener.server).
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from runwrap.errors import ProtocolError, RunwrapError
from runwrap.listener import policy
from runwrap.listener.audit import AuditError
from runwrap.listener.invites import DEFAULT_INVITE_TTL
from runwrap.listener.peers import Peer, peer_fp
from runwrap.listener.sessions import end_lease
from runwrap.wire import framing

if TYPE_CHECKING:
    import asyncio

    from runwrap.listener.server import Listener


async def serve(listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    frame = await framing.read_frame(reader, timeout=framing.HANDSHAKE_TIMEOUT)
    try:
        request = json.loads(frame)
        op = request["op"]
    except (ValueError, KeyError, TypeError):
        raise ProtocolError("malformed control request") from None
    try:
        reply = _control_op(listener, op, request)
    except (RunwrapError, ValueError) as exc:
        reply = {"ok": False, "error": str(exc)}
    except (KeyError, TypeError) as exc:
        reply = {"ok": False, "error": f"malformed control request ({type(exc).__name__}: {exc})"}
    writer.write(framing.encode(json.dumps(reply).encode()))
    await writer.drain()


def _control_op(listener: Listener, op: str, request: dict[str, Any]) -> dict[str, Any]:
    if op == "invite":
        ttl = float(request.get("ttl") or DEFAULT_INVITE_TTL)
        invite = listener.invite(request.get("name"), list(request.get("scope") or []), ttl)
        return {"ok": True, "code": invite.code, "address": listener.address, "expires_at": invite.expires_rfc3339}
    if op == "revoke":
        return {"ok": True, "ended": revoke(listener, str(request["name"]))}
    if op == "scope":
        peer = _peer(listener, str(request["name"]))
        scope = [policy.check_pattern(str(p)) for p in request.get("scope") or []]
        if not scope:
            raise ValueError("name at least one scope pattern (to refuse everything, revoke the peer)")
        old, peer.scope = peer.scope, scope
        listener.peers.save()  # the next request, on any session of this peer, sees the new scope
        with contextlib.suppress(AuditError):  # requests are refused anyway while the log is broken
            listener.log("scope", peer=peer.name, peer_fp=peer_fp(peer), decision="allowed",
                         reason=f"scope {' '.join(old)} -> {' '.join(scope)}")
        return {"ok": True, "scope": peer.scope}
    if op == "status":
        return {"ok": True, "address": listener.address, "provider": listener.options.provider_name,
                "leases": {name: len(v) for name, v in listener.leases.items() if v}}
    raise ValueError(f"unknown control operation {op!r}")


def _peer(listener: Listener, name: str) -> Peer:
    peer = listener.peers.by_name.get(name)
    if peer is None:
        known = ", ".join(sorted(listener.peers.by_name)) or "none"
        raise RunwrapError(f"no peer named {name!r} (peers: {known})")
    return peer


def revoke(listener: Listener, name: str) -> int:
    """Refuse the peer's key from now on and end every lease it holds; returns how many ended."""
    peer = _peer(listener, name)
    peer.revoked = True
    listener.peers.save()
    states = list(listener.leases.get(name, {}).values())
    # A broken audit log must not stop a revocation; the events are written if they can be.
    with contextlib.suppress(AuditError):
        listener.log("revoke", peer=name, peer_fp=peer_fp(peer), decision="revoked",
                     reason=f"peer revoked; ending {len(states)} open session(s)")
    for state in states:
        end_lease(listener, state, "peer revoked")
    return len(states)
