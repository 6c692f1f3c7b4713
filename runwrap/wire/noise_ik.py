"""The consumer's own Noise handshake: `Noise_IK_25519_ChaChaPoly_BLAKE2s` as initiator, and its transport.

Why runwrap carries it: every `runwrap PROFILE -- cmd` runs one IK handshake as initiator, and importing
noiseprotocol for it costs ~10.7 ms over `python -c pass` (its `typing` brings `re`, `enum`, `functools`
and `collections`), more than the handshake itself. This module is that one role, written from the
Noise spec (revision 34, §5.1 CipherState, §5.2 SymmetricState, §5.3 HandshakeState, §7.5 the IK
pattern), over the same primitives the fence gives noiseprotocol: X25519 and ChaCha20-Poly1305 from
cryptography's Rust bindings, BLAKE2s from `_blake2`. It imports nothing else but runwrap.errors.

How it is checked (tests/wire/test_wire_noise_ik.py): the cacophony vector for the pattern, with its fixed
keys, byte for byte, handshake and transport; every run against noiseprotocol's responder, which is what
the listener runs (runwrap.wire.noise_session, still the only module that imports `noise`), so the two
implementations check each other on every end-to-end test too.

Every failure (a bad tag, a low-order point, a message of the wrong size, a call out of order, an
exhausted nonce) is a `ProtocolError`.
"""

from __future__ import annotations

import os

from runwrap.errors import ProtocolError

TYPE_CHECKING = False  # not typing's: this module is on every launch's path
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

# X25519 and ChaCha20-Poly1305 from cryptography's Rust bindings, which its public classes wrap (the
# fence, runwrap.wire.noise_session, gives these same ones to noiseprotocol):
# importing those loads cryptography's Python layer, and their first use its OpenSSL backend just
# to ask whether X25519 is supported (~7 ms on every `runwrap PROFILE -- cmd`). The bindings are
# private, so tests/wire/test_wire_crypto_bindings.py fails loudly when the locked cryptography
# moves them; any other cryptography without them falls back to the public classes.
try:
    from cryptography.hazmat.bindings._rust import openssl as _rust

    x25519_generate = _rust.x25519.generate_key
    x25519_private = _rust.x25519.from_private_bytes
    x25519_public = _rust.x25519.from_public_bytes
    ChaCha20Poly1305 = _rust.aead.ChaCha20Poly1305
    BINDINGS = "rust"
except (ImportError, AttributeError):  # pragma: no cover - a cryptography other than the locked one
    from cryptography.hazmat.primitives.asymmetric import x25519 as _public_x25519
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    x25519_generate = _public_x25519.X25519PrivateKey.generate
    x25519_private = _public_x25519.X25519PrivateKey.from_private_bytes
    x25519_public = _public_x25519.X25519PublicKey.from_public_bytes
    BINDINGS = "public"

try:  # hashlib's own module; `import hashlib` would also load OpenSSL's libcrypto (~5 ms, ~3.4 MB RSS)
    from _blake2 import blake2s
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2s

IK = b"Noise_IK_25519_ChaChaPoly_BLAKE2s"
PROLOGUE_SESSION = b"runwrap/1 session"
KEY_LEN = 32  # DHLEN of 25519, and the ChaChaPoly key
HASH_LEN = 32  # BLAKE2s
BLOCK_LEN = 64  # BLAKE2s, for HMAC
TAG_LEN = 16
MAX_MESSAGE = 65535
# noiseprotocol accepts 65,535 bytes of plaintext and then produces a 65,551-byte message that its
# peer rejects; the largest plaintext that fits a Noise message is 65,535 - 16.
MAX_PLAINTEXT = MAX_MESSAGE - TAG_LEN
# Message 1 is e, the encrypted s and the encrypted payload; message 2 is e and the encrypted payload.
MESSAGE1_OVERHEAD = KEY_LEN + (KEY_LEN + TAG_LEN) + TAG_LEN
MESSAGE2_MIN = KEY_LEN + TAG_LEN
# §5.1: 2^64-1 is reserved; a CipherState whose nonce reaches it refuses to go on.
NONCE_LIMIT = 2**64 - 1


def generate_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as (private, public) raw bytes."""
    private = x25519_generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def public_key(private: bytes) -> bytes:
    return x25519_private(private).public_key().public_bytes_raw()


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    # cryptography refuses a key of the wrong length and an all-zero result (a low-order point): ValueError.
    return private.exchange(x25519_public(public))


# ---- §4.3 and §5.2: HASH, HMAC-HASH and HKDF over BLAKE2s ----

_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _hash(data: bytes) -> bytes:
    return blake2s(data).digest()


def _hmac(key: bytes, data: bytes) -> bytes:
    """HMAC-BLAKE2s (RFC 2104 with a 64-byte block), as Noise §4.3 defines HMAC-HASH."""
    if len(key) > BLOCK_LEN:  # never in Noise, whose keys are HASH_LEN bytes
        key = _hash(key)
    key = key.ljust(BLOCK_LEN, b"\0")
    inner = blake2s(key.translate(_IPAD))
    inner.update(data)
    outer = blake2s(key.translate(_OPAD))
    outer.update(inner.digest())
    return outer.digest()


def _hkdf2(chaining_key: bytes, input_key_material: bytes) -> tuple[bytes, bytes]:
    """HKDF(ck, ikm, 2) of §4.3: the two outputs, each HASH_LEN bytes (IK needs no third)."""
    temp_key = _hmac(chaining_key, input_key_material)
    output1 = _hmac(temp_key, b"\x01")
    return output1, _hmac(temp_key, output1 + b"\x02")


# ---- §5.1 CipherState ----

class CipherState:
    """A key (or none yet) and the 64-bit counter nonce n; one per direction after the handshake."""

    __slots__ = ("_cipher", "n")

    def __init__(self, key: bytes | None = None) -> None:
        self._cipher = ChaCha20Poly1305(key) if key is not None else None
        self.n = 0

    def _nonce(self) -> bytes:
        if self.n >= NONCE_LIMIT:
            raise ProtocolError("this session has used every nonce; it must be closed")
        return b"\x00\x00\x00\x00" + self.n.to_bytes(8, "little")  # §12.3: 32 zero bits, 64-bit LE

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes | bytearray) -> bytes:
        if self._cipher is None:
            return bytes(plaintext)
        ciphertext = self._cipher.encrypt(self._nonce(), plaintext, ad)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """The plaintext; a failure (cryptography's InvalidTag) leaves n where it was, as §5.1 says."""
        if self._cipher is None:
            return ciphertext
        plaintext = self._cipher.decrypt(self._nonce(), ciphertext, ad)
        self.n += 1
        return plaintext


# ---- §5.2 SymmetricState ----

class SymmetricState:
    """The chaining key ck, the transcript hash h, and the CipherState keyed as the handshake goes."""

    __slots__ = ("cipher", "ck", "h")

    def __init__(self, protocol_name: bytes) -> None:
        self.h = protocol_name.ljust(HASH_LEN, b"\0") if len(protocol_name) <= HASH_LEN else _hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, input_key_material: bytes) -> None:
        self.ck, temp_key = _hkdf2(self.ck, input_key_material)
        self.cipher = CipherState(temp_key)  # HASH_LEN is the key length: nothing to truncate

    def mix_hash(self, data: bytes) -> None:
        self.h = _hash(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """The initiator's sending and receiving CipherStates."""
        key1, key2 = _hkdf2(self.ck, b"")
        return CipherState(key1), CipherState(key2)


# ---- §5.3 HandshakeState, for IK's initiator only ----

class Session:
    """A finished handshake: encrypts and decrypts transport messages in order."""

    __slots__ = ("_receiving", "_sending", "handshake_hash", "remote_static")

    def __init__(self, sending: CipherState, receiving: CipherState, handshake_hash: bytes,
                 remote_static: bytes | None) -> None:  # None: a pairing's NNpsk0 (noise_session)
        self._sending = sending
        self._receiving = receiving
        self.handshake_hash = handshake_hash
        self.remote_static = remote_static

    def encrypt(self, plaintext: bytes | bytearray) -> bytes:
        if len(plaintext) > MAX_PLAINTEXT:
            raise ProtocolError(f"message too large to send ({len(plaintext)} > {MAX_PLAINTEXT} bytes)")
        try:
            return self._sending.encrypt_with_ad(b"", plaintext)
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError(f"cannot encrypt: {type(exc).__name__}") from None

    def decrypt(self, message: bytes) -> bytes:
        if len(message) < TAG_LEN or len(message) > MAX_MESSAGE:
            raise ProtocolError("malformed message from the other side")
        try:
            return self._receiving.decrypt_with_ad(b"", message)
        except ProtocolError:
            raise
        except Exception:
            raise ProtocolError("a message failed authentication; the session was closed") from None


class Initiator:
    """IK's initiator: `write()` message 1 (`-> e, es, s, ss`), `read()` message 2 (`<- e, ee, se`), `session()`.

    The listener's static key is the pre-message (`<- s`). A failed step ends the handshake: any call
    after it is refused.
    """

    def __init__(self, static_private: bytes, listener_public: bytes, prologue: bytes = PROLOGUE_SESSION,
                 *, ephemeral_private: bytes | None = None) -> None:  # ephemeral_private: only for test vectors
        if len(static_private) != KEY_LEN or len(listener_public) != KEY_LEN:
            raise ProtocolError("cannot start the handshake: a key is not 32 bytes")
        try:
            self._s = x25519_private(static_private)
            # 32 bytes from getrandom(2), clamped by X25519 itself: OpenSSL's own key generation
            # first seeds its DRBG, ~0.7 ms of every launch (RFC 7748 §5: any 32 random bytes are a key).
            self._e = x25519_private(os.urandom(KEY_LEN) if ephemeral_private is None else ephemeral_private)
        except Exception as exc:
            raise ProtocolError(f"cannot start the handshake: {type(exc).__name__}") from None
        self._rs = bytes(listener_public)
        self._state = SymmetricState(IK)
        self._state.mix_hash(prologue)
        self._state.mix_hash(self._rs)
        self._step = "write"  # then "read", then "finished"; "failed" once anything went wrong
        self._session: Session | None = None

    @property
    def finished(self) -> bool:
        return self._step == "finished"

    @property
    def remote_static(self) -> bytes:
        """The listener's static key: IK's initiator knows it from the start."""
        return self._rs

    def write(self, payload: bytes = b"") -> bytes:
        if len(payload) > MAX_MESSAGE - MESSAGE1_OVERHEAD:
            raise ProtocolError("handshake payload too large")
        if self._step != "write":
            raise ProtocolError("handshake message written out of turn")
        self._step = "failed"
        state = self._state
        try:
            e_public = self._e.public_key().public_bytes_raw()
            state.mix_hash(e_public)                                       # e
            state.mix_key(_dh(self._e, self._rs))                          # es
            s_sealed = state.encrypt_and_hash(self._s.public_key().public_bytes_raw())  # s
            state.mix_key(_dh(self._s, self._rs))                          # ss
            message = e_public + s_sealed + state.encrypt_and_hash(payload)
        except Exception:
            raise ProtocolError("handshake failed while writing") from None
        self._step = "read"
        return message

    def read(self, message: bytes) -> bytes:
        if len(message) > MAX_MESSAGE:
            raise ProtocolError("handshake message too large")
        if self._step != "read":
            raise ProtocolError("handshake message read out of turn")
        self._step = "failed"
        if len(message) < MESSAGE2_MIN:
            raise ProtocolError("handshake failed: the other side's message is too short")
        state = self._state
        try:
            re = bytes(message[:KEY_LEN])
            state.mix_hash(re)                                             # e
            state.mix_key(_dh(self._e, re))                                # ee
            state.mix_key(_dh(self._s, re))                                # se
            payload = state.decrypt_and_hash(bytes(message[KEY_LEN:]))
        except Exception:
            raise ProtocolError("handshake failed: the other side's message did not verify") from None
        sending, receiving = state.split()
        self._session = Session(sending, receiving, state.h, self._rs)
        self._step = "finished"
        return payload

    @property
    def handshake_hash(self) -> bytes:
        """h at the end of the handshake: unique to this run, computable only by its two parties."""
        return self.session().handshake_hash

    def session(self) -> Session:
        if self._session is None:
            raise ProtocolError("handshake not finished")
        return self._session


def initiator_ik(static_private: bytes, listener_public: bytes) -> Initiator:
    """The consumer's side of a session (docs/protocol.md §5)."""
    return Initiator(static_private, listener_public, PROLOGUE_SESSION)
