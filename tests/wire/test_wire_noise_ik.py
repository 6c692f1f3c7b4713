"""runwrap's own IK initiator (runwrap.wire.noise_ik), checked against the cacophony vector byte for byte and
against noiseprotocol's responder: the fence's (what the listener runs) and noiseprotocol's own default backend."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair, NoiseConnection

from runwrap.errors import ProtocolError
from runwrap.wire import noise_ik, noise_session
from tests.wire.wire_kit import LOW_ORDER_POINTS

pytestmark = pytest.mark.filterwarnings("ignore:One of ephemeral keypairs:UserWarning")

VECTORS = json.loads((Path(__file__).parent / "vectors" / "cacophony_runwrap.json").read_text())["vectors"]
VECTOR = next(v for v in VECTORS if v["protocol_name"].encode() == noise_ik.IK)
HANDSHAKE_MESSAGES = 2


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def vector_initiator(**changes: bytes) -> noise_ik.Initiator:
    keys = {"static": h(VECTOR["init_static"]), "listener": h(VECTOR["init_remote_static"]),
            "prologue": h(VECTOR["init_prologue"]), "ephemeral": h(VECTOR["init_ephemeral"]), **changes}
    return noise_ik.Initiator(keys["static"], keys["listener"], keys["prologue"], ephemeral_private=keys["ephemeral"])


def vector_responder() -> noise_session.Handshake:
    return noise_session.Handshake(noise_ik.IK, initiator=False, prologue=h(VECTOR["resp_prologue"]),
                                   static_private=h(VECTOR["resp_static"]),
                                   ephemeral_private=h(VECTOR["resp_ephemeral"]))


class Pair:
    """One consumer (runwrap's initiator) and one listener (the fence's noiseprotocol responder), fresh keys."""

    def __init__(self) -> None:
        self.consumer_private, self.consumer_public = noise_ik.generate_keypair()
        self.listener_private, self.listener_public = noise_ik.generate_keypair()
        self.initiator = noise_ik.initiator_ik(self.consumer_private, self.listener_public)
        self.responder = noise_session.responder_ik(self.listener_private)

    def message2(self, payload: bytes = b"") -> bytes:
        assert self.responder.read(self.initiator.write(b"")) == b""
        return self.responder.write(payload)

    def sessions(self) -> tuple[noise_ik.Session, noise_session.Session]:
        self.initiator.read(self.message2())
        return self.initiator.session(), self.responder.session()


# ---- the cacophony vector ----

def test_the_initiator_reproduces_the_vector_byte_for_byte() -> None:
    initiator = vector_initiator()
    messages = [(h(m["payload"]), h(m["ciphertext"])) for m in VECTOR["messages"]]
    assert len(messages) > HANDSHAKE_MESSAGES + 2, "the vector has transport messages both ways"
    assert not initiator.finished
    assert initiator.write(messages[0][0]) == messages[0][1]
    assert initiator.read(messages[1][1]) == messages[1][0]
    assert initiator.finished
    session = initiator.session()
    assert session.handshake_hash == initiator.handshake_hash == h(VECTOR["handshake_hash"])
    assert session.remote_static == initiator.remote_static == h(VECTOR["init_remote_static"])
    for index, (payload, ciphertext) in enumerate(messages[HANDSHAKE_MESSAGES:], start=HANDSHAKE_MESSAGES):
        if index % 2 == 0:  # the initiator's turn
            assert session.encrypt(payload) == ciphertext
        else:
            assert session.decrypt(ciphertext) == payload


def test_the_vector_check_can_fail() -> None:
    """Another prologue, ephemeral or static key each gives another message 1; a flipped bit in message 2 is refused."""
    message1 = h(VECTOR["messages"][0]["ciphertext"])
    payload = h(VECTOR["messages"][0]["payload"])
    for change in ({"prologue": b"runwrap/1 session"}, {"ephemeral": bytes(31) + b"\x09"},
                   {"static": bytes(31) + b"\x09"}):
        assert vector_initiator(**change).write(payload) != message1
    initiator = vector_initiator()
    initiator.write(payload)
    tampered = bytearray(h(VECTOR["messages"][1]["ciphertext"]))
    tampered[40] ^= 0x01
    with pytest.raises(ProtocolError):
        initiator.read(bytes(tampered))


def test_the_fence_s_responder_answers_the_vector_initiator() -> None:
    """The vector's two halves across the two implementations: runwrap's initiator, noiseprotocol's responder."""
    initiator, responder = vector_initiator(), vector_responder()
    messages = [(h(m["payload"]), h(m["ciphertext"])) for m in VECTOR["messages"]]
    assert responder.read(initiator.write(messages[0][0])) == messages[0][0]
    assert initiator.read(responder.write(messages[1][0])) == messages[1][0]
    ours, theirs = initiator.session(), responder.session()
    assert ours.handshake_hash == theirs.handshake_hash == h(VECTOR["handshake_hash"])
    assert theirs.remote_static == noise_ik.public_key(h(VECTOR["init_static"]))
    for index, (payload, ciphertext) in enumerate(messages[HANDSHAKE_MESSAGES:], start=HANDSHAKE_MESSAGES):
        sender, receiver = (ours, theirs) if index % 2 == 0 else (theirs, ours)
        sent = sender.encrypt(payload)
        assert sent == ciphertext
        assert receiver.decrypt(sent) == payload


# ---- interop with noiseprotocol, both directions ----

def test_interop_with_the_listener_s_responder_both_directions() -> None:
    pair = Pair()
    assert pair.responder.read(pair.initiator.write(b"hello listener")) == b"hello listener"
    assert pair.responder.remote_static == pair.consumer_public
    assert pair.initiator.read(pair.responder.write(b"hello consumer")) == b"hello consumer"
    ours, theirs = pair.initiator.session(), pair.responder.session()
    assert ours.handshake_hash == theirs.handshake_hash
    assert ours.remote_static == pair.listener_public
    sizes = [0, 1, 15, 16, 17, 1000, noise_ik.MAX_PLAINTEXT]
    for round_ in range(3):
        for size in sizes:
            up = bytes((round_ + i) % 251 for i in range(size))
            message = ours.encrypt(up)
            assert len(message) == size + noise_ik.TAG_LEN
            assert theirs.decrypt(message) == up
            down = bytes(up[::-1])
            assert ours.decrypt(theirs.encrypt(down)) == down
        assert theirs.decrypt(ours.encrypt(bytearray(b"a bytearray, as messages.encode gives"))) == (
            b"a bytearray, as messages.encode gives")


def test_interop_with_noiseprotocol_s_default_backend() -> None:
    """noiseprotocol on its own primitives (cryptography's public classes, hashlib, its own HMAC), not the fence's."""
    consumer_private, consumer_public = noise_ik.generate_keypair()
    listener_private, listener_public = noise_ik.generate_keypair()
    responder = NoiseConnection.from_name(noise_ik.IK)
    responder.set_as_responder()
    responder.set_prologue(noise_ik.PROLOGUE_SESSION)
    responder.set_keypair_from_private_bytes(Keypair.STATIC, listener_private)
    responder.start_handshake()
    initiator = noise_ik.initiator_ik(consumer_private, listener_public)
    assert bytes(responder.read_message(initiator.write(b"one"))) == b"one"
    assert bytes(responder.noise_protocol.handshake_state.rs.public_bytes) == consumer_public
    assert initiator.read(bytes(responder.write_message(b"two"))) == b"two"
    assert responder.handshake_finished
    assert initiator.handshake_hash == responder.get_handshake_hash()
    session = initiator.session()
    for i in range(20):
        assert bytes(responder.decrypt(session.encrypt(b"up %d" % i))) == b"up %d" % i
        assert session.decrypt(bytes(responder.encrypt(b"down %d" % i))) == b"down %d" % i


# ---- what the initiator refuses ----

def test_a_wrong_listener_key_fails_on_both_sides() -> None:
    pair = Pair()
    wrong = noise_ik.initiator_ik(pair.consumer_private, noise_ik.generate_keypair()[1])
    with pytest.raises(ProtocolError):
        pair.responder.read(wrong.write(b""))  # the listener cannot read a message 1 meant for another key
    # A message 2 from the listener the consumer did not pin: same static and ephemeral keys, another
    # pinned key, so only the listener key differs.
    ephemeral = noise_ik.generate_keypair()[0]
    right = noise_ik.Initiator(pair.consumer_private, pair.listener_public, ephemeral_private=ephemeral)
    pinned_elsewhere = noise_ik.Initiator(pair.consumer_private, noise_ik.generate_keypair()[1],
                                          ephemeral_private=ephemeral)
    responder = noise_session.responder_ik(pair.listener_private)
    responder.read(right.write(b""))
    pinned_elsewhere.write(b"")
    message2 = responder.write(b"")
    with pytest.raises(ProtocolError):
        pinned_elsewhere.read(message2)
    assert right.read(message2) == b""


def test_a_message_2_from_another_run_is_refused() -> None:
    first, second = Pair(), Pair()
    second.initiator = noise_ik.initiator_ik(first.consumer_private, first.listener_public)
    second.initiator.write(b"")
    with pytest.raises(ProtocolError):
        second.initiator.read(first.message2())


@pytest.mark.parametrize("position", range(noise_ik.MESSAGE2_MIN + 3))
def test_every_flipped_bit_of_message_2_is_refused(position: int) -> None:
    pair = Pair()
    message2 = bytearray(pair.message2(b"abc"))
    assert len(message2) == noise_ik.MESSAGE2_MIN + 3
    message2[position] ^= 0x01
    with pytest.raises(ProtocolError):
        pair.initiator.read(bytes(message2))
    assert not pair.initiator.finished


def test_a_truncated_or_extended_message_2_is_refused() -> None:
    for length in range(noise_ik.MESSAGE2_MIN + 5):
        pair = Pair()
        message2 = pair.message2(b"12345")
        with pytest.raises(ProtocolError):
            pair.initiator.read(message2[:length])
    pair = Pair()
    with pytest.raises(ProtocolError):
        pair.initiator.read(pair.message2() + b"\x00")


def test_an_oversized_message_2_is_refused_before_anything_is_read() -> None:
    pair = Pair()
    message2 = pair.message2()
    with pytest.raises(ProtocolError, match="too large"):
        pair.initiator.read(message2 + bytes(noise_ik.MAX_MESSAGE + 1 - len(message2)))


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8])
def test_a_low_order_ephemeral_in_message_2_is_refused(point: bytes) -> None:
    pair = Pair()
    message2 = pair.message2()
    with pytest.raises(ProtocolError):
        pair.initiator.read(point + message2[noise_ik.KEY_LEN:])


def test_the_largest_payload_fits_one_message_1_and_one_more_byte_is_refused() -> None:
    pair = Pair()
    payload = bytes(noise_ik.MAX_MESSAGE - noise_ik.MESSAGE1_OVERHEAD)
    message1 = pair.initiator.write(payload)
    assert len(message1) == noise_ik.MAX_MESSAGE
    assert pair.responder.read(message1) == payload
    with pytest.raises(ProtocolError, match="too large"):
        Pair().initiator.write(payload + b"x")


def test_calls_out_of_turn_are_refused() -> None:
    pair = Pair()
    with pytest.raises(ProtocolError):
        pair.initiator.read(bytes(noise_ik.MESSAGE2_MIN))
    with pytest.raises(ProtocolError):
        pair.initiator.session()
    with pytest.raises(ProtocolError):
        assert pair.initiator.handshake_hash
    message2 = pair.message2()
    with pytest.raises(ProtocolError):
        pair.initiator.write(b"")  # message 1 went already
    pair.initiator.read(message2)
    with pytest.raises(ProtocolError):
        pair.initiator.read(message2)
    with pytest.raises(ProtocolError):
        pair.initiator.write(b"")


def test_a_failed_read_ends_the_handshake() -> None:
    pair = Pair()
    message2 = pair.message2()
    with pytest.raises(ProtocolError):
        pair.initiator.read(message2[:-1] + bytes([message2[-1] ^ 1]))
    with pytest.raises(ProtocolError, match="out of turn"):
        pair.initiator.read(message2)  # even the right message: the state may be half-mixed


def test_keys_of_the_wrong_length_are_refused() -> None:
    private, public = noise_ik.generate_keypair()
    for static, listener in ((private[:31], public), (private, public + b"\x00"), (b"", b"")):
        with pytest.raises(ProtocolError):
            noise_ik.initiator_ik(static, listener)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), keep_ephemeral=st.booleans())
def test_any_message_2_fails_only_with_protocol_error(data: bytes, keep_ephemeral: bool) -> None:
    pair = Pair()
    real = pair.message2()
    message2 = real[:noise_ik.KEY_LEN] + data if keep_ephemeral else data
    if message2 == real:
        return
    with pytest.raises(ProtocolError):
        pair.initiator.read(message2)


# ---- the transport: sizes and nonces ----

def test_transport_sizes_are_checked() -> None:
    ours, theirs = Pair().sessions()
    with pytest.raises(ProtocolError, match="too large"):
        ours.encrypt(bytes(noise_ik.MAX_PLAINTEXT + 1))
    for size in (0, noise_ik.TAG_LEN - 1, noise_ik.MAX_MESSAGE + 1):
        with pytest.raises(ProtocolError, match="malformed"):
            ours.decrypt(bytes(size))
    assert theirs.decrypt(ours.encrypt(b"still in step")) == b"still in step"  # no nonce was spent on those


def test_a_failed_decryption_spends_no_nonce() -> None:
    ours, theirs = Pair().sessions()
    message = theirs.encrypt(b"secret")
    with pytest.raises(ProtocolError, match="authentication"):
        ours.decrypt(message[:-1] + bytes([message[-1] ^ 1]))
    assert ours.decrypt(message) == b"secret"
    with pytest.raises(ProtocolError):
        ours.decrypt(message)  # a replay is under the next nonce


def test_the_nonce_runs_to_its_limit_and_no_further() -> None:
    ours, theirs = Pair().sessions()
    last = noise_ik.NONCE_LIMIT - 1
    assert last == 2**64 - 2
    ours._sending.n = theirs._receiving.n = last
    theirs._sending.n = ours._receiving.n = last
    # The 64-bit little-endian nonce at its top agrees with noiseprotocol's, both ways.
    assert theirs.decrypt(ours.encrypt(b"last up")) == b"last up"
    assert ours.decrypt(theirs.encrypt(b"last down")) == b"last down"
    assert ours._sending.n == ours._receiving.n == noise_ik.NONCE_LIMIT
    with pytest.raises(ProtocolError, match="nonce"):
        ours.encrypt(b"one too many")
    with pytest.raises(ProtocolError, match="nonce"):
        ours.decrypt(bytes(noise_ik.TAG_LEN))


def test_a_cipher_state_without_a_key_passes_bytes_through() -> None:
    """§5.1: before the first MixKey, EncryptWithAd and DecryptWithAd return their input (and the nonce stays)."""
    empty = noise_ik.CipherState()
    assert empty.encrypt_with_ad(b"ad", bytearray(b"plain")) == b"plain"
    assert empty.decrypt_with_ad(b"ad", b"plain") == b"plain"
    assert empty.n == 0


def test_a_short_protocol_name_is_padded_and_a_long_one_hashed() -> None:
    """§5.2 InitializeSymmetric: h is the name padded to HASHLEN, or HASH(name) when it is longer."""
    assert noise_ik.SymmetricState(b"n" * 32).h == b"n" * 32
    assert noise_ik.SymmetricState(b"short").h == b"short" + bytes(27)
    assert noise_ik.SymmetricState(noise_ik.IK).h == noise_ik._hash(noise_ik.IK) != noise_ik.IK[:32]


def test_hmac_blake2s_is_the_standard_one() -> None:
    """hmac/hashlib are kept off the exec path; check the hand-rolled HMAC against them here."""
    import hashlib
    import hmac

    for key in (b"", bytes(32), bytes(range(32)), b"k" * 64, b"k" * 65):
        for data in (b"", b"\x01", bytes(range(200))):
            assert noise_ik._hmac(key, data) == hmac.new(key, data, hashlib.blake2s).digest()


# ---- what it imports ----

ALLOWED_IMPORTS = {"__future__", "os", "runwrap.errors", "cryptography.hazmat.bindings._rust", "_blake2",
                   # the fallbacks, for a cryptography or a Python other than the locked ones
                   "cryptography.hazmat.primitives.asymmetric", "cryptography.hazmat.primitives.ciphers.aead",
                   "hashlib"}


def test_the_module_imports_only_the_primitives() -> None:
    tree = ast.parse(Path(noise_ik.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    type_only = {"cryptography.hazmat.primitives.asymmetric.x25519"}  # under `if TYPE_CHECKING:` (False)
    assert imported - type_only == ALLOWED_IMPORTS
    assert noise_ik.TYPE_CHECKING is False


def test_a_handshake_loads_only_the_bindings_and_the_consumer_loads_no_noise() -> None:
    script = (
        "import sys\n"
        "import runwrap.errors\n"
        "before = set(sys.modules)\n"
        "from runwrap.wire import noise_ik\n"
        "_, listener = noise_ik.generate_keypair()\n"
        "noise_ik.initiator_ik(noise_ik.generate_keypair()[0], listener).write(b'')\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
        "import runwrap.consumer.client\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    handshake, consumer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                         check=True).stdout.splitlines()
    assert handshake.split() == [
        "_blake2", "_cffi_backend", "_openssl", "_openssl.lib",  # the last three: cryptography's Rust extension
        "cryptography", "cryptography.__about__", "cryptography.hazmat", "cryptography.hazmat.bindings",
        "cryptography.hazmat.bindings._rust", "runwrap.wire", "runwrap.wire.noise_ik",
        "types"]  # stdlib, ~0.3 ms: cryptography's bindings ask for it (typing imported it before, on main)
    assert [m for m in consumer.split() if m.startswith(("noise", "runwrap.wire.noise_session"))] == []


def test_every_handshake_has_a_fresh_ephemeral_key() -> None:
    # The ephemeral private key is 32 bytes of os.urandom (X25519 clamps them), not OpenSSL's keygen.
    static, _ = noise_ik.generate_keypair()
    _, listener = noise_ik.generate_keypair()
    firsts = {noise_ik.initiator_ik(static, listener).write(b"")[:noise_ik.KEY_LEN] for _ in range(50)}
    assert len(firsts) == 50
