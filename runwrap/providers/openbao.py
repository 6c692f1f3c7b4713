"""The `openbao` provider (also `vault`): KV items and dynamic secrets from an OpenBao or Vault server.

    runwrap listen --provider openbao --provider-option address=https://bao.example.com:8200 \\
        --provider-option role_id_file=/etc/runwrap/role_id --provider-option secret_id_file=/etc/runwrap/secret_id

Items. A domain query `D` reads the KV item `<mount>/<prefix>D`, then its parent domains
(`api.github.com`, then `github.com`; never a bare top-level label). An id query is a path exactly as
`bao kv get` or `bao read` takes it: like the CLI, the provider asks `sys/internal/ui/mounts/PATH`
which mount holds it, reads a KV v2 item at `<mount>/data/<rest>` (`PATH@N`: version N) and anything
else as it is (`kv1/team/deploy`, `database/creds/app`). The keys `username`, `password`, `uri`,
`notes` and `totp` (an otpauth:// URI or a base32 seed) fill the standard fields; every key, those
included, is also in `Item.extra`. An item's credential_id is its path, with `@VERSION` on KV v2.

Dynamic secrets. A read that returns a lease gives an item whose `lease` the listener renews with
`renew_lease` and ends with `revoke_lease`; a renewal the server cuts short (the lease's max TTL)
raises `LeaseExhausted` with the seconds left. Leases belong to the token that read them: when that
token expires or is revoked, the server revokes them too (docs/teams.md).

The listener's token comes from `token_file`, an AppRole login (`role_id_file` + `secret_id_file`),
or `BAO_TOKEN`/`VAULT_TOKEN`. At start the server's seal status is checked and the token looked up
(or logged in for). A background thread renews it at two thirds of its TTL, because a listener can
sit idle for longer than a token lives and a check before each request would find it dead; once
renewal can extend it no further, the thread logs in again with AppRole. A request that finds the
token expired anyway (a laptop that slept) logs in first, and a 403 is checked against
`auth/token/lookup-self` to tell a refused token from a path the policy does not allow.

HTTP is the standard library's `http.client` over a few keep-alive connections (no new dependency;
`hvac` would bring `requests` and `urllib3`). Tokens, secret ids and lease ids are `Secret`s and no
message names one; what cannot be wiped: `json.loads` copies of a response and http.client's header
buffers are Python objects that live until they are collected.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import ssl
import threading
import time
from typing import Any
from urllib.parse import quote, urlsplit

from runwrap.credential import Item, Lease, Query, host_of, normalize_domain
from runwrap.errors import LeaseExhausted, NotFound, ProviderError, RunwrapError
from runwrap.providers.base import Provider
from runwrap.secret import Secret, wipe_bytes

log = logging.getLogger("runwrap")

TIMEOUT = 10.0  # seconds for a connection or an answer; a listener must not hang on a dead server
MAX_BODY = 4 << 20  # no secret is this large; anything larger is not a Vault answer
MAX_IDLE = 8  # keep-alive connections kept for reuse
MOUNT_CACHE = 60.0  # seconds a mount's KV version is trusted before it is asked again
# JSON string bytes that can be copied into a request body as they are (no escaping needed).
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\")}


_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def _clock() -> float:
    """Seconds that keep counting while the machine sleeps, as a token's TTL does."""
    return time.clock_gettime(_CLOCK)


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def _json_body(**fields: Secret | int) -> bytearray:
    """A JSON object of `fields`, its secrets copied from their buffers into one buffer of the exact size
    (a growing bytearray would leave copies behind in freed memory). The caller wipes it."""
    pieces: list[bytes | bytearray] = []
    escaped: list[bytes] = []  # a value with quotes or control bytes goes through json.dumps, wiped after
    for key, value in fields.items():
        pieces += [b"," if pieces else b"{", json.dumps(key).encode(), b":"]
        if isinstance(value, int):
            pieces.append(str(value).encode())
        elif all(byte in _PLAIN for byte in value.buffer):
            pieces += [b'"', value.buffer, b'"']
        else:
            escaped.append(json.dumps(value.reveal()).encode())
            pieces.append(escaped[-1])
    pieces.append(b"}")
    body = bytearray(sum(len(piece) for piece in pieces))
    at = 0
    for piece in pieces:
        body[at:at + len(piece)] = piece
        at += len(piece)
    for copy in escaped:
        wipe_bytes(copy)
    return body


def _server_says(payload: dict[str, Any]) -> str:
    """The server's first error message on one line, cut short (its messages never hold values)."""
    errors = payload.get("errors")
    text = str(errors[0]) if isinstance(errors, list) and errors else ""
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:200]


def _read_secret_file(path: str, source: str, what: str) -> Secret:
    """The stripped content of a token or AppRole file, refused if other users may read it."""
    try:
        with open(os.path.expanduser(path), "rb", buffering=0) as file:  # no buffer copy left behind
            if os.fstat(file.fileno()).st_mode & 0o007:
                raise ProviderError(f"{source}: {what} {path} can be read by other users; chmod 600 it")
            data = file.read()
    except OSError as exc:
        raise ProviderError(f"{source}: cannot read {what} {path}: {exc.strerror}") from None
    raw = bytearray(data)
    wipe_bytes(data)
    start, end = 0, len(raw)
    while start < end and raw[start] in b" \t\r\n":
        start += 1
    while end > start and raw[end - 1] in b" \t\r\n":
        end -= 1
    secret = Secret.from_buffer(bytearray(memoryview(raw)[start:end]))
    wipe_bytes(raw)
    if not secret:
        raise ProviderError(f"{source}: {what} {path} is empty")
    return secret


class _Http:
    """Requests to one server over a few keep-alive connections; every failure comes out a ProviderError."""

    def __init__(self, address: str, source: str, ca_cert: str | None, namespace: str | None) -> None:
        self.source = source
        url = urlsplit(address)
        try:
            port = url.port
        except ValueError:
            port = -1
        if url.username is not None or url.password is not None:
            raise ProviderError(f"{source}: the address must not hold a user name or password; "
                                "give the token as token_file or BAO_TOKEN")
        if url.scheme not in ("http", "https") or not url.hostname or port == -1:
            raise ProviderError(f"{source}: address must be http(s)://HOST[:PORT], not {address!r}")
        self.address = f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}"
        self._host, self._port, self._base = url.hostname, port, url.path.rstrip("/")
        self._tls: ssl.SSLContext | None = None
        if url.scheme == "https":
            try:
                self._tls = ssl.create_default_context(cafile=ca_cert)
            except FileNotFoundError:
                raise ProviderError(f"{source}: ca_cert {ca_cert}: no such file") from None
            except (ssl.SSLError, OSError) as exc:
                raise ProviderError(f"{source}: ca_cert {ca_cert} is not a PEM CA file ({exc})") from None
        elif ca_cert:
            raise ProviderError(f"{source}: ca_cert is set but the address {self.address} is not https")
        self._headers: dict[str, str] = {"Accept": "application/json", "X-Vault-Request": "true"}
        if namespace:
            self._headers["X-Vault-Namespace"] = namespace
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        if self._tls is None:
            return http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT), False
        return http.client.HTTPSConnection(self._host, self._port, timeout=TIMEOUT, context=self._tls), False

    def _keep(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def request(self, method: str, path: str, token: Secret | None = None,
                body: bytearray | None = None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, parsed JSON body or {}) for `method /v1/path`."""
        headers: dict[str, str | bytes] = dict(self._headers)
        token_bytes = token.reveal_bytes() if token else b""
        if token_bytes:
            headers["X-Vault-Token"] = token_bytes
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            for attempt in (1, 2):
                conn, reused = self._connection()
                try:
                    conn.request(method, f"{self._base}/v1/{path}", body=body, headers=headers)
                    response = conn.getresponse()
                    raw = response.read(MAX_BODY + 1)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    conn.close()
                    if reused and attempt == 1:  # the server closed an idle connection: one fresh try
                        continue
                    raise ProviderError(f"{self.source}: the server at {self.address} closed the connection "
                                        f"without an answer to {method} {path}") from None
                except BaseException as exc:
                    conn.close()
                    raise self._unreachable(exc) from None
                if response.will_close or len(raw) > MAX_BODY:
                    conn.close()
                else:
                    self._keep(conn)
                return response.status, self._parse(raw, method, path)
            raise AssertionError("unreachable")  # the loop returns or raises
        finally:
            wipe_bytes(token_bytes)

    def _parse(self, raw: bytes, method: str, path: str) -> dict[str, Any]:
        try:
            if len(raw) > MAX_BODY:
                raise ValueError("too large")
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ProviderError(f"{self.source}: the server at {self.address} did not answer {method} {path} "
                                "with JSON; is the address that of an OpenBao or Vault server?") from None
        finally:
            wipe_bytes(raw)
        return payload if isinstance(payload, dict) else {}

    def _unreachable(self, exc: BaseException) -> BaseException:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ProviderError(f"{self.source}: the certificate of {self.address} is not trusted "
                                 f"({exc.verify_message}); set ca_cert to the CA that signed it")
        if isinstance(exc, ssl.SSLError):
            return ProviderError(f"{self.source}: TLS with {self.address} failed ({exc.reason})")
        if isinstance(exc, TimeoutError):
            return ProviderError(f"{self.source}: the server at {self.address} did not answer in {TIMEOUT:g}s")
        if isinstance(exc, OSError):
            why = exc.strerror or type(exc).__name__
            return ProviderError(f"{self.source}: cannot reach the server at {self.address}: {why}")
        if isinstance(exc, http.client.HTTPException):
            return ProviderError(f"{self.source}: the server at {self.address} does not speak HTTP "
                                 f"({type(exc).__name__})")
        return exc  # KeyboardInterrupt and bugs travel on as they are

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _Token:
    """The listener's own token: got at start, kept alive by a background thread, replaced by AppRole."""

    def __init__(self, http: _Http, source: str, token: Secret | None, role_id: Secret | None,
                 secret_id: Secret | None) -> None:
        self._http = http
        self.source = source
        self._secret = token if token is not None else Secret()
        self._role_id, self._secret_id = role_id, secret_id
        self._lock = threading.Lock()
        self._expires: float | None = None  # on _clock(); None: it never expires (a root token)
        self._refresh_at: float | None = None  # when the thread renews it or logs in again
        self._increment = 0  # seconds asked for at each renewal: the TTL it was issued with
        self._renewable = False
        self._capped = False  # a renewal came back short: its max TTL is near
        self._warned = False
        self._owned = False  # logged in by us, so revoked at close
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def approle(self) -> bool:
        return self._role_id is not None

    def start(self) -> None:
        with self._lock:
            if self.approle:
                self._login()
            else:
                self._lookup()
        if self._expires is not None:
            self._thread = threading.Thread(target=self._keep_alive, name="runwrap-openbao-token", daemon=True)
            self._thread.start()

    def current(self) -> Secret:
        """A copy of the token for one request (the caller wipes it); logs in first if it has expired."""
        with self._lock:
            if self.approle and self._expires is not None and _clock() >= self._expires:
                self._login()
            return Secret(self._secret.buffer)

    def refused(self) -> bool:
        """After a 403: True if that was the token itself and a fresh one was got (so retry)."""
        with self._lock:
            status, _ = self._http.request("GET", "auth/token/lookup-self", self._secret)
            if status != 403:
                return False
            if not self.approle:
                raise ProviderError(f"{self.source}: the server no longer accepts the listener's token "
                                    "(expired or revoked); give the listener a new one, or use AppRole")
            self._login()
            return True

    def _lookup(self) -> None:
        status, payload = self._http.request("GET", "auth/token/lookup-self", self._secret)
        if status == 403:
            raise ProviderError(f"{self.source}: the server at {self._http.address} refused the listener's token "
                                "(wrong, expired or revoked)")
        if status != 200:
            raise _failure(self.source, self._http.address, status, payload, "auth/token/lookup-self")
        data = payload.get("data") or {}
        data.pop("id", None)  # the token itself; the parsed copy cannot be wiped, but need not be kept
        ttl = int(data.get("ttl") or 0)
        self._set(ttl, int(data.get("period") or data.get("creation_ttl") or ttl), bool(data.get("renewable")))

    def _login(self) -> None:
        """AppRole login; the lock is held."""
        assert self._role_id is not None and self._secret_id is not None
        body = _json_body(role_id=self._role_id, secret_id=self._secret_id)
        try:
            status, payload = self._http.request("POST", "auth/approle/login", body=body)
        finally:
            wipe_bytes(body)
        if status in (400, 403):
            raise ProviderError(f"{self.source}: AppRole login refused: {_server_says(payload) or status} "
                                "(check role_id_file and secret_id_file; a secret_id can be used up or expire)")
        if status != 200:
            raise _failure(self.source, self._http.address, status, payload, "auth/approle/login")
        auth = payload.get("auth") or {}
        token = auth.pop("client_token", None)
        if not isinstance(token, str) or not token:
            raise ProviderError(f"{self.source}: the AppRole login answer holds no token")
        old, self._secret = self._secret, Secret(token)
        old.wipe()
        self._owned, self._capped, self._warned = True, False, False
        ttl = int(auth.get("lease_duration") or 0)
        self._set(ttl, ttl, bool(auth.get("renewable")))

    def _set(self, ttl: int, increment: int, renewable: bool) -> None:
        now = _clock()
        self._expires = now + ttl if ttl > 0 else None
        self._refresh_at = now + ttl * 2 / 3 if ttl > 0 else None
        self._increment, self._renewable = max(increment, ttl), renewable

    def _keep_alive(self) -> None:
        while True:
            with self._lock:
                wait = None if self._refresh_at is None else max(0.0, self._refresh_at - _clock())
            if self._closed.wait(wait):
                return
            with self._lock:
                try:
                    self._refresh()
                except RunwrapError as exc:
                    left = (self._expires or _clock()) - _clock()
                    if left <= 0 and not self.approle:  # dead, and nothing can bring it back: say so once
                        log.warning("%s: the listener's token has expired (%s); give the listener a new one",
                                    self.source, exc)
                        self._refresh_at = None
                        continue
                    # Before expiry, try again well before it; after, every 30 s (requests also try).
                    retry = min(30.0, max(1.0, left / 3)) if left > 0 else 30.0
                    log.warning("%s: could not keep the listener's token alive (%s); trying again in %.0fs",
                                self.source, exc, retry)
                    self._refresh_at = _clock() + retry

    def _refresh(self) -> None:
        """Renew the token, or log in again once renewal can no longer extend it; the lock is held."""
        if self._renewable and not self._capped:
            body = _json_body(increment=self._increment)
            status, payload = self._http.request("POST", "auth/token/renew-self", self._secret, body=body)
            if status == 200:
                granted = int((payload.get("auth") or {}).get("lease_duration") or 0)
                (payload.get("auth") or {}).pop("client_token", None)
                now = _clock()
                self._expires = now + granted
                self._refresh_at = now + granted * 2 / 3
                self._capped = granted < self._increment
                if not self._capped or not self.approle:
                    return
            elif not self.approle:
                raise _failure(self.source, self._http.address, status, payload, "auth/token/renew-self")
        if self.approle:
            self._login()
            return
        if not self._warned:
            self._warned = True
            left = max(0.0, (self._expires or 0.0) - _clock())
            log.warning("%s: the listener's token expires in %.0fs and cannot be renewed further; give the "
                        "listener AppRole credentials (role_id_file, secret_id_file) or a periodic token",
                        self.source, left)
        self._refresh_at = None  # nothing more to do until it is replaced

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=TIMEOUT + 5)
        with self._lock:
            if self._owned and self._secret:
                # Ours alone: revoking it also revokes the leases it read (the server does that).
                try:
                    self._http.request("POST", "auth/token/revoke-self", self._secret)
                except ProviderError as exc:
                    log.warning("%s: could not revoke the listener's token at close: %s", self.source, exc)
            for secret in (self._secret, self._role_id, self._secret_id):
                if secret is not None:
                    secret.wipe()
            self._owned = False


class OpenBaoProvider(Provider):
    """OpenBao or Vault over its HTTP API; see the module docstring for items, leases and tokens."""

    name = "openbao"
    options = {
        "address": "the server's URL (default $BAO_ADDR, else $VAULT_ADDR)",
        "mount": "the KV mount that domain queries read (default secret)",
        "prefix": "what comes before the domain in a KV path (default runwrap/)",
        "token_file": "a file holding the listener's token (default $BAO_TOKEN, else $VAULT_TOKEN)",
        "role_id_file": "a file holding an AppRole role_id: log in with AppRole (with secret_id_file)",
        "secret_id_file": "a file holding that AppRole's secret_id",
        "ca_cert": "a PEM file of the CA that signed the server's certificate (default $BAO_CACERT)",
        "namespace": "the namespace to work in (default $BAO_NAMESPACE, else $VAULT_NAMESPACE)",
    }

    def configure(self) -> None:
        opt = self.option_values
        self.source = f"provider {self.name}"
        address = opt.get("address") or _env("BAO_ADDR", "VAULT_ADDR")
        if not address:
            raise ProviderError(f"{self.source}: no server address: set --provider-option address=URL or BAO_ADDR")
        self.mount = (opt.get("mount") or "secret").strip("/")
        self.prefix = opt.get("prefix", "runwrap/").lstrip("/")
        self._mounts: dict[str, tuple[int, float]] = {}  # mount path -> (KV version, trusted until)
        self._lock = threading.Lock()
        self._http = _Http(address, self.source, opt.get("ca_cert") or _env("BAO_CACERT", "VAULT_CACERT"),
                           opt.get("namespace") or _env("BAO_NAMESPACE", "VAULT_NAMESPACE"))
        try:
            self._check_unsealed()
            self._token = _Token(self._http, self.source, *self._credentials())
            self._token.start()
        except BaseException:
            self._http.close()
            raise

    def _credentials(self) -> tuple[Secret | None, Secret | None, Secret | None]:
        opt = self.option_values
        role, secret = opt.get("role_id_file"), opt.get("secret_id_file")
        if opt.get("token_file") and (role or secret):
            raise ProviderError(f"{self.source}: give either token_file or role_id_file and secret_id_file, "
                                "not both")
        if bool(role) != bool(secret):
            raise ProviderError(f"{self.source}: AppRole needs both role_id_file and secret_id_file")
        if role and secret:
            return (None, _read_secret_file(role, self.source, "role_id_file"),
                    _read_secret_file(secret, self.source, "secret_id_file"))
        if opt.get("token_file"):
            return _read_secret_file(opt["token_file"], self.source, "token_file"), None, None
        token = _env("BAO_TOKEN", "VAULT_TOKEN")
        if not token:
            raise ProviderError(f"{self.source}: no token: set token_file, or role_id_file and secret_id_file, "
                                "or BAO_TOKEN in the listener's environment")
        return Secret(token), None, None

    def _check_unsealed(self) -> None:
        status, payload = self._http.request("GET", "sys/seal-status")
        if status == 200 and payload.get("sealed"):
            raise ProviderError(f"{self.source}: the server at {self._http.address} is sealed; unseal it "
                                "(bao operator unseal) and start the listener again")

    # Lookups

    def lookup(self, query: Query) -> Item:
        if query.id is not None:
            return self._read(query.id, domain="")
        domain = str(query.domain)
        labels = domain.split(".")
        # The domain, then its parents, down to two labels (a lone "com" is never an item).
        candidates = [".".join(labels[i:]) for i in range(max(1, len(labels) - 1))]
        misses: list[str] = []
        for candidate in candidates:
            path = f"{self.mount}/{self.prefix}{candidate}"
            try:
                return self._read(path, domain=candidate)
            except NotFound as exc:
                misses.append(exc.why if isinstance(exc, _Missing) else "not found")
        looked = ", ".join(f"{self.mount}/{self.prefix}{c} ({why})" for c, why in zip(candidates, misses, strict=True))
        raise NotFound(f"{self.name}: no item for domain {domain}; looked at {looked}")

    def _read(self, ident: str, domain: str) -> Item:
        path, version = ident, None
        base, at, asked = ident.rpartition("@")
        pinned = bool(at and base and asked.isdigit())  # PATH@N: version N, on a KV v2 mount
        mount, kv = self._mount_of(base if pinned else ident)
        if kv == 2 and pinned:
            path, version = base, int(asked)
        api = quote(path, safe="/")
        if kv == 2:
            api = f"{quote(mount, safe='/')}data/{quote(path[len(mount):], safe='/')}"
            if version is not None:
                api += f"?version={version}"
        status, payload = self._call("GET", api)
        if status == 404 and kv == 2:
            raise self._gone(path, payload)
        if status != 200:
            raise self._fail(status, payload, ident)
        data = payload.get("data")
        if kv == 2 and isinstance(data, dict):
            served = str((data.get("metadata") or {}).get("version") or "")
            data = data.get("data")
            ident = f"{path}@{served}" if served else path
        if not isinstance(data, dict):
            raise ProviderError(f"{self.source}: the server sent no data for {ident}")
        lease = None
        lease_id = payload.pop("lease_id", None)
        if isinstance(lease_id, str) and lease_id:
            lease = Lease(Secret(lease_id), float(payload.get("lease_duration") or 0),
                          bool(payload.get("renewable")), path)
        return _item(ident, domain or self._domain_in(path), data, lease)

    def _domain_in(self, path: str) -> str:
        """The domain an id names when it is a domain query's path (`secret/runwrap/github.com`), else ''."""
        start = f"{self.mount}/{self.prefix}"
        if not path.startswith(start) or "." not in path[len(start):]:
            return ""
        try:
            return normalize_domain(path[len(start):])
        except ValueError:
            return ""

    def _mount_of(self, path: str) -> tuple[str, int]:
        """(the mount holding `path`, with its trailing slash; its KV version), as `bao kv get` finds them."""
        now = time.monotonic()
        with self._lock:
            known = [(m, v) for m, (v, until) in self._mounts.items() if path.startswith(m) and until > now]
        if known:
            return max(known, key=lambda mv: len(mv[0]))
        status, payload = self._call("GET", "sys/internal/ui/mounts/" + quote(path, safe="/"))
        if status == 404:
            return "", 1  # a server without this endpoint: the CLI reads the path as KV v1 too
        if status != 200:
            raise self._fail(status, payload, path)
        data = payload.get("data") or {}
        mount = str(data.get("path") or "")
        version = 2 if str((data.get("options") or {}).get("version") or "") == "2" else 1
        if mount and path.startswith(mount):
            with self._lock:
                self._mounts[mount] = (version, now + MOUNT_CACHE)
        return mount, version

    def _call(self, method: str, path: str, body: bytearray | None = None) -> tuple[int, dict[str, Any]]:
        """One authenticated request; a 403 caused by the token itself gets a fresh token and one retry."""
        for attempt in (1, 2):
            token = self._token.current()
            try:
                status, payload = self._http.request(method, path, token, body)
            finally:
                token.wipe()
            if status != 403 or attempt == 2 or not self._token.refused():
                return status, payload
        raise AssertionError("unreachable")

    def _gone(self, path: str, payload: dict[str, Any]) -> NotFound:
        """Why a KV v2 read found nothing: never written, deleted, or destroyed."""
        meta = (payload.get("data") or {}).get("metadata") or {}
        version = meta.get("version")
        if meta.get("destroyed"):
            return _Missing(f"{self.name}: version {version} of {path} was destroyed; write a new version "
                            f"(bao kv put) or read an older one ({path}@N)", f"version {version} destroyed")
        if meta.get("deletion_time"):
            return _Missing(f"{self.name}: version {version} of {path} was deleted; undelete it "
                            f"(bao kv undelete -versions={version} {path}) or write a new one",
                            f"version {version} deleted")
        return NotFound(f"{self.name}: no item at {path}")

    def _fail(self, status: int, payload: dict[str, Any], what: str) -> RunwrapError:
        return _failure(self.source, self._http.address, status, payload, what, self.name)

    # Leases

    def renew_lease(self, lease: Lease, increment: float) -> float:
        asked = max(1, math.ceil(increment))
        if not lease.renewable:
            raise LeaseExhausted(f"{self.source}: the lease on {lease.path} is not renewable; the credential "
                                 f"lasts the {lease.duration:g}s its read gave", remaining=None)
        body = _json_body(lease_id=lease.lease_id, increment=asked)
        try:
            status, payload = self._call("PUT", "sys/leases/renew", body)
        finally:
            wipe_bytes(body)
        payload.pop("lease_id", None)
        if status != 200:
            raise self._lease_failure(status, payload, lease, "renew")
        granted = float(payload.get("lease_duration") or 0)
        if granted < asked:
            raise LeaseExhausted(f"{self.source}: the lease on {lease.path} reached its max TTL: renewal gave "
                                 f"{granted:g}s of the {asked}s asked, then the credential dies", remaining=granted)
        return granted

    def revoke_lease(self, lease: Lease) -> None:
        body = _json_body(lease_id=lease.lease_id)
        try:
            status, payload = self._call("PUT", "sys/leases/revoke", body)
        finally:
            wipe_bytes(body)
        if status not in (200, 204):
            raise self._lease_failure(status, payload, lease, "revoke")

    def _lease_failure(self, status: int, payload: dict[str, Any], lease: Lease, verb: str) -> RunwrapError:
        said = _server_says(payload)
        if status == 400 and ("not found" in said or "expired" in said or "invalid lease" in said):
            return ProviderError(f"{self.source}: cannot {verb} the lease on {lease.path}: it has expired or "
                                 "was revoked")
        if status == 403:
            return ProviderError(f"{self.source}: the listener's policy does not allow it to {verb} leases "
                                 f"(sys/leases/{verb} needs update)")
        return self._fail(status, payload, f"{verb} of the lease on {lease.path}")

    def close(self) -> None:
        token = getattr(self, "_token", None)
        if token is not None:
            token.close()
        self._http.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self._http.address}>"


class VaultProvider(OpenBaoProvider):
    """The same provider under the name Vault users look for (`--provider vault`)."""

    name = "vault"


class _Missing(NotFound):
    """Not found, with a short reason for the list a domain query prints (deleted, destroyed, denied)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


def _failure(source: str, address: str, status: int, payload: dict[str, Any], what: str,
             name: str = "") -> RunwrapError:
    """The error for an answer that is not a success, by status; `what` names the path, never a value."""
    said = _server_says(payload)
    if status == 503 and "sealed" in said.lower():
        return ProviderError(f"{source}: the server at {address} is sealed; unseal it (bao operator unseal)")
    if status == 403:
        return _Missing(f"{name or source}: permission denied on {what}: the listener's policy does not allow "
                        "reading it (or it does not exist)", "permission denied")
    if status == 404:
        return _Missing(f"{name or source}: no item at {what}", "not found")
    if status == 429:
        return ProviderError(f"{source}: the server at {address} rate-limited the listener reading {what}; "
                             "try again shortly")
    if status in (500, 502, 503, 504):
        return ProviderError(f"{source}: the server at {address} could not answer for {what} "
                             f"({status}{': ' + said if said else ''})")
    return ProviderError(f"{source}: the server at {address} refused {what} ({status}{': ' + said if said else ''})")


def _item(ident: str, domain: str, data: dict[str, Any], lease: Lease | None) -> Item:
    """An Item from a KV item's (or an engine's) keys: the standard ones by name, every one in `extra`."""
    extra: dict[str, Secret] = {}
    for key, value in data.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        extra[str(key)] = Secret(text)

    def copy(key: str) -> Secret | None:
        return Secret(extra[key].buffer) if key in extra else None

    username = data.get("username")
    uri = data.get("uri")
    uri = uri if isinstance(uri, str) else ""
    return Item(
        credential_id=ident,
        domain=domain or host_of(uri),
        username=username if isinstance(username, str) else "",
        password=copy("password"),
        totp_secret=copy("totp"),
        uri=uri,
        notes=copy("notes"),
        extra=extra,
        lease=lease,
    )
