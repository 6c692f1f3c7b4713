"""Profiles: which credentials a command gets, under which variable names.

A profile is a YAML file (SPEC "Profiles"). Lookup, first hit wins: a path (a name ending in
.yaml/.yml or containing "/"); each folder of $RUNWRAP_PROFILES; ./profiles/;
$XDG_CONFIG_HOME/runwrap/profiles/. A bad profile is refused before any credential is asked for,
with one line: `FILE:LINE: what is wrong — what to change`.

Parsing and checking live in `runwrap.profile.reader`. yaml costs 20-30 ms to import, more than
the rest of the exec path, so that module is imported only on a cache miss. `find` keeps valid
profiles, once parsed, in a private cache (0700 folder, 0600 files) keyed on the file's device,
inode, size, mtime and ctime, and writes an entry only for a file whose ctime is old enough that a
later change must move it (git's "racy" rule). A change of any kind, even one that puts the mtime
back, moves the ctime, so a stale entry is never taken.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from runwrap.credential import Query
from runwrap.environment import quote_name
from runwrap.errors import ProfileError
from runwrap.record import FrozenRecord

SUFFIXES = (".yaml", ".yml")
MAX_PROFILE_BYTES = 1024 * 1024
_SETTLE_NS = 2_000_000_000  # a file is cached only once its last change is this old


class CredentialSpec(FrozenRecord):
    __slots__ = ("env", "line", "query")
    query: Query
    env: Mapping[str, str]
    line: int

    def __init__(self, query: Query, env: Mapping[str, str], line: int) -> None:
        # env: VAR -> field name (one of FIELDS); line: 1-based line in the file
        self._init(query=query, env=env, line=line)


class Profile(FrozenRecord):
    __slots__ = (
        "connection",
        "credentials",
        "description",
        "inherit",
        "kill_grace",
        "mask",
        "name",
        "path",
        "set",
        "timeout",
    )
    name: str
    path: Path
    description: str
    connection: str | None
    credentials: tuple[CredentialSpec, ...]
    inherit: tuple[str, ...] | None  # None: the default allow-list
    set: Mapping[str, str]
    mask: bool
    timeout: float | None
    kill_grace: float | None

    def __init__(self, *, name: str, path: Path, description: str, connection: str | None,
                 credentials: tuple[CredentialSpec, ...], inherit: tuple[str, ...] | None, set: Mapping[str, str],
                 mask: bool, timeout: float | None, kill_grace: float | None) -> None:
        self._init(name=name, path=path, description=description, connection=connection, credentials=credentials,
                   inherit=inherit, set=set, mask=mask, timeout=timeout, kill_grace=kill_grace)


# --- finding a profile -------------------------------------------------------------------------


def is_path(name: str) -> bool:
    return name.endswith(SUFFIXES) or "/" in name


def _config_home(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec says to ignore a relative value
        return Path(xdg)
    return Path(environ.get("HOME") or os.path.expanduser("~")) / ".config"


def search_dirs(environ: Mapping[str, str], cwd: Path) -> list[Path]:
    dirs = [cwd / entry for entry in environ.get("RUNWRAP_PROFILES", "").split(":") if entry]
    dirs.append(cwd / "profiles")
    dirs.append(_config_home(environ) / "runwrap" / "profiles")
    return list(dict.fromkeys(dirs))  # one folder listed twice is searched once


def resolve(name: str, *, environ: Mapping[str, str], cwd: Path) -> Path:
    if not name or "\0" in name:
        raise ProfileError(
            f"{quote_name(name)} is not a profile name — give a name such as deploy or a file path"
        )
    if is_path(name):
        path = cwd / name
        if not path.is_file():
            problem = "is a folder" if path.is_dir() else "does not exist"
            raise ProfileError(
                f"{name}: {problem} (looked at {path}) — give the path of a profile's .yaml file"
            )
        return path
    dirs = search_dirs(environ, cwd)
    for folder in dirs:
        for suffix in SUFFIXES:
            path = folder / (name + suffix)
            if path.is_file():
                return path
    raise ProfileError(
        f'no profile named "{name}" — looked for {name}.yaml and {name}.yml in '
        f"{', '.join(str(d) for d in dirs)}; create it in one of them or pass a file path"
    )


def cache_dir(environ: Mapping[str, str]) -> Path | None:
    """Where `find` keeps parsed profiles: under $RUNWRAP_HOME, else $XDG_CACHE_HOME/runwrap."""
    if environ.get("RUNWRAP_HOME"):
        return Path(environ["RUNWRAP_HOME"]) / "cache" / "profiles"
    xdg = environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "runwrap" / "profiles"
    if environ.get("HOME"):
        return Path(environ["HOME"]) / ".cache" / "runwrap" / "profiles"
    return None


def find(name: str, *, environ: Mapping[str, str], cwd: Path) -> Profile:
    return load(resolve(name, environ=environ, cwd=cwd), cache=cache_dir(environ))


def list_profiles(environ: Mapping[str, str], cwd: Path) -> list[tuple[str, Path, str]]:
    """(name, path, description) of every profile `find` can reach by name, sorted by name."""
    found: dict[str, Path] = {}
    for folder in search_dirs(environ, cwd):
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        for suffix in SUFFIXES:  # the order resolve() tries them in
            for entry in entries:
                name = entry.name[: -len(suffix)]
                if (
                    entry.name.endswith(suffix)
                    and name
                    and not name.startswith(".")
                    and not is_path(name)
                    and name not in found
                    and entry.is_file()
                ):
                    found[name] = Path(entry.path)
    cache = cache_dir(environ)
    listing = []
    for name in sorted(found):
        try:
            description = load(found[name], cache=cache).description
        except ProfileError:
            description = f"(invalid — see: runwrap profiles check {name})"
        listing.append((name, found[name], description))
    return listing


# --- loading one -------------------------------------------------------------------------------


def name_of(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def _shown(path: Path) -> str:
    """The path as a message shows it: relative to the current folder when it is inside it."""
    text = str(path)
    try:
        here = os.getcwd()
    except OSError:
        return text
    return text[len(here) + 1 :] if text.startswith(here + os.sep) else text


def load(path: Path, *, cache: Path | None = None) -> Profile:
    """Read and validate one profile file; `cache` is a folder for parsed profiles (see above)."""
    shown = _shown(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProfileError(f"{shown}: no such file — check the path") from None
    except OSError as exc:
        raise ProfileError(f"{shown}: cannot be read ({exc.strerror}) — check its permissions") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ProfileError(f"{shown}: not a regular file — give the path of a profile's .yaml file")
    with os.fdopen(fd, "rb") as file:
        key = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
        if cache is not None:
            cached = _cache_get(cache, key, path)
            if cached is not None:
                return cached
        data = file.read(MAX_PROFILE_BYTES + 1)
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(f"{shown}: larger than {MAX_PROFILE_BYTES} bytes — a profile is a short YAML file")
    from runwrap.profile.reader import parse  # yaml, only on a miss

    profile = parse(data, path, shown)
    # Racy-git rule: a file changed less than 2 s ago could change again within the same ctime tick.
    if cache is not None and info.st_ctime_ns < time.time_ns() - _SETTLE_NS:
        _cache_put(cache, key, profile)
    return profile


# --- the parsed-profile cache ------------------------------------------------------------------
# Best effort: any problem with the cache is a miss, never an error. The folder must be ours and
# private, entries are opened without following symlinks, and an entry is taken only when its key
# matches the file just opened.

_CACHE_FORMAT = 1
_code_stamp: list[int] = []


def _stamp() -> list[int]:
    """This module's own version: an upgrade or an edit of the checks above retires every entry."""
    if not _code_stamp:
        _code_stamp.append(_CACHE_FORMAT)
        for source in (__file__, os.path.join(os.path.dirname(__file__), "reader.py")):
            try:
                info = os.stat(source)
                _code_stamp.extend([info.st_mtime_ns, info.st_size])
            except OSError:
                _code_stamp.extend([0, 0])
    return _code_stamp


def _cache_file(cache: Path, key: list[int]) -> Path:
    return cache / f"{key[0]:x}-{key[1]:x}.json"


def _private_dir(cache: Path) -> bool:
    try:
        info = os.lstat(cache)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077 == 0


def _cache_get(cache: Path, key: list[int], path: Path) -> Profile | None:
    if not _private_dir(cache):
        return None
    try:
        fd = os.open(_cache_file(cache, key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                return None
            entry = json.loads(file.read(MAX_PROFILE_BYTES * 2))
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
                    query=Query(**c["query"]), env=MappingProxyType(dict(c["env"])), line=c["line"]
                )
                for c in data["credentials"]
            ),
            inherit=None if data["inherit"] is None else tuple(data["inherit"]),
            set=MappingProxyType(dict(data["set"])),
            mask=bool(data["mask"]),
            timeout=data["timeout"],
            kill_grace=data["kill_grace"],
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _make_private_dirs(folder: Path) -> None:
    """mkdir -p, every folder it creates 0700 (SPEC, Files)."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for item in reversed(missing):
        try:
            os.mkdir(item, 0o700)
        except FileExistsError:
            pass


def _cache_put(cache: Path, key: list[int], profile: Profile) -> None:
    entry = {
        "format": _stamp(),
        "key": key,
        "profile": {
            "description": profile.description,
            "connection": profile.connection,
            "credentials": [
                {"query": c.query.to_wire(), "env": dict(c.env), "line": c.line} for c in profile.credentials
            ],
            "inherit": None if profile.inherit is None else list(profile.inherit),
            "set": dict(profile.set),
            "mask": profile.mask,
            "timeout": profile.timeout,
            "kill_grace": profile.kill_grace,
        },
    }
    target = _cache_file(cache, key)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        _make_private_dirs(cache)
        if not _private_dir(cache):
            return
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(entry, file)
        os.replace(temp, target)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass
