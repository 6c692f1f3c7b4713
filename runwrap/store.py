"""The files that pin keys: the consumer's connections, both identities.

Connections are a JSON document written atomically with mode 0600 in 0700 folders
(runwrap.paths), and refused when read if others can read or change it (the listener's peers
are runwrap.listener.peers).
A key on disk is the raw X25519 private key, hex-encoded, created once and never overwritten.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from runwrap.errors import ConfigError
from runwrap.paths import Layout, read_private, write_private
from runwrap.record import Record
from runwrap.wire import noise_session


def fingerprint(public_key: bytes) -> str:
    """A short, readable fingerprint of a public key (SHA-256, first 16 bytes, grouped)."""
    import hashlib

    digest = hashlib.sha256(public_key).hexdigest()[:32]
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


def load_or_create_identity(path: Path) -> bytes:
    """The private key at `path`, created on first use."""
    data = read_private(path)
    if data is not None:
        try:
            key = bytes.fromhex(json.loads(data)["private"])
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{path} is not a runwrap key file; remove it to make a new identity") from None
        if len(key) != 32:
            raise ConfigError(f"{path} holds a key of the wrong length; remove it to make a new identity")
        return key
    private, _public = noise_session.generate_keypair()
    if not write_private(path, json.dumps({"private": private.hex()}).encode() + b"\n", exclusive=True):
        return load_or_create_identity(path)  # another process made it first: use that one
    return private


def _load_json(path: Path, default: dict[str, Any]) -> dict[str, Any]:
    data = read_private(path)
    if data is None:
        return default
    try:
        loaded = json.loads(data)
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON; fix or remove it") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} is not a runwrap file; fix or remove it")
    return loaded


class Connection(Record):
    __slots__ = ("address", "name", "paired_at", "public")

    def __init__(self, name: str, address: str, public: str, paired_at: str = "") -> None:
        self.name = name
        self.address = address  # unix:/path or tcp:host:port
        self.public = public  # the listener's static key, hex, pinned at pairing
        self.paired_at = paired_at

    @property
    def public_bytes(self) -> bytes:
        return bytes.fromhex(self.public)


class Connections:
    """The consumer's paired listeners, keyed by name, with an optional default."""

    def __init__(self, path: Path) -> None:
        self.path = path
        raw = _load_json(path, {"connections": {}})
        self.default: str | None = raw.get("default")
        try:
            self.by_name = {name: Connection(name=name, **{k: v for k, v in c.items() if k != "name"})
                            for name, c in raw.get("connections", {}).items()}
        except TypeError:
            raise ConfigError(f"{path} has an entry runwrap does not understand; fix or remove it") from None

    def save(self) -> None:
        doc: dict[str, Any] = {"connections": {name: {k: v for k, v in c.as_dict().items() if k != "name"}
                                               for name, c in sorted(self.by_name.items())}}
        if self.default:
            doc["default"] = self.default
        write_private(self.path, json.dumps(doc, indent=2).encode() + b"\n")

    def add(self, name: str, address: str, public: bytes) -> Connection:
        conn = Connection(name=name, address=address, public=public.hex(), paired_at=_now())
        self.by_name[name] = conn
        if self.default is None or self.default not in self.by_name:
            self.default = name
        self.save()
        return conn

    def remove(self, name: str) -> None:
        if name not in self.by_name:
            raise ConfigError(f"no connection named {name!r}; see `runwrap connections list`")
        del self.by_name[name]
        if self.default == name:
            self.default = next(iter(sorted(self.by_name)), None)
        self.save()

    def pick(self, name: str | None) -> Connection:
        """The named connection, else the only one, else the default."""
        if name:
            if name not in self.by_name:
                known = ", ".join(sorted(self.by_name)) or "none"
                raise ConfigError(f"no connection named {name!r} (paired: {known}); pair with `runwrap pair CODE`")
            return self.by_name[name]
        if not self.by_name:
            raise ConfigError("not paired with any listener; run `runwrap invite` where the vault is, "
                              "then `runwrap pair CODE` here")
        if len(self.by_name) == 1:
            return next(iter(self.by_name.values()))
        if self.default in self.by_name:
            return self.by_name[self.default]
        raise ConfigError("several connections and no default; pass --connection NAME")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def open_connections(lay: Layout) -> Connections:
    return Connections(lay.connections)
