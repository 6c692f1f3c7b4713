"""HTTP to one OpenBao or Vault server: keep-alive connections, JSON bodies that hold secrets, and the
error each non-success answer becomes (see the package docstring)."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from runwrap.errors import NotFound, ProviderError, RunwrapError
from runwrap.secret import Secret, wipe_bytes

TIMEOUT = 10.0  # seconds for a connection or an answer; a listener must not hang on a dead server
MAX_BODY = 4 << 20  # no secret is this large; anything larger is not a Vault answer
MAX_IDLE = 8  # keep-alive connections kept for reuse
# JSON string bytes that can be copied into a request body as they are (no escaping needed).
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\")}


def json_body(**fields: Secret | int) -> bytearray:
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


def server_says(payload: dict[str, Any]) -> str:
    """The server's first error message on one line, cut short (its messages never hold values)."""
    errors = payload.get("errors")
    text = str(errors[0]) if isinstance(errors, list) and errors else ""
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:200]



class Http:
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

class Missing(NotFound):
    """Not found, with a short reason for the list a domain query prints (deleted, destroyed, denied)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


def failure(source: str, address: str, status: int, payload: dict[str, Any], what: str,
             name: str = "") -> RunwrapError:
    """The error for an answer that is not a success, by status; `what` names the path, never a value."""
    said = server_says(payload)
    if status == 503 and "sealed" in said.lower():
        return ProviderError(f"{source}: the server at {address} is sealed; unseal it (bao operator unseal)")
    if status == 403:
        return Missing(f"{name or source}: permission denied on {what}: the listener's policy does not allow "
                        "reading it (or it does not exist)", "permission denied")
    if status == 404:
        return Missing(f"{name or source}: no item at {what}", "not found")
    if status == 429:
        return ProviderError(f"{source}: the server at {address} rate-limited the listener reading {what}; "
                             "try again shortly")
    if status in (500, 502, 503, 504):
        return ProviderError(f"{source}: the server at {address} could not answer for {what} "
                             f"({status}{': ' + said if said else ''})")
    return ProviderError(f"{source}: the server at {address} refused {what} ({status}{': ' + said if said else ''})")
