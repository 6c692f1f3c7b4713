"""Parsed profiles, kept so the exec path need not import yaml (20-30 ms) on every run.

Entries live in a private folder (0700, files 0600) keyed on the file's device, inode, size, mtime
and ctime, and are written only for a file whose ctime is old enough that a later change must move
it (git's "racy" rule). A change of any kind, even one that puts the mtime back, moves the ctime, so
a stale entry is never taken. Best effort: any problem with the cache is a miss, never an error. The
folder must be ours and private, entries are opened without following symlinks, and an entry is
taken only when its key matches the file just opened.
"""

from __future__ import annotations

import os
import time
from types import MappingProxyType

from runwrap import json_codec
from runwrap.code_cache import cache_root, read_private, write_private
from runwrap.credential import Query
from runwrap.profile.model import CredentialSpec, FileSpec, Profile, name_of

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_ENTRY_BYTES = 2 * 1024 * 1024
_SETTLE_NS = 2_000_000_000  # a file is cached only once its last change is this old


def cache_dir(environ: Mapping[str, str]) -> str | None:
    """Where `find` keeps parsed profiles: the profiles folder of runwrap's cache (code_cache.cache_root)."""
    root = cache_root(environ)
    return None if root is None else os.path.join(root, "profiles")


def key_of(info: os.stat_result) -> list[int]:
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


# Best effort: any problem with the cache is a miss, never an error. The folder must be ours and
# private, entries are opened without following symlinks, and an entry is taken only when its key
# matches the file just opened.

_CACHE_FORMAT = 2  # 2: credentials have files:
_code_stamp: list[int] = []


def _stamp() -> list[int]:
    """The profile code's own version: an upgrade or an edit of the reader retires every entry."""
    if not _code_stamp:
        _code_stamp.append(_CACHE_FORMAT)
        here = os.path.dirname(__file__)
        for source in (__file__, *(os.path.join(here, name) for name in ("reader.py", "model.py", "files.py"))):
            try:
                info = os.stat(source)
                _code_stamp.extend([info.st_mtime_ns, info.st_size])
            except OSError:
                _code_stamp.extend([0, 0])
    return _code_stamp


def _cache_file(cache: str, key: list[int]) -> str:
    return os.path.join(cache, f"{key[0]:x}-{key[1]:x}.json")


def get(cache: str, info: os.stat_result, path: str | os.PathLike[str]) -> Profile | None:
    """The parsed profile for the file `path` whose fstat is `info`, or None (a miss)."""
    key = key_of(info)
    raw = read_private(_cache_file(cache, key), MAX_ENTRY_BYTES)
    if raw is None:
        return None
    try:
        entry = json_codec.loads(raw)
        if entry.get("format") != _stamp() or entry.get("key") != key:
            return None
        data = entry["profile"]
        return Profile(
            name=name_of(path),
            path=path,
            description=data["description"],
            connection=data["connection"],
            credentials=tuple(
                CredentialSpec(
                    query=Query(**c["query"]), env=MappingProxyType(dict(c["env"])), line=c["line"],
                    files=MappingProxyType({var: FileSpec(**f) for var, f in c["files"].items()}),
                )
                for c in data["credentials"]
            ),
            inherit=None if data["inherit"] is None else tuple(data["inherit"]),
            set=MappingProxyType(dict(data["set"])),
            mask=bool(data["mask"]),
            mask_hex=bool(data.get("mask_hex", False)),
            timeout=data["timeout"],
            kill_grace=data["kill_grace"],
            on_change=str(data["on_change"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def put(cache: str, info: os.stat_result, profile: Profile) -> None:
    """Keep `profile`, parsed from a file whose fstat was `info`, unless the file changed too lately."""
    # Racy-git rule: a file changed less than 2 s ago could change again within the same ctime tick.
    if info.st_ctime_ns >= time.time_ns() - _SETTLE_NS:
        return
    key = key_of(info)
    entry = {
        "format": _stamp(),
        "key": key,
        "profile": {
            "description": profile.description,
            "connection": profile.connection,
            "credentials": [
                {"query": c.query.to_wire(), "env": dict(c.env), "line": c.line,
                 "files": {var: f.as_dict() for var, f in c.files.items()}}
                for c in profile.credentials
            ],
            "inherit": None if profile.inherit is None else list(profile.inherit),
            "set": dict(profile.set),
            "mask": profile.mask,
            "mask_hex": profile.mask_hex,
            "timeout": profile.timeout,
            "kill_grace": profile.kill_grace,
            "on_change": profile.on_change,
        },
    }
    write_private(_cache_file(cache, key), lambda: json_codec.dumps(entry).encode())  # as json.dump writes it
