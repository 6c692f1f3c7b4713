"""What a profile says, once read and checked: `Profile` and its `CredentialSpec`s.

Plain values, no I/O: `profile.reader` makes them from YAML, `profile.cache` from its JSON entries,
and the exec path, the API and `runwrap run` (one item named on the command line) read them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from runwrap.credential import Query
from runwrap.record import FrozenRecord

SUFFIXES = (".yaml", ".yml")


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
    path: str | os.PathLike[str]  # as the caller named it: the exec path passes strings (no pathlib)
    description: str
    connection: str | None
    credentials: tuple[CredentialSpec, ...]
    inherit: tuple[str, ...] | None  # None: the default allow-list
    set: Mapping[str, str]
    mask: bool
    timeout: float | None
    kill_grace: float | None

    def __init__(self, *, name: str, path: str | os.PathLike[str], description: str, connection: str | None,
                 credentials: tuple[CredentialSpec, ...], inherit: tuple[str, ...] | None, set: Mapping[str, str],
                 mask: bool, timeout: float | None, kill_grace: float | None) -> None:
        self._init(name=name, path=path, description=description, connection=connection, credentials=credentials,
                   inherit=inherit, set=set, mask=mask, timeout=timeout, kill_grace=kill_grace)


def name_of(path: str | os.PathLike[str]) -> str:
    name = os.path.basename(path)
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name
