"""Framing: lengths checked before anything is parsed, the 65,519-byte plaintext limit enforced by
runwrap before noiseprotocol sees a message, and the decoders' behaviour on arbitrary bytes."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from noise.connection import NoiseConnection

from runwrap.errors import PairingFailed, ProtocolError
from runwrap.secret import Secret
from runwrap.wire import framing, messages, noise_ik, noise_session
from runwrap.wire.pairing import parse_code


def session_pair() -> tuple[noise_ik.Session, noise_session.Session]:
    """The consumer's session (runwrap's initiator) and the listener's (noiseprotocol's responder)."""
    init_private, _ = noise_session.generate_keypair()
    resp_private, resp_public = noise_session.generate_keypair()
    initiator = noise_session.initiator_ik(init_private, resp_public)
    responder = noise_session.responder_ik(resp_private)
    responder.read(initiator.write())
    initiator.read(responder.write())
    return initiator.session(), responder.session()


def test_the_largest_plaintext_goes_through_the_wire() -> None:
    sender, receiver = session_pair()
    plaintext = bytes(range(256)) * 255 + bytes(range(239))
    assert len(plaintext) == noise_session.MAX_PLAINTEXT == 65519
    message = sender.encrypt(plaintext)
    assert len(message) == framing.MAX_FRAME == 65535
    left, right = socket.socketpair()
    with left, right:
        writer = __import__("threading").Thread(target=framing.send_frame, args=(left, message))
        writer.start()
        received = framing.recv_frame(right, deadline=time.monotonic() + 5)
        writer.join()
    assert receiver.decrypt(received) == plaintext


def test_one_byte_more_is_refused_before_noise_sees_it() -> None:
    sender, receiver = session_pair()
    with pytest.raises(ProtocolError, match="65520 > 65519"):
        sender.encrypt(bytes(65520))
    # Had the library encrypted it, its nonce would have moved on and this message would not verify.
    assert receiver.decrypt(sender.encrypt(b"next")) == b"next"


def test_why_the_limit_is_runwrap_s_job() -> None:
    """noiseprotocol itself encrypts 65,535 bytes into a 65,551-byte message no Noise peer may accept."""
    a = NoiseConnection.from_name(b"Noise_NN_25519_ChaChaPoly_BLAKE2s")
    b = NoiseConnection.from_name(b"Noise_NN_25519_ChaChaPoly_BLAKE2s")
    a.set_as_initiator(), b.set_as_responder()
    a.start_handshake(), b.start_handshake()
    b.read_message(a.write_message())
    a.read_message(b.write_message())
    assert len(a.encrypt(bytes(65535))) == 65551 > framing.MAX_FRAME
    with pytest.raises(ProtocolError):
        framing.encode(bytes(65551))


def test_a_message_whose_header_and_fields_do_not_fit_is_refused() -> None:
    sender, _ = session_pair()
    big = messages.encode({"type": messages.CREDENTIAL}, {"notes": Secret(b"x" * 65600)})
    with pytest.raises(ProtocolError, match="too large"):
        sender.encrypt(big)


def test_a_message_too_large_for_one_noise_message_goes_in_parts_and_joins_whole() -> None:
    sender, receiver = session_pair()
    value = bytes(range(256)) * 800  # 204,800 bytes: four transport messages after the `parts` header
    sealed = messages.seal(messages.encode({"type": messages.CREDENTIAL}, {"notes": Secret(value)}),
                           sender.encrypt, noise_session.MAX_PLAINTEXT)
    assert len(sealed) == 5 and all(len(m) <= framing.MAX_FRAME for m in sealed)
    plain = iter(receiver.decrypt(m) for m in sealed)
    header, _ = messages.decode(next(plain))
    head = b'{"type":"credential","blobs":{"notes":[0,204800]}}'
    assert header == {"type": messages.PARTS, "length": 2 + len(head) + 204_800}
    full, fields = messages.decode(messages.join(header["length"], lambda: next(plain)))
    assert full == {"type": messages.CREDENTIAL} and fields["notes"].buffer == value
    with pytest.raises(ProtocolError, match="too large"):
        messages.seal(bytes(messages.MAX_ANSWER + 1), sender.encrypt, noise_session.MAX_PLAINTEXT)


@pytest.mark.parametrize("length", [0, -1, True, "9", messages.MAX_ANSWER + 1])
def test_a_parts_header_with_a_length_runwrap_does_not_take_is_refused_before_reading(length: object) -> None:
    with pytest.raises(ProtocolError, match="announces a length"):
        messages.join(length, lambda: pytest.fail("read a piece"))


def test_parts_that_run_past_their_announced_length_are_refused() -> None:
    pieces = iter([b"a" * 10, b"b" * 10])
    with pytest.raises(ProtocolError, match="runs past"):
        messages.join(15, lambda: next(pieces))


@pytest.mark.parametrize("header", [b"\x00\x00", b"\xff\xff", struct.pack(">H", framing.MAX_HANDSHAKE_FRAME + 1)])
def test_a_bad_length_is_refused_before_the_body_is_read(header: bytes) -> None:
    async def read() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(header)  # no body and no EOF: waiting for it would hang until the timeout
        await framing.read_frame(reader, timeout=30, max_len=framing.MAX_HANDSHAKE_FRAME)

    start = time.monotonic()
    with pytest.raises(ProtocolError, match="outside"):
        asyncio.run(read())
    assert time.monotonic() - start < 1


def test_one_deadline_covers_header_and_body() -> None:
    async def trickle() -> float:
        reader = asyncio.StreamReader()

        async def drip() -> None:
            for byte in struct.pack(">H", 100) + bytes(50):
                reader.feed_data(bytes([byte]))
                await asyncio.sleep(0.01)

        task = asyncio.create_task(drip())
        start = time.monotonic()
        with pytest.raises(ProtocolError, match="timed out"):
            await framing.read_frame(reader, timeout=0.3)
        task.cancel()
        return time.monotonic() - start

    assert asyncio.run(trickle()) < 0.6


# ---- properties: whatever the bytes, only ProtocolError ----

async def _decode(data: bytes, eof: bool) -> list[bytes]:
    reader = asyncio.StreamReader(limit=framing.MAX_FRAME + 16)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    frames = []
    try:
        await framing.read_preface(reader, 0.01)
        while True:
            frames.append(await framing.read_frame(reader, timeout=0.01, max_len=framing.MAX_HANDSHAKE_FRAME))
    except ProtocolError:
        return frames


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=3000),
                 st.builds(lambda mode, rest: framing.preface(mode) + rest,
                           st.sampled_from([framing.MODE_SESSION, framing.MODE_PAIR, b"X"]), st.binary(max_size=3000))),
       st.booleans())
def test_the_frame_decoder_only_ever_raises_protocol_error(data: bytes, eof: bool) -> None:
    frames = asyncio.run(_decode(data, eof))
    assert all(0 < len(f) <= framing.MAX_HANDSHAKE_FRAME for f in frames)
    assert sum(len(f) + 2 for f in frames) <= len(data)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=600),
                 st.builds(lambda head, rest: struct.pack(">H", len(head)) + head + rest,
                           st.text(max_size=200).map(str.encode), st.binary(max_size=200)),
                 st.builds(lambda obj, rest: (lambda b: struct.pack(">H", len(b)) + b + rest)(obj.encode()),
                           st.sampled_from(['{"type":"x","blobs":{"a":[0,4]}}', '{"type":"x","blobs":{"a":[3,99]}}',
                                            '{"type":"x","blobs":[1]}', '{"type":1}', '[1]',
                                            '{"type":"x","blobs":{"a":[-1,2]}}', '{"type":"x","blobs":{"a":[0,1e9]}}']),
                           st.binary(max_size=20))))
def test_the_message_decoder_only_ever_raises_protocol_error(data: bytes) -> None:
    buf = bytearray(data)
    try:
        header, fields = messages.decode(buf)
    except ProtocolError:
        return
    finally:
        assert buf == bytearray(len(buf)), "decode must wipe the plaintext it was given"
    assert isinstance(header["type"], str)
    assert all(len(v.buffer) <= len(data) for v in fields.values())


@given(st.text(max_size=40))
def test_a_typed_code_is_a_code_or_a_pairing_failure(text: str) -> None:
    try:
        nameplate, code = parse_code(text)
    except PairingFailed:
        return
    assert len(nameplate) == 4 and len(code) == 14
