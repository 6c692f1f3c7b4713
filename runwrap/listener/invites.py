"""Invites and pair mode: the listener's side of pairing, where a one-time code becomes a peer.

The code format and the PAKE are runwrap.wire.pairing's; here the listener keeps its table of open
invites, burns each one on first use, and limits how fast pairings may fail, so a code can be
guessed once per invite and a few times a minute at most (docs/protocol.md, "Pairing").
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runwrap.errors import ProtocolError
from runwrap.listener import policy
from runwrap.listener.audit import AuditError
from runwrap.store import fingerprint
from runwrap.wire import framing, messages, noise_session, pairing

if TYPE_CHECKING:
    import asyncio

    from runwrap.listener.server import Listener

PAIR_FAILURES_PER_MINUTE = 5
DEFAULT_INVITE_TTL = 300.0


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


def issue(invites: dict[str, Invite], name: str | None, scope: list[str], ttl: float) -> Invite:
    """A new invite with a nameplate no open invite uses, added to `invites`; expired ones go."""
    now = time.time()
    for key in [k for k, inv in invites.items() if inv.expires_at <= now]:
        del invites[key]
    scope = [policy.check_pattern(p) for p in scope] or ["*"]
    while True:
        nameplate, code = pairing.new_code()
        if nameplate not in invites:
            break
    invite = Invite(nameplate, code, name, scope, now + ttl)
    invites[nameplate] = invite
    return invite


async def pair(listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               deadline: float | None = None) -> None:
    """SPAKE2 -> Noise NNpsk0 -> IK bound to the NNpsk0 hash -> a new peer (docs/protocol.md).

    One attempt per code: the invite is taken out of the table before the first await after it is
    found, so it is burned whatever happens next, and two connections can never both use it.
    Every way a pairing can fail after the hello is read counts against the rate limit and is
    audited as `pair_failed`.
    """
    first = await framing.read_frame(reader, timeout=framing.HANDSHAKE_TIMEOUT, deadline=deadline,
                                     max_len=framing.MAX_HANDSHAKE_FRAME)
    now = time.monotonic()
    listener.pair_failures = [t for t in listener.pair_failures if now - t < 60]
    if len(listener.pair_failures) >= PAIR_FAILURES_PER_MINUTE:
        listener.log("pair_failed", decision="rate_limited", reason="too many failed pairings; wait a minute")
        await listener.reject(writer, "rate_limited", "too many failed pairings on this listener; "
                              "wait a minute and ask for a fresh invite")
        return
    try:
        hello = json.loads(first)
        nameplate, consumer_msg = hello["nameplate"], bytes.fromhex(hello["msg"])
        if not isinstance(nameplate, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        listener.pair_failures.append(now)
        listener.log("pair_failed", decision="denied", reason="malformed pairing hello")
        raise ProtocolError("malformed pairing hello") from None
    invite = listener.invites.pop(nameplate, None)
    if invite is None or invite.expires_at <= time.time():
        listener.pair_failures.append(now)
        listener.log("pair_failed", decision="denied", reason="no such invite, or it expired")
        await listener.reject(writer, "pairing_failed", "that pairing code is unknown, used or expired; "
                              "ask for a fresh `runwrap invite`")
        return
    stage = "the consumer's PAKE message is malformed; the invite is burned"
    try:
        pake = pairing.Pake(invite.code, listener=True)
        transcript = pairing.transcript(nameplate, consumer_msg, pake.message)
        psk = pake.finish(consumer_msg, transcript)
        writer.write(framing.encode(framing.ACCEPT + pake.message, framing.MAX_HANDSHAKE_FRAME))
        await writer.drain()
        stage = "the consumer left before proving the code; the invite is burned"
        handshake = noise_session.responder_pair(psk, transcript)
        message1 = await framing.read_frame(reader, timeout=framing.HANDSHAKE_TIMEOUT, deadline=deadline,
                                            max_len=framing.MAX_HANDSHAKE_FRAME)
        try:
            handshake.read(message1)
        except ProtocolError:
            stage = "wrong pairing code; the invite is burned"
            await listener.reject(writer, "pairing_failed", "wrong pairing code; ask for a fresh `runwrap invite`")
            raise
        stage = "the consumer did not prove its key; the invite is burned"
        # The listener's static key travels encrypted under the code-derived PSK (message 2) ...
        writer.write(framing.encode(framing.ACCEPT + handshake.write(listener.public), framing.MAX_HANDSHAKE_FRAME))
        await writer.drain()
        # ... and an IK run whose prologue is this pairing's handshake hash proves both static
        # keys: only the two ends of this NNpsk0 run know that hash.
        confirm = noise_session.responder_confirm(listener.private, handshake.handshake_hash)
        ik1 = await framing.read_frame(reader, timeout=framing.HANDSHAKE_TIMEOUT, deadline=deadline,
                                       max_len=framing.MAX_HANDSHAKE_FRAME)
        if confirm.read(ik1):
            raise ProtocolError("the confirmation message carried a payload")
        consumer_key = confirm.remote_static or b""
        writer.write(framing.encode(framing.ACCEPT + confirm.write(), framing.MAX_HANDSHAKE_FRAME))
        await writer.drain()
        session = confirm.session()
        frame = await framing.read_frame(reader, timeout=framing.HANDSHAKE_TIMEOUT, deadline=deadline,
                                         max_len=framing.MAX_HANDSHAKE_FRAME)
        header, _ = messages.decode(session.decrypt(frame))
        if header.get("type") != "pair" or len(consumer_key) != noise_session.KEY_LEN:
            raise ProtocolError("malformed pairing identity")
        proposed = str(header.get("name") or "consumer")
    except (ProtocolError, OSError) as exc:
        listener.pair_failures.append(now)
        with contextlib.suppress(AuditError):
            listener.log("pair_failed", decision="denied", reason=stage)
        raise ProtocolError(str(exc)) from None
    name = _unique_name(listener, invite.name or proposed, consumer_key)
    listener.log("pair", peer=name, peer_fp=fingerprint(consumer_key), decision="allowed",
                 reason=f"scope {' '.join(invite.scope)}")
    existing = listener.peers.by_key(consumer_key)
    if existing is not None and existing.name != name:
        del listener.peers.by_name[existing.name]
    listener.peers.add(name, consumer_key, invite.scope)
    getattr(listener, "handshaking", {}).pop(writer, None)
    reply = messages.encode({"type": "paired", "name": name, "scope": invite.scope})
    writer.write(framing.encode(session.encrypt(reply)))
    await writer.drain()
    listener.out(f"runwrap: paired with {name} ({fingerprint(consumer_key)}), scope {' '.join(invite.scope)}")


def _unique_name(listener: Listener, wanted: str, key: bytes) -> str:
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in wanted)[:64] or "consumer"
    name, n = base, 1
    while name in listener.peers.by_name and listener.peers.by_name[name].public != key.hex():
        n += 1
        name = f"{base}-{n}"
    return name
