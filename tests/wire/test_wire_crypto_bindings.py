"""runwrap.wire.noise_ik (and through it the fence, runwrap.wire.noise_session) takes X25519 and
ChaCha20-Poly1305 from cryptography's private Rust bindings (the public classes cost ~7 ms of imports on
every launch). These tests fail loudly when
the locked cryptography moves or changes them: they check that the bindings are the ones in use, and
that they give what the public API gives, on the RFC vectors."""

from __future__ import annotations

import subprocess
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from runwrap.wire import noise_ik, noise_session

MOVED = ("cryptography no longer has the Rust bindings runwrap.wire.noise_ik uses, so it fell back "
         "to the public classes (~7 ms more per launch): point noise_ik at the new bindings, or "
         "keep the cryptography of requirements/runtime.lock")

# RFC 7748, 6.1
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# RFC 8439, 2.8.2
AEAD_KEY = bytes(range(0x80, 0xA0))
AEAD_NONCE = bytes.fromhex("070000004041424344454647")
AEAD_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
AEAD_PLAINTEXT = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
                  b"sunscreen would be it.")
AEAD_TAG = bytes.fromhex("1ae10b594f09e26a7e902ecbd0600691")


def test_the_rust_bindings_are_the_ones_in_use() -> None:
    assert noise_ik.BINDINGS == noise_session.BINDINGS == "rust", MOVED
    assert noise_ik.ChaCha20Poly1305 is noise_session.ChaCha20Poly1305 is ChaCha20Poly1305, MOVED


def test_x25519_from_the_bindings_is_the_public_x25519() -> None:
    keys = noise_session._KeyPair25519.from_private_bytes(ALICE_PRIVATE)
    assert isinstance(keys.private, X25519PrivateKey) and isinstance(keys.public, X25519PublicKey), MOVED
    assert keys.public_bytes == ALICE_PUBLIC
    assert noise_session.public_key(BOB_PRIVATE) == BOB_PUBLIC
    bob = noise_session._KeyPair25519.from_public_bytes(BOB_PUBLIC)
    assert noise_session._DH25519().dh(keys.private, bob.public) == SHARED
    bob_private = X25519PrivateKey.from_private_bytes(BOB_PRIVATE)
    assert bob_private.exchange(X25519PublicKey.from_public_bytes(ALICE_PUBLIC)) == SHARED
    private, public = noise_session.generate_keypair()
    assert X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw() == public


def test_a_low_order_point_is_refused() -> None:
    keys = noise_session._KeyPair25519.from_private_bytes(ALICE_PRIVATE)
    zero = noise_session._KeyPair25519.from_public_bytes(bytes(32))
    assert keys.private is not None
    try:
        noise_session._DH25519().dh(keys.private, zero.public)
    except ValueError:
        return
    raise AssertionError("an all-zero shared secret was accepted")


def test_chacha20poly1305_matches_the_rfc_vector() -> None:
    cipher = noise_session._ChaChaPoly()
    cipher.initialize(AEAD_KEY)
    assert cipher.cipher is not None
    sealed = cipher.cipher.encrypt(AEAD_NONCE, AEAD_PLAINTEXT, AEAD_AAD)
    assert sealed[-16:] == AEAD_TAG
    assert sealed == ChaCha20Poly1305(AEAD_KEY).encrypt(AEAD_NONCE, AEAD_PLAINTEXT, AEAD_AAD)
    assert cipher.cipher.decrypt(AEAD_NONCE, sealed, AEAD_AAD) == AEAD_PLAINTEXT


def test_a_handshake_loads_neither_the_public_classes_nor_the_openssl_backend() -> None:
    script = (
        "import sys\n"
        "from runwrap.wire import noise_session as n\n"
        "lp, lpub = n.generate_keypair(); cp, _ = n.generate_keypair()\n"
        "i, r = n.initiator_ik(cp, lpub), n.responder_ik(lp)\n"
        "r.read(i.write(b'')); i.read(r.write(b''))\n"
        "a, b = i.session(), r.session()\n"
        "assert b.decrypt(a.encrypt(b'hello')) == b'hello'\n"
        "print(' '.join(m for m in sys.modules if m.startswith('cryptography.hazmat.')))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert [m for m in loaded if m.startswith(("cryptography.hazmat.primitives", "cryptography.hazmat.backends"))] == []
