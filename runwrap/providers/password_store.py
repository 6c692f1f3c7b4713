"""The `pass` provider: the standard Unix password store (passwordstore.org), read through `pass show`.

Entries are found by the first part of their path that is a domain name: `github.com`,
`web/github.com` and `github.com/alice` all serve `github.com` (and so `api.github.com`). Several
entries for one host are ambiguous; ask for one by id. An entry's id is its path with `/` written
as `:` (`web:github.com`, `github.com:alice`), since ids cannot hold a slash.

An entry's first line is the password; `login:`, `username:` or `user:` gives the username, `url:`
the uri, an `otpauth://` line the TOTP seed; every other line is notes. Every `key: value` line is
also a field by its key (`api_key: ...` serves a profile's `STRIPE_KEY: api_key`).

`pass show` runs with a scrubbed environment (PATH, HOME, GNUPGHOME, the store, a C locale) and
gpg in loopback pinentry mode reading the passphrase from its stdin: a listener must not block on a
terminal or pop a dialog on someone's desktop in the middle of a request. When a `prompt` is given
(a terminal at `listen`) and the store's key needs a passphrase, it is asked for once at start,
checked, and kept as a `Secret` that each `pass show` reads on stdin, never argv. Without one, a key
whose passphrase the gpg-agent does not hold fails at once with an error that says how to unlock
it. Decrypted output is wiped once parsed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from runwrap.credential import Item, Query, is_field_name, normalize_domain
from runwrap.errors import NotFound, ProviderError, RunwrapError
from runwrap.providers.base import Provider, choose
from runwrap.secret import Secret, wipe_bytes

TIMEOUT = 30.0
# Environment variables `pass show` may see; everything else of the listener's stays out.
KEEP_ENV = ("PATH", "HOME", "GNUPGHOME", "XDG_RUNTIME_DIR", "USER", "LOGNAME")
USER_KEYS = ("login", "username", "user")
# gpg reads the passphrase (if any) from stdin and reports through status lines on stderr.
GPG_OPTS = "--pinentry-mode loopback --passphrase-fd 0 --status-fd 2"


class PassProvider(Provider):
    """Reads a `pass` store; see the module docstring for how entries are named and parsed."""

    name = "pass"
    options = {"store": "the password store folder (default $PASSWORD_STORE_DIR, else ~/.password-store)"}

    @classmethod
    def unusable_reason(cls) -> str | None:
        missing = [tool for tool in ("pass", "gpg") if shutil.which(tool) is None]
        if missing:
            return f"{' and '.join(missing)} not found on PATH: install pass and gnupg (apt-get install pass)"
        return None

    @classmethod
    def needs(cls) -> str | None:
        store = Path(os.environ.get("PASSWORD_STORE_DIR") or "~/.password-store").expanduser()
        return None if store.is_dir() else f"--provider-option store=PATH (no password store at {store})"

    def configure(self) -> None:
        store = self.option_values.get("store") or os.environ.get("PASSWORD_STORE_DIR") or "~/.password-store"
        self.store = Path(store).expanduser()
        if not self.store.is_dir():
            raise ProviderError(f"provider pass: no password store at {self.store} (set the store option)")
        self._pass = shutil.which("pass") or "pass"
        self._passphrase: Secret | None = None
        if self.prompt is not None:
            self._unlock(self.prompt)

    def _unlock(self, prompt: Callable[[str], str]) -> None:
        """Ask for the key's passphrase once, if reading the first entry shows it is needed."""
        entries = self.entries()
        if not entries:
            return
        try:
            wipe_bytes(self._show(entries[0]))
            return
        except NeedsPassphrase:
            pass
        self._passphrase = Secret(prompt(f"Passphrase of the gpg key for the password store {self.store}: "))
        try:
            wipe_bytes(self._show(entries[0]))
        except NeedsPassphrase:
            self.close()
            raise ProviderError("provider pass: that passphrase does not unlock the store's key") from None

    def entries(self) -> list[str]:
        """Every entry name in the store, sorted (`web/github.com`)."""
        return sorted(_walk(self.store))

    def lookup(self, query: Query) -> Item:
        entry = choose(query, self.entries(), id_of=entry_id, hosts_of=entry_hosts, source="pass")
        out = self._show(entry)
        try:
            return parse_entry(entry, out)
        finally:
            wipe_bytes(out)

    def change_signal(self, query: Query, served_id: str) -> str | None:
        """The entry file's stamp (mtime, size, inode) and its folder's mtime, which changes when an
        entry beside it is added or removed; `pass insert -f` and `pass edit` change the first."""
        entry = self.store / (served_id.replace(":", "/") + ".gpg")
        try:
            info, folder = entry.stat(), entry.parent.stat()
        except OSError:
            return None  # gone, or never where we thought: the full lookup says what happened
        return f"{info.st_mtime_ns}:{info.st_size}:{info.st_ino}:{folder.st_mtime_ns}"

    def close(self) -> None:
        if self._passphrase is not None:
            self._passphrase.wipe()
            self._passphrase = None

    def _env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
        env.update(PASSWORD_STORE_DIR=str(self.store), PASSWORD_STORE_GPG_OPTS=GPG_OPTS, LC_ALL="C")
        return env

    def _show(self, entry: str) -> bytes:
        passphrase = self._passphrase.reveal_bytes() if self._passphrase else b""
        try:
            proc = subprocess.run(
                [self._pass, "show", "--", entry],
                env=self._env(),
                input=passphrase,
                capture_output=True,
                timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise ProviderError(f"provider pass: `pass show {entry}` took longer than {TIMEOUT:g}s") from None
        except OSError as exc:
            raise ProviderError(f"provider pass: cannot run pass: {exc.strerror}") from None
        finally:
            wipe_bytes(passphrase)
        if proc.returncode == 0:
            return proc.stdout
        wipe_bytes(proc.stdout)
        raise self._error(entry, proc.stderr.decode("utf-8", "replace"))

    def _error(self, entry: str, stderr: str) -> RunwrapError:
        """Translate what pass and gpg said into what the user should do."""
        if "is not in the password store" in stderr:
            return NotFound(f"pass: no entry {entry}")  # removed between listing and reading
        if "DECRYPTION_FAILED" in stderr:
            # gpg says "No secret key" both when the key is missing and when its passphrase is
            # missing or wrong; whether the keyring holds a recipient's secret key tells them apart.
            lines = stderr.splitlines()
            recipients = [line.split()[2] for line in lines if line.startswith("[GNUPG:] ENC_TO ")]
            if any(self._has_secret_key(keyid) for keyid in recipients):
                return NeedsPassphrase(
                    f"provider pass: the gpg key for {entry} needs its passphrase"
                    + (" and it was not accepted" if self._passphrase else "")
                    + "; start `runwrap listen --provider pass` in a terminal to be asked for it, or unlock "
                    "the key in the gpg-agent first (for example `pass show` any entry in a terminal)"
                )
            return ProviderError(f"provider pass: this keyring has no secret key that can decrypt {entry}")
        messages = [line.strip() for line in stderr.splitlines() if line.strip() and "[GNUPG:]" not in line]
        first = messages[0] if messages else "no message"
        return ProviderError(f"provider pass: `pass show {entry}` failed: {first[:200]}")

    def _has_secret_key(self, keyid: str) -> bool:
        proc = subprocess.run(
            ["gpg", "--batch", "--list-secret-keys", "--with-colons", "--", keyid],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
        )
        return proc.returncode == 0


class NeedsPassphrase(ProviderError):
    """The store's gpg key is protected and the gpg-agent does not hold its passphrase. Unlock it
    once where the listener runs (`pass show` any entry), or start the listener in a terminal."""


def _walk(store: Path) -> Iterator[str]:
    for root, dirs, files in os.walk(store):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git, .extensions
        for name in files:
            if name.endswith(".gpg") and not name.startswith("."):
                yield str((Path(root) / name[: -len(".gpg")]).relative_to(store))


def entry_id(entry: str) -> str:
    return entry.replace("/", ":")


def entry_hosts(entry: str) -> list[str]:
    """The first path part that is a domain name (has a dot and is a valid host), if any."""
    for part in entry.split("/"):
        if "." not in part.strip("."):
            continue
        try:
            return [normalize_domain(part)]
        except ValueError:
            continue
    return []


def parse_entry(entry: str, out: bytes) -> Item:
    """An Item from the decrypted text of `entry` (see the module docstring for the format)."""
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    password = lines[0] if lines else ""
    username = uri = ""
    seed: str | None = None
    notes: list[str] = []
    extra: dict[str, Secret] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        named = key.strip()
        if sep and (value[:1] in (" ", "\t") or not value) and is_field_name(named) and named not in extra:
            extra[named] = Secret(value.strip())
        key = named.lower()
        if line.strip().lower().startswith("otpauth://") and seed is None:
            seed = line.strip()
        elif sep and key in USER_KEYS and not username:
            username = value.strip()
        elif sep and key == "url" and not uri:
            uri = value.strip()
        else:
            notes.append(line)
    hosts = entry_hosts(entry)
    text = "\n".join(notes).strip("\n")
    return Item(
        credential_id=entry_id(entry),
        domain=hosts[0] if hosts else "",
        username=username,
        password=Secret(password),
        totp_secret=Secret(seed) if seed else None,
        uri=uri,
        notes=Secret(text) if text else None,
        extra=extra,
    )

