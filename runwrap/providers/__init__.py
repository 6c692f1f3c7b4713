"""The provider registry: built-ins, plugins from the `runwrap.providers` entry-point group, and a cache.

`available()` names every provider class that could be loaded; `load()` gives a ready instance or
a `ProviderError` that says why not (unknown name, or the provider's own `unusable_reason()`).
A plugin whose entry point fails to import is logged on the `runwrap` logger and skipped, as
keyring does with broken backends: one bad package must not take the listener down. Built-ins
cannot be replaced by a plugin of the same name (a plugin must not quietly become "bitwarden").
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points

from runwrap.credential import Item, Lease, Query
from runwrap.errors import ProviderError
from runwrap.providers.base import Provider, copy_item

__all__ = ["CachingProvider", "Provider", "available", "load"]

log = logging.getLogger("runwrap")

GROUP = "runwrap.providers"
BUILTINS = {
    "example": "runwrap.providers.example:ExampleProvider",
    "pass": "runwrap.providers.password_store:PassProvider",
    "command": "runwrap.providers.command:CommandProvider",
    "keepass": "runwrap.providers.keepass:KeePassProvider",
    "bitwarden": "runwrap.providers.bitwarden:BitwardenProvider",
    "openbao": "runwrap.providers.openbao:OpenBaoProvider",
    "vault": "runwrap.providers.openbao:VaultProvider",
}


def _import(target: str) -> type[Provider]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"{target} is not a Provider")
    return cls


def available() -> dict[str, type[Provider]]:
    """Every provider that can be named with `--provider`, built-ins first, then plugins by name."""
    found: dict[str, type[Provider]] = {}
    for name, target in BUILTINS.items():
        try:
            found[name] = _import(target)
        except Exception as exc:  # a bug, but doctor must still list the others
            log.error("built-in provider %s could not be imported: %s", name, exc)
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin of any kind is skipped, never fatal
            log.warning("provider plugin %s (%s) failed to load; skipped: %s", ep.name, ep.value, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            log.warning("provider plugin %s (%s) is not a runwrap Provider class; skipped", ep.name, ep.value)
            continue
        if ep.name in found:
            if found[ep.name] is not cls:
                log.warning("provider plugin %s (%s) would replace a built-in; skipped", ep.name, ep.value)
            continue
        found[ep.name] = cls
    return found


def load(
    name: str,
    options: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
) -> Provider:
    """A ready provider, or a ProviderError naming what is known or why this one cannot work here."""
    providers = available()
    cls = providers.get(name)
    if cls is None:
        raise ProviderError(f"unknown provider {name!r}; known providers: {', '.join(sorted(providers))}")
    reason = cls.unusable_reason()
    if reason:
        raise ProviderError(f"provider {name} cannot work on this machine: {reason}")
    return cls(options, prompt=prompt)


class CachingProvider(Provider):
    """Keeps looked-up items in memory for `ttl` seconds (`listen --cache-ttl`).

    Each cached item is a private copy, and each lookup returns a fresh copy, so the listener may
    wipe what it is given. Expired items are wiped at the next lookup, by `purge()`, and — with
    `sweep=True` — by a background thread that wakes at the next expiry, so a secret does not
    outlive its ttl in memory just because no request came. `close()` wipes everything and closes
    the wrapped provider. `clock` is injectable for tests (monotonic seconds).
    """

    name = "cache"

    def __init__(
        self,
        inner: Provider,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep: bool | None = None,
    ) -> None:
        super().__init__()
        if ttl < 0:
            raise ProviderError("--cache-ttl must be zero (no cache) or a positive number of seconds")
        self.inner = inner
        self.ttl = ttl
        self._clock = clock
        self._items: dict[Query, tuple[float, Item]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._sweeper: threading.Thread | None = None
        # A background sweep only makes sense against the real clock.
        if (clock is time.monotonic if sweep is None else sweep) and ttl > 0:
            self._sweeper = threading.Thread(target=self._sweep, name="runwrap-cache-sweep", daemon=True)
            self._sweeper.start()

    def lookup(self, query: Query) -> Item:
        self.purge()
        with self._lock:
            if self._closed:
                raise ProviderError(f"provider {self.inner.name} is closed")
            cached = self._items.get(query)
            if cached is not None:
                return copy_item(cached[1])
        item = self.inner.lookup(query)  # NotFound and errors are not cached
        # A dynamic secret is minted for one consumer: a second must get its own, not a copy.
        if self.ttl > 0 and item.lease is None:
            with self._lock:
                if not self._closed:
                    old = self._items.pop(query, None)
                    if old is not None:
                        old[1].wipe()
                    self._items[query] = (self._clock() + self.ttl, copy_item(item))
            self._wake.set()
        return item

    def purge(self) -> int:
        """Wipe and drop every expired item; returns how many."""
        now = self._clock()
        with self._lock:
            expired = [q for q, (deadline, _) in self._items.items() if deadline <= now]
            for query in expired:
                self._items.pop(query)[1].wipe()
        return len(expired)

    def renew_lease(self, lease: Lease, increment: float) -> float:
        return self.inner.renew_lease(lease, increment)

    def revoke_lease(self, lease: Lease) -> None:
        self.inner.revoke_lease(lease)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _sweep(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                deadlines = [deadline for deadline, _ in self._items.values()]
            timeout = max(0.0, min(deadlines) - self._clock()) if deadlines else None
            self._wake.wait(timeout)
            self._wake.clear()
            self.purge()

    def close(self) -> None:
        with self._lock:
            already = self._closed
            self._closed = True
            for _, item in self._items.values():
                item.wipe()
            self._items.clear()
        self._wake.set()
        if self._sweeper is not None and self._sweeper is not threading.current_thread():
            self._sweeper.join(timeout=5)
        if not already:
            self.inner.close()

    def __repr__(self) -> str:
        return f"<CachingProvider {self.inner.name} ttl={self.ttl}s>"
