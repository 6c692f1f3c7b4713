"""Pairing codes and the PAKE that turns one into a Noise PSK: the only module that imports spake2.

A code looks like `4821-K7QX-M2PD`: a 4-digit nameplate that tells the listener which invite is
meant (sent in the clear), then 8 characters from a 31-letter alphabet (~40 bits). The whole code is
the SPAKE2 password. SPAKE2 gives both sides the same key only if they typed the same code, and a
recorded exchange gives an eavesdropper nothing to test guesses against offline; an active attacker
gets one guess per run, and one wrong run burns the invite. The key is stretched with HKDF over the
transcript into the PSK of `Noise_NNpsk0` (runwrap.wire.noise_session); the listener's static key travels
in its message 2, and an IK run bound to the NNpsk0 handshake hash then proves both static keys
before either side pins the other's (docs/protocol.md, "Pairing").
"""

from __future__ import annotations

import re
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from spake2 import SPAKE2_A, SPAKE2_B

from runwrap.errors import PairingFailed, ProtocolError

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: easy to read aloud and type
ID_CONSUMER = b"runwrap/1 consumer"
ID_LISTENER = b"runwrap/1 listener"
PSK_SALT = b"runwrap/1 pairing psk"
_CODE = re.compile(r"^(\d{4})-([2-9A-HJKMNP-Z]{4})-?([2-9A-HJKMNP-Z]{4})$")


def new_code() -> tuple[str, str]:
    """A fresh (nameplate, code)."""
    nameplate = f"{secrets.randbelow(10000):04d}"
    body = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return nameplate, f"{nameplate}-{body[:4]}-{body[4:]}"


def parse_code(text: str) -> tuple[str, str]:
    """(nameplate, canonical code) from what a user typed; PairingFailed if it is not a code."""
    match = _CODE.match(text.strip().upper().replace(" ", ""))
    if not match:
        raise PairingFailed("that is not a pairing code (it looks like 4821-K7QX-M2PD); "
                            "copy it again from `runwrap invite`")
    nameplate, first, second = match.groups()
    return nameplate, f"{nameplate}-{first}-{second}"


class Pake:
    """One side of SPAKE2 on a code. `message` goes to the other side; `finish` gives the PSK."""

    def __init__(self, code: str, *, listener: bool) -> None:
        password = code.encode()
        cls = SPAKE2_B if listener else SPAKE2_A
        self._side = cls(password, idA=ID_CONSUMER, idB=ID_LISTENER)
        self.message = self._side.start()

    def finish(self, other: bytes, transcript: bytes) -> bytes:
        try:
            key = self._side.finish(bytes(other))
        except Exception:  # SPAKEError, off-curve points, wrong side bytes, wrong lengths, reflections
            raise ProtocolError("the other side's pairing message is malformed") from None
        return derive_psk(key, transcript)


def derive_psk(key: bytes, transcript: bytes) -> bytes:
    """HKDF-SHA256(ikm = SPAKE2 key, salt = PSK_SALT, info = transcript), 32 bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=PSK_SALT, info=transcript).derive(key)


def transcript(nameplate: str, consumer_msg: bytes, listener_msg: bytes) -> bytes:
    """What both sides bind into the PSK and the Noise prologue."""
    return b"|".join((nameplate.encode(), consumer_msg.hex().encode(), listener_msg.hex().encode()))
