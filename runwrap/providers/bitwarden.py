"""The `bitwarden` provider: a Bitwarden (or Vaultwarden) vault through the official `bw` CLI.

This is the only module that talks to `bw`. Install it with `npm install -g @bitwarden/cli` and log
in once (`bw login`) as the user who runs the listener; runwrap never logs in.

The session: the listener's own `BW_SESSION` if set (`export BW_SESSION=$(bw unlock --raw)`);
otherwise, when the vault is locked and `listen` has a terminal, the master password is asked for
once and handed to `bw unlock --raw --passwordenv` through the child's environment, never argv. A
logged-out or locked vault without either gives a ProviderError that says which command to run.

Lookups: starting `bw` costs a Node start-up (about a second) per call, so the provider starts one
`bw serve` at `listen`, bound to a Unix socket in a private 0700 folder, and asks it over HTTP (a few
milliseconds a lookup). `bw serve` has no authentication of its own: on a TCP port every local user
could read the unlocked vault, which is why the socket is the default; `serve=tcp` binds 127.0.0.1 on
a random port instead (for `bw` builds without Unix-socket support), `serve=off` runs `bw get item`
/ `bw list items --search` per lookup. If `bw serve` does not come up, the provider falls back to
those commands and logs why. `close()` stops `bw serve` and wipes the session.

Matching: login items, not in the trash, by the hosts of `login.uris` (URIs whose match detection is
"never" are skipped), as `runwrap.credential.host_matches` says; by the item's id. `login.totp`
becomes `Item.totp_secret`; the listener sends only the current code.

The JSON shapes read here are those of the CLI's `--response` output and of `bw serve`:
`{"success": true, "data": {"object": "list", "data": [item, ...]}}`, `{"success": true, "data":
item}`, `{"success": false, "message": "Not found."}`; an item is `{"object": "item", "id",
"type": 1, "name", "notes", "deletedDate", "login": {"uris": [{"match", "uri"}], "username",
"password", "totp"}}` (apps/cli `CipherResponse`, `LoginResponse`, `LoginUriExport`).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from runwrap.credential import Item, Query, is_field_name
from runwrap.errors import NotFound, ProviderError, RunwrapError
from runwrap.providers.base import Provider, choose, item_domain
from runwrap.secret import Secret, wipe_bytes

log = logging.getLogger("runwrap")

LOGIN = 1  # CipherType.Login
MATCH_NEVER = 5  # UriMatchStrategy.Never
DEFAULT_TIMEOUT = 30.0
SERVE_START_TIMEOUT = 30.0
# What `bw` may see of the listener's environment; BW_SESSION is added by us, never inherited.
KEEP_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "BITWARDENCLI_APPDATA_DIR",
    "NODE_EXTRA_CA_CERTS",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
)
PASSWORD_VARIABLE = "RUNWRAP_BW_PASSWORD"  # noqa: S105 (a variable name, not a value)


class BitwardenProvider(Provider):
    """Reads a Bitwarden vault through `bw`; see the module docstring."""

    name = "bitwarden"
    options = {
        "serve": "unix (default): a private `bw serve` on a Unix socket; tcp: on 127.0.0.1; off: `bw get` per lookup",
        "timeout": f"seconds one `bw` call may take (default {DEFAULT_TIMEOUT:g})",
    }

    @classmethod
    def unusable_reason(cls) -> str | None:
        if shutil.which("bw") is None:
            return "the Bitwarden CLI `bw` is not on PATH: npm install -g @bitwarden/cli, then bw login"
        return None

    def configure(self) -> None:
        mode = self.option_values.get("serve", "unix")
        if mode not in ("unix", "tcp", "off"):
            raise ProviderError(f"provider bitwarden: serve must be unix, tcp or off, not {mode!r}")
        try:
            self.timeout = float(self.option_values.get("timeout", DEFAULT_TIMEOUT))
        except ValueError:
            raise ProviderError("provider bitwarden: the timeout option must be a number of seconds") from None
        bw = shutil.which("bw")
        if bw is None:
            raise ProviderError(f"provider bitwarden: {self.unusable_reason()}")
        self.bw = bw
        self._lock = threading.Lock()
        self._session: Secret | None = Secret(os.environ["BW_SESSION"]) if os.environ.get("BW_SESSION") else None
        self._serve: _Serve | None = None
        self._closed = False
        try:
            self._ensure_unlocked(self.prompt)
            if mode != "off":
                self._serve = self._start_serve(mode)
        except BaseException:
            self.close()
            raise

    @property
    def transport(self) -> str:
        """How lookups are made now: `serve-unix`, `serve-tcp` or `cli`."""
        return f"serve-{self._serve.mode}" if self._serve else "cli"

    # The session

    def status(self) -> str:
        """`unauthenticated`, `locked` or `unlocked`, as `bw status` says with our session."""
        data = _data(self._cli(["status"]), "bw status")
        template = data.get("template", data) if isinstance(data, dict) else {}
        return str(template.get("status", "unknown"))

    def _ensure_unlocked(self, prompt: Callable[[str], str] | None) -> None:
        state = self.status()
        if state == "unlocked":
            return
        if state == "unauthenticated":
            raise ProviderError("provider bitwarden: bw is not logged in; run `bw login` as this user, then retry")
        if prompt is None:
            raise ProviderError(
                "provider bitwarden: the vault is locked; export BW_SESSION=$(bw unlock --raw) before "
                "`runwrap listen`, or start it in a terminal to be asked for the master password"
            )
        with Secret(prompt("Bitwarden master password: ")) as password:
            out = self._cli(["unlock", "--raw", "--passwordenv", PASSWORD_VARIABLE], password=password)
        if out[0] != 0 or not out[1].strip():
            wipe_bytes(out[1])
            raise ProviderError("provider bitwarden: bw unlock failed: the master password was not accepted")
        if self._session is not None:
            self._session.wipe()
        self._session = Secret.from_buffer(bytearray(out[1].strip()))
        wipe_bytes(out[1])

    # Transports

    def _env(self, password: Secret | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
        env["BW_NOINTERACTION"] = "true"
        if self._session is not None:
            env["BW_SESSION"] = self._session.reveal()
        if password is not None:
            env[PASSWORD_VARIABLE] = password.reveal()
        return env

    def _cli(self, args: list[str], *, password: Secret | None = None) -> tuple[int, bytes]:
        """Run `bw ARGS --response` (`--raw` output for unlock); (status, stdout). Stdout is the caller's to wipe."""
        argv = [self.bw, *args] if "--raw" in args else [self.bw, *args, "--response"]
        try:
            proc = subprocess.run(
                argv, env=self._env(password), stdin=subprocess.DEVNULL, capture_output=True, timeout=self.timeout
            )
        except subprocess.TimeoutExpired:
            raise ProviderError(f"provider bitwarden: `bw {args[0]}` took longer than {self.timeout:g}s") from None
        except OSError as exc:
            raise ProviderError(f"provider bitwarden: cannot run bw: {exc.strerror}") from None
        return proc.returncode, proc.stdout

    def _start_serve(self, mode: str) -> _Serve | None:
        try:
            return _Serve.start(self.bw, mode, self._env(), SERVE_START_TIMEOUT)
        except ProviderError as exc:
            log.warning("bitwarden: bw serve did not start (%s); each lookup runs bw instead", exc)
            return None

    def _request(self, path: str, cli_args: list[str]) -> object:
        serve = self._serve
        if serve is not None:
            return _data(serve.get(path, self.timeout), "bw serve")
        return _data(self._cli(cli_args), f"bw {cli_args[0]}")

    # Lookups

    def lookup(self, query: Query) -> Item:
        with self._lock:
            if self._closed:
                raise ProviderError("provider bitwarden is closed")
        if query.id is not None:
            data = self._request(f"/object/item/{quote(query.id, safe='')}", ["get", "item", query.id])
            if not isinstance(data, dict) or data.get("id") != query.id:
                raise NotFound(f"bitwarden: no item with id {query.id}")
            return item_from_json(data, query)
        term = search_term(str(query.domain))
        data = self._request(f"/list/object/items?search={quote(term, safe='')}", ["list", "items", "--search", term])
        return pick(query, data)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            serve, self._serve = self._serve, None
            if self._session is not None:
                self._session.wipe()
                self._session = None
        if serve is not None:
            serve.stop()


def search_term(domain: str) -> str:
    """What to ask bw's substring search for: the last two labels, so parent hosts are found too."""
    return ".".join(domain.split(".")[-2:])


def pick(query: Query, data: object) -> Item:
    """The one item of a `list items` answer that `query` names (see `runwrap.providers.base.choose`)."""
    if isinstance(data, dict) and data.get("object") == "list":
        data = data.get("data")
    if not isinstance(data, list):
        raise ProviderError("provider bitwarden: bw answered with something that is not a list of items")
    logins = [i for i in data if isinstance(i, dict) and i.get("type") == LOGIN and not i.get("deletedDate")]
    chosen = choose(query, logins, id_of=lambda i: str(i.get("id")), hosts_of=item_uris, source="bitwarden")
    return item_from_json(chosen, query)


def item_uris(item: dict[str, Any]) -> list[str]:
    login = item.get("login") or {}
    uris = login.get("uris") or []
    return [u["uri"] for u in uris if isinstance(u, dict) and u.get("uri") and u.get("match") != MATCH_NEVER]


def item_from_json(item: dict[str, Any], query: Query) -> Item:
    """An Item from a CipherResponse object."""
    login = item.get("login") or {}
    uris = item_uris(item)
    return Item(
        credential_id=str(item.get("id", "")),
        domain=item_domain(uris, query),
        username=login.get("username") or "",
        password=Secret(login.get("password") or ""),
        totp_secret=Secret(login["totp"]) if login.get("totp") else None,
        uri=uris[0] if uris else "",
        notes=Secret(item["notes"]) if item.get("notes") else None,
        extra=custom_fields(item),
    )


def custom_fields(item: dict[str, Any]) -> dict[str, Secret]:
    """The item's custom fields by name: text (type 0) and hidden (1); booleans (2) as true/false.
    Linked fields (3) only point at a standard field and carry no value of their own."""
    out: dict[str, Secret] = {}
    for field in item.get("fields") or []:
        if not isinstance(field, dict):
            continue
        name, value, kind = field.get("name"), field.get("value"), field.get("type")
        if kind in (0, 1, 2) and isinstance(value, str) and value and is_field_name(name) and name not in out:
            out[str(name)] = Secret(value)
    return out


def _data(answer: tuple[int, bytes], what: str) -> object:
    """The `data` of a `{"success": ...}` answer, or the error it stands for. Wipes the raw bytes."""
    status, raw = answer
    try:
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ProviderError(
                f"provider bitwarden: {what} exited with status {status} without a JSON answer"
            ) from None
        if not isinstance(parsed, dict) or "success" not in parsed:
            raise ProviderError(f"provider bitwarden: {what} answered in an unknown format")
        if parsed["success"]:
            return parsed.get("data")
        raise _failure(str(parsed.get("message") or "no message"))
    finally:
        wipe_bytes(raw)


def _failure(message: str) -> RunwrapError:
    """bw's error messages, as runwrap errors that say what to do."""
    if message.startswith("Not found"):
        return NotFound("bitwarden: no such item")
    if "locked" in message.lower():
        return ProviderError("provider bitwarden: the vault is locked; restart `runwrap listen` to unlock it")
    if "not logged in" in message.lower():
        return ProviderError("provider bitwarden: bw is not logged in; run `bw login` as this user, then restart")
    return ProviderError(f"provider bitwarden: bw said: {message.splitlines()[0][:200]}")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _Serve:
    """A `bw serve` child of ours: started with our session, asked over HTTP, stopped at close."""

    def __init__(self, proc: subprocess.Popen[bytes], mode: str, folder: str, address: str | int) -> None:
        self.proc, self.mode, self.folder, self.address = proc, mode, folder, address

    @classmethod
    def start(cls, bw: str, mode: str, env: dict[str, str], deadline_s: float) -> _Serve:
        folder = tempfile.mkdtemp(prefix="runwrap-bw-")  # 0700
        if mode == "unix":
            address: str | int = os.path.join(folder, "bw.sock")
            argv = [bw, "serve", "--hostname", f"unix://{address}"]
        else:
            address = _free_port()
            argv = [bw, "serve", "--hostname", "127.0.0.1", "--port", str(address)]
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # the terminal's Ctrl-C is the listener's to handle
            preexec_fn=_die_with_parent,
        )
        serve = cls(proc, mode, folder, address)
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                serve.stop()
                raise ProviderError(f"bw serve exited with status {proc.returncode}")
            try:
                data = _data(serve.get("/status", 2.0), "bw serve")
            except (ProviderError, OSError):
                time.sleep(0.05)  # polling for readiness, bounded by the deadline
                continue
            template = data.get("template", {}) if isinstance(data, dict) else {}
            if template.get("status") == "unlocked":
                return serve
            serve.stop()
            raise ProviderError(f"bw serve reports the vault {template.get('status', 'in an unknown state')}")
        serve.stop()
        raise ProviderError(f"bw serve did not answer within {deadline_s:g}s")

    def get(self, path: str, timeout: float) -> tuple[int, bytes]:
        if isinstance(self.address, int):
            conn: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", self.address, timeout=timeout)
        else:
            conn = _UnixHTTPConnection(self.address, timeout)
        try:
            conn.request("GET", path, headers={"Accept": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        except OSError as exc:
            if self.proc.poll() is not None:
                raise ProviderError("provider bitwarden: bw serve has stopped; restart `runwrap listen`") from None
            raise ProviderError(f"provider bitwarden: bw serve did not answer: {exc}") from None
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # If the listener is killed outright, bw serve (an unlocked vault on a socket) goes with it.
    from runwrap.linux import PR_SET_PDEATHSIG, prctl

    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
