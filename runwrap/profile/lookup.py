"""Profiles: which credentials a command gets, under which variable names.

A profile is a YAML file (SPEC "Profiles"). Lookup, first hit wins: a path (a name ending in
.yaml/.yml or containing "/"); each folder of $RUNWRAP_PROFILES; ./profiles/;
$XDG_CONFIG_HOME/runwrap/profiles/. A bad profile is refused before any credential is asked for,
with one line: `FILE:LINE: what is wrong — what to change`.

Parsing and checking live in `runwrap.profile.reader`. yaml costs 20-30 ms to import, more than
the rest of the exec path, so that module is imported only on a miss of `runwrap.profile.cache`.
`find`, the exec path's way in, works on strings: pathlib costs ~2.5 ms to import; `resolve` and
`search_dirs` give the same places as `Path`s.
"""

from __future__ import annotations

import os
import stat

from runwrap.environment import quote_name
from runwrap.errors import ProfileError
from runwrap.profile import cache as profile_cache
from runwrap.profile.model import SUFFIXES, Profile

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

MAX_PROFILE_BYTES = 1024 * 1024


# --- finding a profile -------------------------------------------------------------------------


def is_path(name: str) -> bool:
    return name.endswith(SUFFIXES) or "/" in name


def _config_home(environ: Mapping[str, str]) -> str:
    xdg = environ.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec says to ignore a relative value
        return xdg
    return os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".config")


def _search_dirs(environ: Mapping[str, str], cwd: str) -> list[str]:
    dirs = [_clean(os.path.join(cwd, entry)) for entry in environ.get("RUNWRAP_PROFILES", "").split(":") if entry]
    dirs.append(_clean(os.path.join(cwd, "profiles")))
    dirs.append(_clean(os.path.join(_config_home(environ), "runwrap", "profiles")))
    return list(dict.fromkeys(dirs))  # one folder listed twice is searched once


def _clean(path: str) -> str:
    """`path` as str(Path(path)) spells it (no empty or "." parts, no trailing slash), without pathlib."""
    root = "//" if path.startswith("//") and not path.startswith("///") else "/" if path.startswith("/") else ""
    return root + "/".join(part for part in path.split("/") if part and part != ".") or "."


def _resolve(name: str, environ: Mapping[str, str], cwd: str) -> str:
    if not name or "\0" in name:
        raise ProfileError(
            f"{quote_name(name)} is not a profile name — give a name such as deploy or a file path"
        )
    if is_path(name):
        path = _clean(os.path.join(cwd, name))
        if not os.path.isfile(path):
            problem = "is a folder" if os.path.isdir(path) else "does not exist"
            raise ProfileError(
                f"{name}: {problem} (looked at {path}) — give the path of a profile's .yaml file"
            )
        return path
    dirs = _search_dirs(environ, cwd)
    for folder in dirs:
        for suffix in SUFFIXES:
            path = os.path.join(folder, name + suffix)
            if os.path.isfile(path):
                return path
    raise ProfileError(
        f'no profile named "{name}" — looked for {name}.yaml and {name}.yml in '
        f"{', '.join(dirs)}; create it in one of them or pass a file path"
    )


def search_dirs(environ: Mapping[str, str], cwd: Path) -> list[Path]:
    from pathlib import Path

    return [Path(folder) for folder in _search_dirs(environ, os.fspath(cwd))]


def resolve(name: str, *, environ: Mapping[str, str], cwd: Path) -> Path:
    from pathlib import Path

    return Path(_resolve(name, environ, os.fspath(cwd)))


def find(name: str, *, environ: Mapping[str, str], cwd: str | os.PathLike[str]) -> Profile:
    """The profile `name` means (a path, or the first hit of the lookup); its `path` is a string."""
    return load(_resolve(name, environ, os.fspath(cwd)), cache=profile_cache.cache_dir(environ))


def list_profiles(environ: Mapping[str, str], cwd: Path) -> list[tuple[str, Path, str]]:
    """(name, path, description) of every profile `find` can reach by name, sorted by name."""
    found = reachable(environ, cwd)
    cache = profile_cache.cache_dir(environ)
    listing = []
    for name in sorted(found):
        try:
            description = load(found[name], cache=cache).description
        except ProfileError:
            description = f"(invalid — see: runwrap profiles check {name})"
        listing.append((name, found[name], description))
    return listing


def reachable(environ: Mapping[str, str], cwd: Path) -> dict[str, Path]:
    """Every profile name `find` can reach, with the file it means (first hit per name); none is read."""
    found: dict[str, Path] = {}
    from pathlib import Path

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
    return found


# --- loading one -------------------------------------------------------------------------------

def _shown(path: str | os.PathLike[str]) -> str:
    """The path as a message shows it: relative to the current folder when it is inside it."""
    text = str(path)
    try:
        here = os.getcwd()
    except OSError:
        return text
    return text[len(here) + 1 :] if text.startswith(here + os.sep) else text


def load(path: str | os.PathLike[str], *, cache: str | None = None) -> Profile:
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
        if cache is not None:
            cached = profile_cache.get(cache, info, path)
            if cached is not None:
                return cached
        data = file.read(MAX_PROFILE_BYTES + 1)
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(f"{shown}: larger than {MAX_PROFILE_BYTES} bytes — a profile is a short YAML file")
    from runwrap.profile.reader import parse  # yaml, only on a miss

    profile = parse(data, path, shown)
    if cache is not None:
        profile_cache.put(cache, info, profile)
    return profile


