"""The fence around the third-party Noise library: the only module that imports `noise`.

runwrap uses two patterns (docs/protocol.md):
- `Noise_IK_25519_ChaChaPoly_BLAKE2s` for every session between paired keys: the consumer knows the
  listener's static key (pinned at pairing) and sends its own inside message 1;
- `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s` for pairing, with a PSK derived from SPAKE2 on the code,
  followed by an IK "confirmation" handshake whose prologue is the NNpsk0 handshake hash: it proves
  that each side holds the private half of the static key it is about to pin, and ties both keys to
  that one pairing.
Every failure of the library (a bad tag, a low-order point, a message of the wrong size, a call out
of order) comes out of here as `ProtocolError`, so callers never see the library's exceptions.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from noise.connection import Keypair, NoiseConnection

from runwrap.errors import ProtocolError

PROTOCOL_VERSION = 1
IK = b"Noise_IK_25519_ChaChaPoly_BLAKE2s"
NNPSK0 = b"Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s"
PROLOGUE_SESSION = b"runwrap/1 session"
PROLOGUE_PAIR = b"runwrap/1 pair"
PROLOGUE_CONFIRM = b"runwrap/1 pair-confirm"
KEY_LEN = 32
TAG_LEN = 16
MAX_MESSAGE = 65535
# noiseprotocol accepts 65,535 bytes of plaintext and then produces a 65,551-byte message that its
# peer rejects; the largest plaintext that fits a Noise message is 65,535 - 16.
MAX_PLAINTEXT = MAX_MESSAGE - TAG_LEN

_RAW = serialization.Encoding.Raw


def generate_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as (private, public) raw bytes."""
    private = X25519PrivateKey.generate()
    return (
        private.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()),
        private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw),
    )


def public_key(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(
        _RAW, serialization.PublicFormat.Raw
    )


class Session:
    """A finished handshake: encrypts and decrypts transport messages in order."""

    def __init__(self, conn: NoiseConnection, handshake_hash: bytes, remote_static: bytes | None) -> None:
        self._conn = conn
        self.handshake_hash = handshake_hash
        self.remote_static = remote_static

    def encrypt(self, plaintext: bytes | bytearray) -> bytes:
        # Checked here, before the library sees it: noiseprotocol would encrypt 65,520..65,535 bytes,
        # advance its nonce and hand back a message no peer accepts.
        if len(plaintext) > MAX_PLAINTEXT:
            raise ProtocolError(f"message too large to send ({len(plaintext)} > {MAX_PLAINTEXT} bytes)")
        try:
            return bytes(self._conn.encrypt(bytes(plaintext)))
        except Exception as exc:  # the library's errors never leave this module
            raise ProtocolError(f"cannot encrypt: {type(exc).__name__}") from None

    def decrypt(self, message: bytes) -> bytes:
        if len(message) < TAG_LEN or len(message) > MAX_MESSAGE:
            raise ProtocolError("malformed message from the other side")
        try:
            return self._conn.decrypt(bytes(message))
        except Exception:
            raise ProtocolError("a message failed authentication; the session was closed") from None


class Handshake:
    """One side of a handshake. `write()`/`read()` alternate as the pattern says."""

    def __init__(
        self,
        pattern: bytes,
        *,
        initiator: bool,
        prologue: bytes,
        static_private: bytes | None = None,
        remote_static: bytes | None = None,
        psk: bytes | None = None,
        ephemeral_private: bytes | None = None,  # only for test vectors
    ) -> None:
        try:
            conn = NoiseConnection.from_name(pattern)
            conn.set_as_initiator() if initiator else conn.set_as_responder()
            conn.set_prologue(prologue)
            if static_private is not None:
                conn.set_keypair_from_private_bytes(Keypair.STATIC, static_private)
            if remote_static is not None:
                conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote_static)
            if psk is not None:
                conn.set_psks(psk)
            if ephemeral_private is not None:
                conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral_private)
            conn.start_handshake()
        except Exception as exc:  # a key of the wrong length, an unknown name
            raise ProtocolError(f"cannot start the handshake: {type(exc).__name__}") from None
        self._conn = conn
        self._remote_static: bytes | None = remote_static

    @property
    def finished(self) -> bool:
        return bool(self._conn.handshake_finished)

    def write(self, payload: bytes = b"") -> bytes:
        if len(payload) > MAX_PLAINTEXT - 2 * KEY_LEN - 2 * TAG_LEN:
            raise ProtocolError("handshake payload too large")
        try:
            return bytes(self._conn.write_message(payload))
        except Exception:
            raise ProtocolError("handshake failed while writing") from None

    def read(self, message: bytes) -> bytes:
        if len(message) > MAX_MESSAGE:
            raise ProtocolError("handshake message too large")
        try:
            payload = bytes(self._conn.read_message(bytes(message)))
        except Exception:
            raise ProtocolError("handshake failed: the other side's message did not verify") from None
        state = getattr(self._conn.noise_protocol, "handshake_state", None)
        rs = getattr(state, "rs", None)
        if rs is not None and getattr(rs, "public_bytes", None):
            self._remote_static = bytes(rs.public_bytes)
        return payload

    @property
    def remote_static(self) -> bytes | None:
        """The other side's static key once the pattern has revealed it (IK responder: after message 1)."""
        return self._remote_static

    @property
    def handshake_hash(self) -> bytes:
        """h at the end of the handshake: unique to this run, computable only by its two parties."""
        if not self.finished:
            raise ProtocolError("handshake not finished")
        return bytes(self._conn.get_handshake_hash())

    def session(self) -> Session:
        if not self.finished:
            raise ProtocolError("handshake not finished")
        return Session(self._conn, bytes(self._conn.get_handshake_hash()), self._remote_static)


def initiator_ik(static_private: bytes, listener_public: bytes) -> Handshake:
    return Handshake(IK, initiator=True, prologue=PROLOGUE_SESSION,
                     static_private=static_private, remote_static=listener_public)


def responder_ik(static_private: bytes) -> Handshake:
    return Handshake(IK, initiator=False, prologue=PROLOGUE_SESSION, static_private=static_private)


def initiator_confirm(static_private: bytes, listener_public: bytes, pair_hash: bytes) -> Handshake:
    """The IK run that ends a pairing: bound to that pairing's NNpsk0 handshake hash."""
    return Handshake(IK, initiator=True, prologue=PROLOGUE_CONFIRM + pair_hash,
                     static_private=static_private, remote_static=listener_public)


def responder_confirm(static_private: bytes, pair_hash: bytes) -> Handshake:
    return Handshake(IK, initiator=False, prologue=PROLOGUE_CONFIRM + pair_hash, static_private=static_private)


def initiator_pair(psk: bytes, transcript: bytes) -> Handshake:
    return Handshake(NNPSK0, initiator=True, prologue=PROLOGUE_PAIR + transcript, psk=psk)


def responder_pair(psk: bytes, transcript: bytes) -> Handshake:
    return Handshake(NNPSK0, initiator=False, prologue=PROLOGUE_PAIR + transcript, psk=psk)
