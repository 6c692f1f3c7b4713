"""Pair mode: the listener's side of pairing, where a one-time code becomes a peer.

The code format and the PAKE are runwrap.wire.pairing's, the table of open invites is the shared
state's (runwrap.listener.state.Invites, since control issues them); here each invite is burned on
first use, and pairings may fail only so fast, so a code can be guessed once per invite and a few
times a minute at most (docs/protocol.md, "Pairing").
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runwrap.errors import ProtocolError
from runwrap.listener.audit import AuditError
from runwrap.listener.peers import Peers
from runwrap.listener.state import AuditTrail, Handshaking, Invites, Keys, reject
from runwrap.wire import framing, messages, noise_session, pairing
from runwrap.wire.identity import fingerprint

if TYPE_CHECKING:
    import asyncio

PAIR_FAILURES_PER_MINUTE = 5


@dataclass(kw_only=True, repr=False, eq=False)
class Pairing:
    """Serves pair connections; wired by runwrap.listener.server to what it uses, and no more."""

    keys: Keys
    peers: Peers
    invites: Invites
    audit: AuditTrail
    handshaking: Handshaking
    out: Callable[[str], None]  # the listener's own output: who paired
    failures: list[float] = field(default_factory=list, init=False)  # when pairings failed, for the limit

    async def pair(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   deadline: float | None = None) -> None:
        """SPAKE2 -> Noise NNpsk0 -> IK bound to the NNpsk0 hash -> a new peer (docs/protocol.md).

        One attempt per code: the invite is taken out of the table before the first await after it is
        found, so it is burned whatever happens next, and two connections can never both use it.
        Every way a pairing can fail after the hello is read counts against the rate limit and is
        audited as `pair_failed`.
        """
        log = self.audit.write
        first = await framing.read_frame(reader, timeout=framing.HANDSHAKE_TIMEOUT, deadline=deadline,
                                         max_len=framing.MAX_HANDSHAKE_FRAME)
        now = time.monotonic()
        self.failures = [t for t in self.failures if now - t < 60]
        if len(self.failures) >= PAIR_FAILURES_PER_MINUTE:
            log("pair_failed", decision="rate_limited", reason="too many failed pairings; wait a minute")
            await reject(writer, "rate_limited", "too many failed pairings on this listener; "
                         "wait a minute and ask for a fresh invite")
            return
        try:
            hello = json.loads(first)
            nameplate, consumer_msg = hello["nameplate"], bytes.fromhex(hello["msg"])
            if not isinstance(nameplate, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self.failures.append(now)
            log("pair_failed", decision="denied", reason="malformed pairing hello")
            raise ProtocolError("malformed pairing hello") from None
        invite = self.invites.take(nameplate)
        if invite is None or invite.expires_at <= time.time():
            self.failures.append(now)
            log("pair_failed", decision="denied", reason="no such invite, or it expired")
            await reject(writer, "pairing_failed", "that pairing code is unknown, used or expired; "
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
                await reject(writer, "pairing_failed", "wrong pairing code; ask for a fresh `runwrap invite`")
                raise
            stage = "the consumer did not prove its key; the invite is burned"
            # The listener's static key travels encrypted under the code-derived PSK (message 2) ...
            writer.write(framing.encode(framing.ACCEPT + handshake.write(self.keys.public),
                                        framing.MAX_HANDSHAKE_FRAME))
            await writer.drain()
            # ... and an IK run whose prologue is this pairing's handshake hash proves both static
            # keys: only the two ends of this NNpsk0 run know that hash.
            confirm = noise_session.responder_confirm(self.keys.private, handshake.handshake_hash)
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
            self.failures.append(now)
            with contextlib.suppress(AuditError):
                log("pair_failed", decision="denied", reason=stage)
            raise ProtocolError(str(exc)) from None
        name = self._unique_name(invite.name or proposed, consumer_key)
        log("pair", peer=name, peer_fp=fingerprint(consumer_key), decision="allowed",
            reason=f"scope {' '.join(invite.scope)}")
        existing = self.peers.by_key(consumer_key)
        if existing is not None and existing.name != name:
            del self.peers.by_name[existing.name]
        self.peers.add(name, consumer_key, invite.scope)
        self.handshaking.done(writer)
        reply = messages.encode({"type": "paired", "name": name, "scope": invite.scope})
        writer.write(framing.encode(session.encrypt(reply)))
        await writer.drain()
        self.out(f"runwrap: paired with {name} ({fingerprint(consumer_key)}), scope {' '.join(invite.scope)}")

    def _unique_name(self, wanted: str, key: bytes) -> str:
        base = "".join(c if c.isalnum() or c in "-_." else "-" for c in wanted)[:64] or "consumer"
        name, n = base, 1
        while name in self.peers.by_name and self.peers.by_name[name].public != key.hex():
            n += 1
            name = f"{base}-{n}"
        return name
