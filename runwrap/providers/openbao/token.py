"""The listener's own token: read from a file or the environment, or got by AppRole login, and kept alive
by a background thread (see the package docstring)."""

from __future__ import annotations

import logging
import os
import threading
import time

from runwrap.errors import ProviderError, RunwrapError
from runwrap.providers.openbao.http import TIMEOUT, Http, failure, json_body, server_says
from runwrap.secret import Secret, wipe_bytes

log = logging.getLogger("runwrap")

_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def clock() -> float:
    """Seconds that keep counting while the machine sleeps, as a token's TTL does."""
    return time.clock_gettime(_CLOCK)

def read_secret_file(path: str, source: str, what: str) -> Secret:
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


class Token:
    """The listener's own token: got at start, kept alive by a background thread, replaced by AppRole."""

    def __init__(self, http: Http, source: str, token: Secret | None, role_id: Secret | None,
                 secret_id: Secret | None) -> None:
        self._http = http
        self.source = source
        self._secret = token if token is not None else Secret()
        self._role_id, self._secret_id = role_id, secret_id
        self._lock = threading.Lock()
        self._expires: float | None = None  # on clock(); None: it never expires (a root token)
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
            if self.approle and self._expires is not None and clock() >= self._expires:
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
            raise failure(self.source, self._http.address, status, payload, "auth/token/lookup-self")
        data = payload.get("data") or {}
        data.pop("id", None)  # the token itself; the parsed copy cannot be wiped, but need not be kept
        ttl = int(data.get("ttl") or 0)
        self._set(ttl, int(data.get("period") or data.get("creation_ttl") or ttl), bool(data.get("renewable")))

    def _login(self) -> None:
        """AppRole login; the lock is held."""
        assert self._role_id is not None and self._secret_id is not None
        body = json_body(role_id=self._role_id, secret_id=self._secret_id)
        try:
            status, payload = self._http.request("POST", "auth/approle/login", body=body)
        finally:
            wipe_bytes(body)
        if status in (400, 403):
            raise ProviderError(f"{self.source}: AppRole login refused: {server_says(payload) or status} "
                                "(check role_id_file and secret_id_file; a secret_id can be used up or expire)")
        if status != 200:
            raise failure(self.source, self._http.address, status, payload, "auth/approle/login")
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
        now = clock()
        self._expires = now + ttl if ttl > 0 else None
        self._refresh_at = now + ttl * 2 / 3 if ttl > 0 else None
        self._increment, self._renewable = max(increment, ttl), renewable

    def _keep_alive(self) -> None:
        while True:
            with self._lock:
                wait = None if self._refresh_at is None else max(0.0, self._refresh_at - clock())
            if self._closed.wait(wait):
                return
            with self._lock:
                try:
                    self._refresh()
                except RunwrapError as exc:
                    left = (self._expires or clock()) - clock()
                    if left <= 0 and not self.approle:  # dead, and nothing can bring it back: say so once
                        log.warning("%s: the listener's token has expired (%s); give the listener a new one",
                                    self.source, exc)
                        self._refresh_at = None
                        continue
                    # Before expiry, try again well before it; after, every 30 s (requests also try).
                    retry = min(30.0, max(1.0, left / 3)) if left > 0 else 30.0
                    log.warning("%s: could not keep the listener's token alive (%s); trying again in %.0fs",
                                self.source, exc, retry)
                    self._refresh_at = clock() + retry

    def _refresh(self) -> None:
        """Renew the token, or log in again once renewal can no longer extend it; the lock is held."""
        if self._renewable and not self._capped:
            body = json_body(increment=self._increment)
            status, payload = self._http.request("POST", "auth/token/renew-self", self._secret, body=body)
            if status == 200:
                granted = int((payload.get("auth") or {}).get("lease_duration") or 0)
                (payload.get("auth") or {}).pop("client_token", None)
                now = clock()
                self._expires = now + granted
                self._refresh_at = now + granted * 2 / 3
                self._capped = granted < self._increment
                if not self._capped or not self.approle:
                    return
            elif not self.approle:
                raise failure(self.source, self._http.address, status, payload, "auth/token/renew-self")
        if self.approle:
            self._login()
            return
        if not self._warned:
            self._warned = True
            left = max(0.0, (self._expires or 0.0) - clock())
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
