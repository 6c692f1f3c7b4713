"""The consumer's paired listeners ("connections"), pinned by key, in one 0600 JSON file.

Written atomically (runwrap.paths) and refused when read if others can read or change it. `pick`
is the one place that decides which listener a command asks: the named one, else the only one,
else the default.
"""

from __future__ import annotations

import os

from runwrap.durations import rfc3339
from runwrap.errors import ConfigError
from runwrap.paths import read_private_json, write_private
from runwrap.record import Record

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from typing import Any


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

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        raw = read_private_json(path, {"connections": {}})
        self.default: str | None = raw.get("default")
        try:
            self.by_name = {name: Connection(name=name, **{k: v for k, v in c.items() if k != "name"})
                            for name, c in raw.get("connections", {}).items()}
        except (TypeError, AttributeError):
            raise ConfigError(f"{path} has an entry runwrap does not understand; fix or remove it") from None

    def save(self) -> None:
        import json  # pairing and `connections` only: the exec path reads the file (json_codec)

        doc: dict[str, Any] = {"connections": {name: {k: v for k, v in c.as_dict().items() if k != "name"}
                                               for name, c in sorted(self.by_name.items())}}
        if self.default:
            doc["default"] = self.default
        write_private(self.path, json.dumps(doc, indent=2).encode() + b"\n")

    def add(self, name: str, address: str, public: bytes) -> Connection:
        conn = Connection(name=name, address=address, public=public.hex(), paired_at=rfc3339())
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
