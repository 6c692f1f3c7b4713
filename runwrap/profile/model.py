"""What a profile says, once read and checked: `Profile` and its `CredentialSpec`s.

Plain values, no I/O: `profile.reader` makes them from YAML, `profile.cache` from its JSON entries,
and the exec path, the API and `runwrap run` (one item named on the command line) read them.
"""

from __future__ import annotations

import os

from runwrap.credential import Query
from runwrap.record import FrozenRecord

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Mapping

SUFFIXES = (".yaml", ".yml")

DEFAULT_MODE = 0o400  # a `files:` entry's mode when it names none (profile.files checks modes)

# What a running child does when the listener pushes a change of its credentials (docs/rotation.md).
ON_CHANGE = ("none", "restart", "exit", "signal:NAME")
# Signals a change may be announced with: any the child can catch, not the ones that cannot be
# caught or that mean something else to a supervisor (job control, SIGCHLD).
_NOT_ANNOUNCING = {"SIGKILL", "SIGSTOP", "SIGCHLD", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU"}


def parse_on_change(text: str) -> str:
    """`restart`, `exit`, `none` or `signal:NAME` (NAME as HUP or SIGHUP, any case) in the form the
    rest of runwrap reads (`signal:HUP`); ValueError saying what is accepted."""
    word = text.strip()
    if word in ("none", "restart", "exit"):
        return word
    kind, colon, name = word.partition(":")
    if kind == "signal" and colon:
        import signal  # only here: signal.py builds its enums at import, off the exec path otherwise

        full = name.strip().upper()
        full = full if full.startswith("SIG") else f"SIG{full}"
        if full in signal.Signals.__members__ and full not in _NOT_ANNOUNCING and not full.startswith("SIGRT"):
            return f"signal:{full[3:]}"
        raise ValueError(f"{name.strip() or 'nothing'} is not a signal on_change can send"
                         " — name one such as HUP, USR1 or USR2")
    raise ValueError(f"{word or 'nothing'} is not an on_change mode — use one of: {', '.join(ON_CHANGE)}")


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
        if self.field is not None:
            return (self.field,)
        from runwrap.profile.files import template_fields  # only a template: most launches make no file

        return template_fields(self.template or "")


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
        "mask_hex",
        "name",
        "on_change",
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
    mask_hex: bool  # also each value's hex forms (xxd, od): off by default, it slows masking (README)
    timeout: float | None
    kill_grace: float | None
    on_change: str  # parse_on_change's form: none, restart, exit or signal:NAME

    def __init__(self, *, name: str, path: str | os.PathLike[str], description: str, connection: str | None,
                 credentials: tuple[CredentialSpec, ...], inherit: tuple[str, ...] | None, set: Mapping[str, str],
                 mask: bool, timeout: float | None, kill_grace: float | None, mask_hex: bool = False,
                 on_change: str = "none") -> None:
        self._init(name=name, path=path, description=description, connection=connection, credentials=credentials,
                   inherit=inherit, set=set, mask=mask, mask_hex=mask_hex, timeout=timeout, kill_grace=kill_grace,
                   on_change=on_change)


def name_of(path: str | os.PathLike[str]) -> str:
    name = os.path.basename(path)
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name
