"""The cacophony test vectors for the two patterns runwrap uses, run against the noiseprotocol package
and through runwrap's own layer (noise_session.Handshake/Session and framing over a real socket)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from noise.connection import Keypair, NoiseConnection

from runwrap.wire import framing, noise_session

pytestmark = pytest.mark.filterwarnings("ignore:One of ephemeral keypairs:UserWarning")

VECTORS = json.loads((Path(__file__).parent / "vectors" / "cacophony_runwrap.json").read_text())["vectors"]
HANDSHAKE_MESSAGES = 2  # IK and NNpsk0 are both one round trip


def h(text: str | None) -> bytes | None:
    return bytes.fromhex(text) if text is not None else None


def test_the_vectors_cover_exactly_runwrap_s_patterns() -> None:
    assert sorted(v["protocol_name"].encode() for v in VECTORS) == sorted([noise_session.IK, noise_session.NNPSK0])


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["protocol_name"])
def test_noiseprotocol_reproduces_the_vector(vector: dict[str, Any]) -> None:
    sides = []
    for role in ("init", "resp"):
        conn = NoiseConnection.from_name(vector["protocol_name"].encode())
        conn.set_as_initiator() if role == "init" else conn.set_as_responder()
        conn.set_prologue(h(vector[f"{role}_prologue"]))
        if f"{role}_static" in vector:
            conn.set_keypair_from_private_bytes(Keypair.STATIC, h(vector[f"{role}_static"]))
        if f"{role}_remote_static" in vector:
            conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, h(vector[f"{role}_remote_static"]))
        if f"{role}_psks" in vector:
            conn.set_psks(h(vector[f"{role}_psks"][0]))
        conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, h(vector[f"{role}_ephemeral"]))
        conn.start_handshake()
        sides.append(conn)
    for index, message in enumerate(vector["messages"]):
        sender, receiver = (sides[0], sides[1]) if index % 2 == 0 else (sides[1], sides[0])
        payload, ciphertext = h(message["payload"]), h(message["ciphertext"])
        if index < HANDSHAKE_MESSAGES:
            assert bytes(sender.write_message(payload)) == ciphertext
            assert bytes(receiver.read_message(ciphertext)) == payload
        else:
            assert bytes(sender.encrypt(payload)) == ciphertext
            assert bytes(receiver.decrypt(ciphertext)) == payload
        if index == HANDSHAKE_MESSAGES - 1:
            assert sides[0].get_handshake_hash() == sides[1].get_handshake_hash() == h(vector["handshake_hash"])


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["protocol_name"])
def test_runwrap_s_wrapper_and_framing_reproduce_the_vector(vector: dict[str, Any]) -> None:
    handshakes = [
        noise_session.Handshake(
            vector["protocol_name"].encode(), initiator=role == "init", prologue=h(vector[f"{role}_prologue"]) or b"",
            static_private=h(vector.get(f"{role}_static")), remote_static=h(vector.get(f"{role}_remote_static")),
            psk=h(vector[f"{role}_psks"][0]) if f"{role}_psks" in vector else None,
            ephemeral_private=h(vector[f"{role}_ephemeral"]))
        for role in ("init", "resp")
    ]
    left, right = socket.socketpair()
    ends = [left, right]
    sessions: list[noise_session.Session] = []
    with left, right:
        for index, message in enumerate(vector["messages"]):
            me, peer = (0, 1) if index % 2 == 0 else (1, 0)
            payload, ciphertext = h(message["payload"]), h(message["ciphertext"])
            if index < HANDSHAKE_MESSAGES:
                sent = handshakes[me].write(payload)
            else:
                sent = sessions[me].encrypt(payload)
            assert sent == ciphertext
            framing.send_frame(ends[me], sent)
            received = framing.recv_frame(ends[peer], deadline=time.monotonic() + 5)
            assert received == ciphertext
            if index < HANDSHAKE_MESSAGES:
                assert handshakes[peer].read(received) == payload
            else:
                assert sessions[peer].decrypt(received) == payload
            if index == HANDSHAKE_MESSAGES - 1:
                sessions = [hs.session() for hs in handshakes]
                assert sessions[0].handshake_hash == sessions[1].handshake_hash == h(vector["handshake_hash"])
    if vector["protocol_name"].encode() == noise_session.IK:
        # The responder learns the initiator's static key from message 1, as the listener's peer lookup needs.
        assert sessions[1].remote_static == noise_session.public_key(h(vector["init_static"]))


def test_a_changed_vector_byte_is_refused_by_the_wrapper() -> None:
    """The check above can fail: one flipped bit in message 1 of each vector is refused."""
    for vector in VECTORS:
        responder = noise_session.Handshake(
            vector["protocol_name"].encode(), initiator=False, prologue=h(vector["resp_prologue"]) or b"",
            static_private=h(vector.get("resp_static")),
            psk=h(vector["resp_psks"][0]) if "resp_psks" in vector else None,
            ephemeral_private=h(vector["resp_ephemeral"]))
        tampered = bytearray(h(vector["messages"][0]["ciphertext"]) or b"")
        tampered[-1] ^= 1
        with pytest.raises(noise_session.ProtocolError):
            responder.read(bytes(tampered))
