"""The provider itself: lookups of KV items and engine paths, and the leases of dynamic secrets (see the
package docstring)."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from typing import Any
from urllib.parse import quote

from runwrap.credential import Item, Lease, Query, host_of, normalize_domain
from runwrap.errors import LeaseExhausted, NotFound, ProviderError, RunwrapError
from runwrap.providers.base import Provider
from runwrap.providers.openbao.http import Http, Missing, failure, json_body, server_says
from runwrap.providers.openbao.token import Token, read_secret_file
from runwrap.secret import Secret, wipe_bytes

MOUNT_CACHE = 60.0  # seconds a mount's KV version is trusted before it is asked again


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


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
        self._http = Http(address, self.source, opt.get("ca_cert") or _env("BAO_CACERT", "VAULT_CACERT"),
                           opt.get("namespace") or _env("BAO_NAMESPACE", "VAULT_NAMESPACE"))
        try:
            self._check_unsealed()
            self._token = Token(self._http, self.source, *self._credentials())
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
            return (None, read_secret_file(role, self.source, "role_id_file"),
                    read_secret_file(secret, self.source, "secret_id_file"))
        if opt.get("token_file"):
            return read_secret_file(opt["token_file"], self.source, "token_file"), None, None
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
                misses.append(exc.why if isinstance(exc, Missing) else "not found")
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
            return Missing(f"{self.name}: version {version} of {path} was destroyed; write a new version "
                            f"(bao kv put) or read an older one ({path}@N)", f"version {version} destroyed")
        if meta.get("deletion_time"):
            return Missing(f"{self.name}: version {version} of {path} was deleted; undelete it "
                            f"(bao kv undelete -versions={version} {path}) or write a new one",
                            f"version {version} deleted")
        return NotFound(f"{self.name}: no item at {path}")

    def _fail(self, status: int, payload: dict[str, Any], what: str) -> RunwrapError:
        return failure(self.source, self._http.address, status, payload, what, self.name)

    # Leases

    def renew_lease(self, lease: Lease, increment: float) -> float:
        asked = max(1, math.ceil(increment))
        if not lease.renewable:
            raise LeaseExhausted(f"{self.source}: the lease on {lease.path} is not renewable; the credential "
                                 f"lasts the {lease.duration:g}s its read gave", remaining=None)
        body = json_body(lease_id=lease.lease_id, increment=asked)
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
        body = json_body(lease_id=lease.lease_id)
        try:
            status, payload = self._call("PUT", "sys/leases/revoke", body)
        finally:
            wipe_bytes(body)
        if status not in (200, 204):
            raise self._lease_failure(status, payload, lease, "revoke")

    def _lease_failure(self, status: int, payload: dict[str, Any], lease: Lease, verb: str) -> RunwrapError:
        said = server_says(payload)
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
