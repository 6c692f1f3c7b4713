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

The listener's side of both, and the consumer's side of pairing, run on noiseprotocol here. The
consumer's side of a session — the one handshake on every `runwrap PROFILE -- cmd` — is runwrap's own
(runwrap.wire.noise_ik), because importing noiseprotocol with the `typing` it brings costs ~10.7 ms
over `python -c pass`; `initiator_ik` returns it, and the tests run it against this module's responder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noise.backends.noise_backend import NoiseBackend
from noise.noise_protocol import NoiseProtocol

from runwrap.errors import ProtocolError
from runwrap.wire import noise_ik
from runwrap.wire.noise_ik import ChaCha20Poly1305, x25519_generate, x25519_private, x25519_public

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

try:  # as in noise_ik: hashlib's own module, without OpenSSL's libcrypto
    from _blake2 import blake2s
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2s

# noise_ik's definitions, which the listener and pairing take from here (the exec path imports only noise_ik)
BINDINGS = noise_ik.BINDINGS
IK = noise_ik.IK
PROLOGUE_SESSION = noise_ik.PROLOGUE_SESSION
KEY_LEN = noise_ik.KEY_LEN
TAG_LEN = noise_ik.TAG_LEN
MAX_MESSAGE = noise_ik.MAX_MESSAGE
MAX_PLAINTEXT = noise_ik.MAX_PLAINTEXT
generate_keypair = noise_ik.generate_keypair
public_key = noise_ik.public_key

NNPSK0 = b"Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s"
PROLOGUE_PAIR = b"runwrap/1 pair"
PROLOGUE_CONFIRM = b"runwrap/1 pair-confirm"


# ---- The primitives runwrap's two protocol names use, for noiseprotocol's state machine ----
#
# noiseprotocol's own backend (`noise.connection` imports it) loads every algorithm it knows — X448,
# AES-GCM, SHA-2, BLAKE2b — and through them `cryptography`'s whole serialization package, which
# costs ~35 ms at every start of `runwrap PROFILE -- cmd`. These four classes are the 25519,
# ChaChaPoly and BLAKE2s functions of the Noise spec (§4) over the same `cryptography` primitives and
# BLAKE2s; the handshake and transport logic stays noiseprotocol's (`NoiseProtocol`,
# `HandshakeState`, `CipherState`). The cacophony vectors in tests/wire check the result.

class _KeyPair25519:
    def __init__(self, private: X25519PrivateKey | None, public: X25519PublicKey, public_bytes: bytes) -> None:
        self.private = private
        self.public = public
        self.public_bytes = public_bytes

    @classmethod
    def from_private_bytes(cls, private_bytes: bytes) -> _KeyPair25519:
        if len(private_bytes) != KEY_LEN:
            raise ValueError("an X25519 private key is 32 bytes")
        private = x25519_private(private_bytes)
        public = private.public_key()
        return cls(private, public, public.public_bytes_raw())

    @classmethod
    def from_public_bytes(cls, public_bytes: bytes) -> _KeyPair25519:
        if len(public_bytes) != KEY_LEN:
            raise ValueError("an X25519 public key is 32 bytes")
        public = x25519_public(public_bytes)
        return cls(None, public, public.public_bytes_raw())


class _DH25519:
    klass = _KeyPair25519
    dhlen = KEY_LEN

    def generate_keypair(self) -> _KeyPair25519:
        private = x25519_generate()
        public = private.public_key()
        return _KeyPair25519(private, public, public.public_bytes_raw())

    def dh(self, private_key: X25519PrivateKey, public_key: X25519PublicKey) -> bytes:
        # cryptography refuses an all-zero result, which is what a low-order point gives.
        return private_key.exchange(public_key)


class _ChaChaPoly:
    def __init__(self) -> None:
        self.cipher: ChaCha20Poly1305 | None = None

    def initialize(self, key: bytes) -> None:
        self.cipher = ChaCha20Poly1305(key)

    @staticmethod
    def _nonce(n: int) -> bytes:
        return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")  # Noise §12.3: 32 zero bits, 64-bit LE

    def encrypt(self, k: bytes, n: int, ad: bytes | None, plaintext: bytes) -> bytes:
        assert self.cipher is not None
        return self.cipher.encrypt(self._nonce(n), plaintext, ad)

    def decrypt(self, k: bytes, n: int, ad: bytes | None, ciphertext: bytes) -> bytes:
        assert self.cipher is not None
        return self.cipher.decrypt(self._nonce(n), ciphertext, ad)

    def rekey(self, k: bytes) -> bytes:
        return self.encrypt(k, 2**64 - 1, b"", bytes(32))[:32]


class _BLAKE2s:
    fn = blake2s
    hashlen = 32
    blocklen = 64

    def hash(self, data: bytes) -> bytes:
        return blake2s(data).digest()


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _hmac(key: bytes, data: bytes, algorithm: Any = None) -> bytes:
    """HMAC-BLAKE2s (RFC 2104 with a 64-byte block), as Noise §4.3 defines HMAC-HASH."""
    if len(key) > _BLAKE2s.blocklen:
        key = blake2s(key).digest()
    key = key.ljust(_BLAKE2s.blocklen, b"\0")
    inner = blake2s(key.translate(_IPAD))
    inner.update(data)
    outer = blake2s(key.translate(_OPAD))
    outer.update(inner.digest())
    return outer.digest()


def _backend() -> Any:
    backend = NoiseBackend()
    backend.diffie_hellmans = {"25519": _DH25519}
    backend.ciphers = {"ChaChaPoly": _ChaChaPoly}
    backend.hashes = {"BLAKE2s": _BLAKE2s}
    backend.keypairs = {"25519": _KeyPair25519}
    backend.hmac = _hmac
    return backend


_BACKEND = _backend()


# A finished handshake's transport: noise_ik's Session over noiseprotocol's two CipherStates, which
# take (ad, plaintext) as noise_ik's do; its size checks come first, so noiseprotocol never encrypts
# 65,520..65,535 bytes (it would advance its nonce and hand back a message no peer accepts).
Session = noise_ik.Session

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
            protocol = NoiseProtocol(protocol_name=pattern, backend=_BACKEND)
            protocol.initiator = initiator
            protocol.prologue = prologue
            keys = protocol.keypairs
            if static_private is not None:
                keys["s"] = _KeyPair25519.from_private_bytes(static_private)
            if remote_static is not None:
                keys["rs"] = _KeyPair25519.from_public_bytes(remote_static)
            if psk is not None:
                protocol.psks = [psk]
            if ephemeral_private is not None:
                keys["e"] = _KeyPair25519.from_private_bytes(ephemeral_private)
            protocol.validate()
            protocol.initialise_handshake_state()
        except Exception as exc:  # a key of the wrong length, an unknown name
            raise ProtocolError(f"cannot start the handshake: {type(exc).__name__}") from None
        self._protocol = protocol
        self._writes_next = initiator  # the patterns alternate, initiator first
        self._finished = False
        self._remote_static: bytes | None = remote_static

    @property
    def finished(self) -> bool:
        return self._finished

    def write(self, payload: bytes = b"") -> bytes:
        if len(payload) > MAX_PLAINTEXT - 2 * KEY_LEN - 2 * TAG_LEN:
            raise ProtocolError("handshake payload too large")
        if self._finished or not self._writes_next:
            raise ProtocolError("handshake message written out of turn")
        self._writes_next = False
        message = bytearray()
        try:
            self._finished = bool(self._protocol.handshake_state.write_message(payload, message))
        except Exception:
            raise ProtocolError("handshake failed while writing") from None
        return bytes(message)

    def read(self, message: bytes) -> bytes:
        if len(message) > MAX_MESSAGE:
            raise ProtocolError("handshake message too large")
        if self._finished or self._writes_next:
            raise ProtocolError("handshake message read out of turn")
        self._writes_next = True
        state = self._protocol.handshake_state
        payload = bytearray()
        try:
            self._finished = bool(state.read_message(bytes(message), payload))
        except Exception:
            raise ProtocolError("handshake failed: the other side's message did not verify") from None
        rs = getattr(state, "rs", None)
        if rs is not None and getattr(rs, "public_bytes", None):
            self._remote_static = bytes(rs.public_bytes)
        return bytes(payload)

    @property
    def remote_static(self) -> bytes | None:
        """The other side's static key once the pattern has revealed it (IK responder: after message 1)."""
        return self._remote_static

    @property
    def handshake_hash(self) -> bytes:
        """h at the end of the handshake: unique to this run, computable only by its two parties."""
        if not self.finished:
            raise ProtocolError("handshake not finished")
        return bytes(self._protocol.handshake_hash)

    def session(self) -> Session:
        if not self.finished:
            raise ProtocolError("handshake not finished")
        return Session(self._protocol.cipher_state_encrypt, self._protocol.cipher_state_decrypt,
                       bytes(self._protocol.handshake_hash), self._remote_static)


def initiator_ik(static_private: bytes, listener_public: bytes) -> noise_ik.Initiator:
    """The consumer's side of a session: runwrap's own initiator (runwrap.wire.noise_ik), not noiseprotocol's."""
    return noise_ik.initiator_ik(static_private, listener_public)


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
