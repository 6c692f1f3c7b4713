"""The `keepass` provider: a KeePass database (KDBX 4, as KeePassXC writes it) read through pykeepass.

Install with `pip install 'runwrap[keepass]'`. Options: `database` (the .kdbx file), `keyfile`,
and `password_env` (the name of an environment variable of the listener that holds the master
password, for unattended listeners). Otherwise the password is asked for at `listen` through the
listener's prompt. The database is opened at start; a wrong password fails there, not at the first
request. When it can be opened again without asking (`password_env`, or a key file alone), a file
changed on disk (KeePassXC saved it) is read again at the next lookup, and its stamp is the
provider's `change_signal` for rotation; a prompted password is not kept, so that database is what
it was at start until the listener is restarted.

Entries are matched by the host of their URL, and of KeePassXC's extra `KP2A_URL*` attributes;
entries in the recycle bin are ignored. The id of an entry is its UUID. The TOTP seed is the
entry's `otp` attribute (KeePassXC's otpauth:// URI) or the older `TOTP Seed` attribute.

What cannot be wiped: pykeepass holds the decrypted database as Python strings inside an lxml tree;
`close()` drops it and the master password, but the memory is freed, not overwritten.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runwrap.credential import Item, Query, host_of, is_field_name
from runwrap.errors import ProviderError
from runwrap.providers.base import Provider, choose, item_domain
from runwrap.secret import Secret

EXTRA_URL_PREFIX = "KP2A_URL"
KDBX_SIGNATURE = bytes.fromhex("03d9a29a67fb4bb5")
LEGACY_TOTP_ATTRIBUTE = "TOTP Seed"  # KeePassXC before 2.6; the `otp` attribute is read as entry.otp


class KeePassProvider(Provider):
    """Reads one KDBX file, opened at start; see the module docstring for options and matching."""

    name = "keepass"
    options = {
        "database": "the .kdbx file",
        "keyfile": "a key file, if the database uses one",
        "password_env": "name of an environment variable holding the master password (else it is asked for)",
    }

    @classmethod
    def unusable_reason(cls) -> str | None:
        if importlib.util.find_spec("pykeepass") is None:
            return "pykeepass is not installed: pip install 'runwrap[keepass]'"
        return None

    @classmethod
    def needs(cls) -> str | None:
        return "--provider-option database=PATH.kdbx (and password_env=VAR, or a terminal to ask on)"

    def configure(self) -> None:
        database = self.option_values.get("database")
        if not database:
            raise ProviderError("provider keepass needs --provider-option database=PATH.kdbx")
        self.database = Path(database).expanduser()
        if not self.database.is_file():
            raise ProviderError(f"provider keepass: no database file at {self.database}")
        keyfile = self.option_values.get("keyfile")
        if keyfile and not Path(keyfile).expanduser().is_file():
            raise ProviderError(f"provider keepass: no key file at {keyfile}")
        self._lock = threading.Lock()
        self._key_path = str(Path(keyfile).expanduser()) if keyfile else None
        # Opened again when the file changes only if that asks nobody: the password in the environment.
        self._reopenable = bool(self.option_values.get("password_env"))
        password = self._password(self.prompt, has_keyfile=bool(keyfile))
        self._reopenable = self._reopenable or password is None  # a key file alone opens it
        self._load(password)

    def _load(self, password: Secret | None) -> None:
        try:
            stamp = _stamp(self.database)  # before reading: a save meanwhile is seen next time
            self._kp: Any = _open(self.database, password, self._key_path)
            self._stamp = stamp
        finally:
            if password is not None:
                password.wipe()
        # The file is read at open, so its index is too: (id, hosts, entry) without an XPath query per lookup.
        self._rows = [(_entry_id(e), [host_of(u) for u in _entry_urls(e)], e) for e in self._entries()]

    def change_signal(self, query: Query, served_id: str) -> str | None:
        """The database file's stamp, when a change to it is read again (see the module docstring)."""
        return _stamp(self.database) if self._reopenable else None

    def _password(self, prompt: Callable[[str], str] | None, *, has_keyfile: bool) -> Secret | None:
        variable = self.option_values.get("password_env")
        if variable:
            value = os.environ.get(variable)
            if value is None:
                raise ProviderError(f"provider keepass: the environment variable {variable} is not set")
            return Secret(value)
        if prompt is not None:
            suffix = " (empty if the key file alone unlocks it)" if has_keyfile else ""
            value = prompt(f"Master password of {self.database}{suffix}: ")
            return Secret(value) if value or not has_keyfile else None
        if has_keyfile:
            return None
        raise ProviderError(
            "provider keepass needs the master password: start `runwrap listen` in a terminal to be asked "
            "for it, or set --provider-option password_env=VARIABLE"
        )

    def lookup(self, query: Query) -> Item:
        with self._lock:
            if self._kp is None:
                raise ProviderError("provider keepass is closed")
            if self._reopenable and _stamp(self.database) != self._stamp:
                self._load(self._password(None, has_keyfile=self._key_path is not None))
            row = choose(query, self._rows, id_of=lambda r: r[0], hosts_of=lambda r: r[1], source="keepass")
            return _item(row[2], query)

    def _entries(self) -> list[Any]:
        kp = self._kp
        binned: set[Any] = set()
        if kp.recyclebin_group is not None:
            binned = {e.uuid for e in kp.find_entries(group=kp.recyclebin_group, recursive=True)}
        return [e for e in kp.entries if e.uuid not in binned]

    def close(self) -> None:
        with self._lock:
            self._kp = None
            self._rows = []


def _stamp(path: Path) -> str:
    try:
        info = path.stat()
    except OSError as exc:
        raise ProviderError(f"provider keepass: cannot read {path}: {exc.strerror}") from None
    return f"{info.st_mtime_ns}:{info.st_size}:{info.st_ino}"


def _open(path: Path, password: Secret | None, keyfile: str | None) -> Any:
    """Open the database; pykeepass's exceptions become ProviderErrors here and only here."""
    from pykeepass import PyKeePass
    from pykeepass.exceptions import CredentialsError, HeaderChecksumError, PayloadChecksumError

    with path.open("rb") as f:
        if f.read(8) != KDBX_SIGNATURE:
            raise ProviderError(f"provider keepass: {path} is not a KeePass 2 database (.kdbx)")
    try:
        text = password.reveal() if password is not None else None
        kp = PyKeePass(str(path), password=text, keyfile=keyfile)
    except CredentialsError:
        raise ProviderError(f"provider keepass: wrong master password or key file for {path}") from None
    except (HeaderChecksumError, PayloadChecksumError):
        raise ProviderError(f"provider keepass: {path} is damaged (checksum mismatch)") from None
    except Exception as exc:  # construct/lxml raise many kinds; none of them may carry the password
        kind = type(exc).__name__
        raise ProviderError(f"provider keepass: cannot read {path} as a KeePass database ({kind})") from None
    # Nothing is ever saved, so the master password need not stay on the object.
    for attr in ("password", "transformed_key"):
        try:
            setattr(kp, attr, None)
        except AttributeError:
            pass
    return kp


def _entry_id(entry: Any) -> str:
    return str(entry.uuid)


def _entry_urls(entry: Any) -> list[str]:
    urls = [entry.url or ""]
    extra = entry.custom_properties.items()
    urls += [value or "" for key, value in extra if key.startswith(EXTRA_URL_PREFIX)]
    return [url for url in urls if url.strip()]


def _item(entry: Any, query: Query) -> Item:
    seed = entry.otp or entry.get_custom_property(LEGACY_TOTP_ATTRIBUTE)
    return Item(
        credential_id=_entry_id(entry),
        domain=item_domain(_entry_urls(entry), query),
        username=entry.username or "",
        password=Secret(entry.password or ""),
        totp_secret=Secret(seed) if seed else None,
        uri=entry.url or "",
        notes=Secret(entry.notes) if entry.notes else None,
        # Custom string fields, by name (KeePassXC's own KP2A_URL*/TOTP attributes included).
        extra={key: Secret(value) for key, value in entry.custom_properties.items()
               if value and is_field_name(key)},
    )
