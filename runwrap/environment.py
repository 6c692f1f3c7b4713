"""The child's environment, built from nothing.

Exactly: the inherited allow-list (shell globs over the parent's names), then the profile's
`env.set`, then the injected credentials, which win on a clash. Nothing else reaches the child:
no `RUNWRAP_*`, no `BW_SESSION`, no `AWS_*`, no `LD_PRELOAD` unless the allow-list names it.

Everything execve(2) would refuse, or silently cut, is refused here first, before any child starts:
a NUL (it would end the string early), a name that is not a variable name, one `NAME=value` of
128 KiB or more (Linux's MAX_ARG_STRLEN: execve fails with E2BIG), and a total near ARG_MAX.
Messages name the variable, never its value. Injected values stay `Secret` objects until
`to_exec_env`, which runs in the forked child just before execve, so the copies it makes are the
child's and vanish with the exec.
"""

from __future__ import annotations

import os

from runwrap.errors import RunwrapError
from runwrap.secret import Secret

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

DEFAULT_INHERIT: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_*",
    "TERM",
    "COLORTERM",
    "TZ",
    "TMPDIR",
)

_GLOB_CHARS = frozenset("*?[")

# Linux: one argv/envp string, its NUL included, may be at most 32 pages (fs/exec.c).
MAX_ARG_STRLEN = 32 * 4096
_POINTER = 8  # each envp entry also costs a pointer on the new stack


def is_valid_name(name: str) -> bool:
    """A POSIX shell variable name: letters, digits and `_`, not starting with a digit."""
    return name.isascii() and name.isidentifier()  # an ASCII identifier is exactly [A-Za-z_][A-Za-z0-9_]*


def quote_name(name: str) -> str:
    """A name as it can safely be shown: in double quotes, control characters escaped."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)
    return '"' + shown.replace('"', '\\"') + '"'


def _arg_max() -> int:
    try:
        value = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        value = -1
    return value if value > 0 else 2 * 1024 * 1024


def _value_bytes(value: str | Secret) -> int:
    if isinstance(value, Secret):
        return len(value)
    return len(value.encode("utf-8", "surrogateescape"))


def _has_nul(value: str | Secret) -> bool:
    if isinstance(value, Secret):
        return 0 in value.buffer  # searched in place: no copy of the secret
    return "\0" in value


def _check(name: str, value: str | Secret, origin: str, *, strict_name: bool) -> int:
    """Refuse what execve cannot carry; the size `NAME=value` takes, its NUL included."""
    shown = quote_name(name)
    if strict_name and not is_valid_name(name):
        raise RunwrapError(
            f"{shown} ({origin}) is not a valid environment variable name"
            " — use letters, digits and _, not starting with a digit"
        )
    # Inherited names come from the parent's real environment (bash's exported functions are
    # called BASH_FUNC_f%%): pass them on as long as execve can carry them.
    if not name or "=" in name or "\0" in name:
        raise RunwrapError(f"{shown} ({origin}) cannot be an environment variable name — remove it")
    if _has_nul(value):
        raise RunwrapError(
            f"environment variable {shown} ({origin}) contains a NUL byte, which a variable cannot"
            " carry — remove the NUL from its value"
        )
    size = len(name.encode("utf-8", "surrogateescape")) + 1 + _value_bytes(value) + 1
    if size > MAX_ARG_STRLEN:
        raise RunwrapError(
            f"environment variable {shown} ({origin}) is {size - 1} bytes as NAME=value; Linux refuses"
            f" {MAX_ARG_STRLEN} or more (MAX_ARG_STRLEN) — pass a value that large through a file instead"
        )
    return size


def build(
    parent: Mapping[str, str],
    inherit: Sequence[str] | None,
    set_: Mapping[str, str],
    injected: Mapping[str, Secret],
) -> dict[str, str | Secret]:
    """The child's whole environment: allow-listed parent variables, then `set_`, then `injected`.

    `inherit=None` means DEFAULT_INHERIT; an empty sequence inherits nothing. The `Secret`s of
    `injected` are kept as they are, not copied. Raises RunwrapError (exit 125) for anything
    execve would refuse; the message names the variable and where it came from.
    """
    env: dict[str, str | Secret] = dict(base(parent, inherit, {}))
    origin = dict.fromkeys(env, "inherited")
    for name, value in set_.items():
        env[name], origin[name] = value, "env.set"
    for name, secret in injected.items():
        env[name], origin[name] = secret, "a credential"

    check(env, origin)
    return env


def base(parent: Mapping[str, str], inherit: Sequence[str] | None, set_: Mapping[str, str]) -> dict[str, str]:
    """The child's environment before any credential: what it inherits, then `set_` (unchecked).

    What the command is resolved against (its PATH), and what `--dry-run` shows.
    """
    inherits = _globs(DEFAULT_INHERIT if inherit is None else tuple(inherit))
    env = {name: value for name, value in parent.items() if inherits(name)}
    env.update(set_)
    return env


def _globs(patterns: Sequence[str]) -> Callable[[str], bool]:
    """fnmatchcase against any of `patterns`, with plain names and `PREFIX*` compared as strings:
    fnmatch compiles a regex per pattern (~0.7 ms of each launch for the default list)."""
    exact: set[str] = set()
    starts: list[str] = []
    others: list[str] = []
    for pattern in patterns:
        if not _GLOB_CHARS.intersection(pattern):
            exact.add(pattern)
        elif pattern.endswith("*") and not _GLOB_CHARS.intersection(pattern[:-1]):
            starts.append(pattern[:-1])
        else:
            others.append(pattern)
    prefixes = tuple(starts)
    if not others:
        return lambda name: name in exact or name.startswith(prefixes)
    from fnmatch import fnmatchcase

    return lambda name: name in exact or name.startswith(prefixes) or any(fnmatchcase(name, p) for p in others)


def check(env: Mapping[str, str | Secret], origin: Mapping[str, str] | None = None) -> None:
    """Refuse, before any child starts, what execve would refuse or cut; `origin` names where each
    variable came from ("inherited" names are not held to the strict shell-name rule)."""
    total, largest, largest_size = 0, "", 0
    for name, entry in env.items():
        where = origin.get(name, "the environment") if origin is not None else "the environment"
        size = _check(name, entry, where, strict_name=where not in ("inherited", "the environment"))
        total += size + _POINTER
        if size > largest_size:
            largest, largest_size = name, size
    # The child's argv shares ARG_MAX with the environment: leave it a sixteenth.
    arg_max = _arg_max()
    if total > arg_max - arg_max // 16:
        raise RunwrapError(
            f"the child's environment would take {total} bytes, too near the system limit of"
            f" {arg_max} (ARG_MAX) — inherit or set fewer variables (the largest is {quote_name(largest)})"
        )


def to_exec_env(env: Mapping[str, str | Secret]) -> dict[bytes, bytes]:
    """The environment as execve takes it. Call it in the forked child only: the copies of the
    secret values it makes cannot be wiped, and are gone when the exec replaces the process."""
    return {
        os.fsencode(name): value.reveal_bytes() if isinstance(value, Secret) else os.fsencode(value)
        for name, value in env.items()
    }
