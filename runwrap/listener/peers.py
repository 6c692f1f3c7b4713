"""The listener's peers: the consumers it paired with, their keys and scopes, in peers.json.

The file is written atomically with mode 0600 (runwrap.paths) and refused when read if others can
read or change it. People edit it by hand (to remove a peer), so an entry is checked when read and
anything malformed is refused, never widened; and the running listener follows such edits
(`Peers.refresh`) before each handshake, failing closed when the edited file cannot be read.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any

from runwrap.errors import ConfigError
from runwrap.listener.policy import check_pattern
from runwrap.paths import read_private, write_private
from runwrap.record import Record
from runwrap.wire.identity import fingerprint


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


def peer_fp(peer: Peer | None) -> str | None:
    """The fingerprint the audit log names a peer by, or None for a peer that is gone."""
    return _fingerprint(peer.public) if peer else None


@functools.lru_cache(maxsize=256)
def _fingerprint(public_hex: str) -> str:
    """Kept per key: the listener names the peer in every request's event (a SHA-256 and its hex each)."""
    return fingerprint(bytes.fromhex(public_hex))


def _checked_peer(name: str, entry: dict[str, Any]) -> Peer:
    """A peer from peers.json, which people edit by hand: anything malformed is refused, never widened
    (a missing or `null` scope must not become `*`). TypeError or ValueError otherwise."""
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


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells an edited file from the one last read: inode, mtime and size (None: no file)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


class Peers:
    """The listener's paired consumers, keyed by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_name: dict[str, Peer] = {}
        # Stamped before each read: an edit that lands in between is seen as a change next time.
        self._seen = _stamp(path)
        self._read()

    def _read(self) -> None:
        data = read_private(self.path)
        try:
            doc = json.loads(data) if data is not None else {"peers": {}}
        except ValueError:
            raise ConfigError(f"{self.path} is not valid JSON; fix or remove it") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{self.path} is not a runwrap file; fix or remove it")
        try:
            self.by_name = {name: _checked_peer(name, p) for name, p in doc.get("peers", {}).items()}
        except (TypeError, ValueError, AttributeError):
            raise ConfigError(f"{self.path} has an entry runwrap does not understand; fix or remove it") from None

    def refresh(self) -> None:
        """Read the file again if it changed on disk since it was last read (a peer removed by hand).

        ConfigError when the changed file cannot be read; the next call tries again, so a listener
        refuses handshakes until the file is fixed, rather than trusting what it read before.
        """
        seen = _stamp(self.path)
        if seen != self._seen:
            self._read()
            self._seen = seen

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
        peer = Peer(name=name, public=public.hex(), scope=list(scope),
                    paired_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.by_name[name] = peer
        self.save()
        return peer
