"""The files that pin keys: the listener's peers, the consumer's connections, both identities.

Peers (listener side) and connections (consumer side) are JSON documents written atomically with
mode 0600 in 0700 folders (runwrap.paths), and refused when read if others can read or change them.
A key on disk is the raw X25519 private key, hex-encoded, created once and never overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Connections and identities moved to runwrap.consumer.connections and runwrap.wire.identity; the
# peers move to runwrap.listener.peers next, and this module goes.
from runwrap.consumer.connections import Connection as Connection
from runwrap.consumer.connections import Connections as Connections
from runwrap.durations import rfc3339
from runwrap.errors import ConfigError
from runwrap.paths import read_private_json, write_private
from runwrap.record import Record
from runwrap.wire.identity import fingerprint as fingerprint
from runwrap.wire.identity import load_or_create_identity as load_or_create_identity


class Peer(Record):
    __slots__ = ("name", "paired_at", "public", "revoked", "scope")

    def __init__(self, name: str, public: str, scope: list[str] | None = None, paired_at: str = "",
                 revoked: bool = False) -> None:
        self.name = name
        self.public = public  # hex
        self.scope = ["*"] if scope is None else scope
        self.paired_at = paired_at
        self.revoked = revoked

    @property
    def public_bytes(self) -> bytes:
        return bytes.fromhex(self.public)


def _checked_peer(name: str, entry: dict[str, Any]) -> Peer:
    """A peer from peers.json, which people edit by hand: anything malformed is refused, never widened
    (a missing or `null` scope must not become `*`). TypeError or ValueError otherwise."""
    from runwrap.listener.policy import check_pattern  # listener-only; keeps the consumer's exec path lean

    peer = Peer(name=name, **{k: v for k, v in entry.items() if k != "name"})
    scope = entry.get("scope")  # required: a missing scope is not read as `*`
    if not isinstance(scope, list) or not all(isinstance(p, str) for p in scope):
        raise TypeError("scope must be a list of patterns")
    for pattern in scope:
        check_pattern(pattern)
    if not isinstance(peer.revoked, bool) or not isinstance(peer.paired_at, str):
        raise TypeError("revoked must be true or false, paired_at a string")
    if len(bytes.fromhex(peer.public)) != 32:
        raise ValueError("public must be a 32-byte key in hex")
    return peer


class Peers:
    """The listener's paired consumers, keyed by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        raw = read_private_json(path, {"peers": {}})
        try:
            self.by_name = {name: _checked_peer(name, p) for name, p in raw.get("peers", {}).items()}
        except (TypeError, ValueError, AttributeError):
            raise ConfigError(f"{path} has an entry runwrap does not understand; fix or remove it") from None

    def save(self) -> None:
        doc = {"peers": {name: {k: v for k, v in p.as_dict().items() if k != "name"}
                         for name, p in sorted(self.by_name.items())}}
        write_private(self.path, json.dumps(doc, indent=2).encode() + b"\n")

    def by_key(self, public: bytes) -> Peer | None:
        hexkey = public.hex()
        for peer in self.by_name.values():
            if peer.public == hexkey:
                return peer
        return None

    def add(self, name: str, public: bytes, scope: list[str]) -> Peer:
        peer = Peer(name=name, public=public.hex(), scope=list(scope), paired_at=rfc3339())
        self.by_name[name] = peer
        self.save()
        return peer
