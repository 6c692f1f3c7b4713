"""The consumer's side of pairing: a one-time code from `runwrap invite` becomes a pinned listener key.

SPAKE2 on the code -> PSK of Noise_NNpsk0 (the listener's static key in its message 2) -> an IK run
bound to that handshake's hash, which proves both static keys -> names exchanged inside it
(docs/protocol.md, "Pairing"). Nothing is written on this side unless every step verified.
"""

from __future__ import annotations

import json
import socket
import time

from runwrap.consumer.client import CONNECT_TIMEOUT, KEEPALIVE
from runwrap.consumer.connections import Connection, Connections
from runwrap.errors import PairingFailed, ProtocolError
from runwrap.paths import Layout
from runwrap.wire import framing, messages, noise_session
from runwrap.wire.address import connect, host_of
from runwrap.wire.identity import load_or_create_identity

PAIR_TIMEOUT = 30.0


def pair(code: str, address: str, name: str | None, lay: Layout) -> Connection:
    """Pair with the listener at `address` using a one-time code; pins its key as a connection.

    SPAKE2 on the code -> PSK of Noise_NNpsk0 (the listener's static key in its message 2) -> an IK
    run bound to that handshake's hash, which proves both static keys -> names exchanged inside it.
    Nothing is written on this side unless every step verified (docs/protocol.md, "Pairing").
    """
    from runwrap.wire import pairing  # spake2 costs ~30 ms to import; only pairing needs it

    nameplate, code = pairing.parse_code(code)
    private = load_or_create_identity(lay.consumer_key)
    sock = connect(address, CONNECT_TIMEOUT, KEEPALIVE)
    try:
        deadline = time.monotonic() + PAIR_TIMEOUT
        pake = pairing.Pake(code, listener=False)
        sock.sendall(framing.preface(framing.MODE_PAIR))
        framing.send_frame(sock, json.dumps({"nameplate": nameplate, "msg": pake.message.hex()}).encode())
        listener_msg = _accepted(framing.recv_frame(sock, deadline=deadline, max_len=framing.MAX_HANDSHAKE_FRAME))
        transcript = pairing.transcript(nameplate, pake.message, listener_msg)
        handshake = noise_session.initiator_pair(pake.finish(listener_msg, transcript), transcript)
        framing.send_frame(sock, handshake.write())
        answer = _accepted(framing.recv_frame(sock, deadline=deadline, max_len=framing.MAX_HANDSHAKE_FRAME))
        try:
            listener_key = handshake.read(answer)
        except ProtocolError:
            raise PairingFailed("the other side does not know this code; it is not your listener") from None
        if len(listener_key) != noise_session.KEY_LEN:
            raise ProtocolError("the listener's pairing answer is malformed")
        confirm = noise_session.initiator_confirm(private, listener_key, handshake.handshake_hash)
        framing.send_frame(sock, confirm.write())
        answer = _accepted(framing.recv_frame(sock, deadline=deadline, max_len=framing.MAX_HANDSHAKE_FRAME))
        try:
            if confirm.read(answer):
                raise ProtocolError("unexpected payload")
        except ProtocolError:
            raise PairingFailed("the listener could not prove it holds the key it sent; nothing was pinned") from None
        session = confirm.session()
        proposed = name or socket.gethostname() or "consumer"
        framing.send_frame(sock, session.encrypt(messages.encode({"type": "pair", "name": proposed})))
        header, _ = messages.decode(session.decrypt(framing.recv_frame(sock, deadline=deadline)))
        if header.get("type") != "paired":
            raise ProtocolError("the listener's pairing answer is malformed")
    finally:
        sock.close()
    connections = Connections(lay.connections)
    conn_name = name or _connection_name(address, connections)
    return connections.add(conn_name, address, listener_key)


def _accepted(answer: bytes) -> bytes:
    """The body of a pairing answer that starts with ACCEPT; PairingFailed with the reason otherwise."""
    if answer[:1] == framing.REJECT:
        raise PairingFailed(f"pairing refused: {framing.reject_reason(answer)[1]}")
    if answer[:1] != framing.ACCEPT:
        raise ProtocolError("the listener's answer is not runwrap's protocol")
    return answer[1:]


def _connection_name(address: str, connections: Connections) -> str:
    for conn in connections.by_name.values():
        if conn.address == address:
            return conn.name
    host = host_of(address)
    base = "".join(c if c.isalnum() or c in ".-" else "-" for c in host).strip("-") if host else "local"
    base = base or "tcp"
    name, n = base, 1
    while name in connections.by_name:
        n += 1
        name = f"{base}-{n}"
    return name
