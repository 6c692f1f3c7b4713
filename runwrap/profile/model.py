"""What a profile says, once read and checked: `Profile` and its `CredentialSpec`s.

Plain values, no I/O: `profile.reader` makes them from YAML, `profile.cache` from its JSON entries,
and the exec path, the API and `runwrap run` (one item named on the command line) read them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from runwrap.credential import Query
from runwrap.profile.files import DEFAULT_MODE, template_fields
from runwrap.record import FrozenRecord

SUFFIXES = (".yaml", ".yml")


class FileSpec(FrozenRecord):
    """One `files:` entry: the whole of one field, or a template of fields; its mode; a path or not."""

    __slots__ = ("field", "line", "mode", "path", "template")
    template: str | None  # checked by profile.files.parse_template
    field: str | None  # exactly one of template and field
    mode: int
    path: bool  # True: a file in a private folder on tmpfs; False: /dev/fd/N of a memfd
    line: int

    def __init__(self, *, template: str | None = None, field: str | None = None, mode: int = DEFAULT_MODE,
                 path: bool = False, line: int = 0) -> None:
        if (template is None) == (field is None):
            raise ValueError("a file is made of exactly one of a template or a field")
        self._init(template=template, field=field, mode=mode, path=path, line=line)

    @property
    def fields(self) -> tuple[str, ...]:
        """The item's fields this file needs."""
        return (self.field,) if self.field is not None else template_fields(self.template or "")


class CredentialSpec(FrozenRecord):
    __slots__ = ("env", "files", "line", "query")
    query: Query
    env: Mapping[str, str]
    line: int
    files: Mapping[str, FileSpec]

    def __init__(self, query: Query, env: Mapping[str, str], line: int,
                 files: Mapping[str, FileSpec] | None = None) -> None:
        # env: VAR -> field name (one of FIELDS); line: 1-based line in the file; files: VAR -> file
        self._init(query=query, env=env, line=line, files={} if files is None else files)

    @property
    def fields(self) -> list[str]:
        """Every field of the item this entry needs, for its variables and its files, sorted."""
        return sorted({*self.env.values(), *(name for spec in self.files.values() for name in spec.fields)})


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
