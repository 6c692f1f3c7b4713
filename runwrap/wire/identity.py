"""A side's identity on the wire: its static X25519 key on disk, and the fingerprint people compare.

A key file holds the raw private key, hex-encoded, created once (mode 0600, in a 0700 folder) and
never overwritten: the listener's key is what its consumers pin, the consumer's what its peers pin.
"""

from __future__ import annotations

import os

from runwrap import json_codec
from runwrap.errors import ConfigError
from runwrap.paths import read_private, write_private
from runwrap.wire import noise_ik


def fingerprint(public_key: bytes) -> str:
    """A short, readable fingerprint of a public key (SHA-256, first 16 bytes, grouped)."""
    import hashlib  # its OpenSSL module is 3.4 MB of RSS: not on the exec path, which never shows one

    digest = hashlib.sha256(public_key).hexdigest()[:32]
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


def load_or_create_identity(path: str | os.PathLike[str]) -> bytes:
    """The private key at `path`, created on first use."""
    data = read_private(path)
    if data is not None:
        try:
            key = bytes.fromhex(json_codec.loads(data)["private"])
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{path} is not a runwrap key file; remove it to make a new identity") from None
        if len(key) != 32:
            raise ConfigError(f"{path} holds a key of the wrong length; remove it to make a new identity")
        return key
    private, _public = noise_ik.generate_keypair()
    if not write_private(path, json_codec.dumps({"private": private.hex()}).encode() + b"\n", exclusive=True):
        return load_or_create_identity(path)  # another process made it first: use that one
    return private
