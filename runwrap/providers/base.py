"""The provider boundary: what a vault backend is, and how a query picks one of its items.

A provider is shaped like a keyring backend: a class with a `name`, a class method
that says why it cannot work on this machine (or `None`), and instances that answer one query at a
time with an `Item`. Everything a third-party tool or library can raise is translated into
`NotFound` or `ProviderError` inside the provider's own module, with a message that names the
provider and says what to do, and never carries a secret value.

`choose` is the one place where a domain query meets item hosts, so every provider resolves
"which item is this?" the same way: an item matches when its host is the queried domain or a parent
of it (`runwrap.credential.host_matches`); among matches the most specific host wins (an item for
`api.github.com` beats one for `github.com` when `api.github.com` is asked for); two or more items
left at the same host are an error that lists their ids, never their values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import ClassVar, TypeVar

from runwrap.credential import Item, Lease, Query, host_matches, host_of
from runwrap.errors import NotFound, ProviderError
from runwrap.secret import Secret

T = TypeVar("T")

# How many ids an ambiguity error lists before it says "and N more".
_MAX_IDS_SHOWN = 10


class Provider:
    """A vault backend. Subclasses set `name`, document their `options`, and implement `lookup`."""

    name: ClassVar[str]
    # Option name -> one line of help; `--provider-option KEY=VALUE` with another key is refused.
    options: ClassVar[Mapping[str, str]] = {}
    # False only for a provider whose lookup never waits (no I/O, no subprocess): the listener then
    # asks it on its event loop instead of a worker thread (~0.2 ms less per request).
    lookup_blocks: ClassVar[bool] = True

    @classmethod
    def unusable_reason(cls) -> str | None:
        """None when this provider can work on this machine; otherwise what to install or fix."""
        return None

    @classmethod
    def needs(cls) -> str | None:
        """None when `runwrap listen --provider NAME` can start here with no `--provider-option`;
        otherwise the options (or variables) it still needs, as `runwrap doctor` shows them."""
        return None

    def __init__(
        self,
        options: Mapping[str, str] | None = None,
        *,
        prompt: Callable[[str], str] | None = None,
    ) -> None:
        given = dict(options or {})
        unknown = sorted(set(given) - set(type(self).options))
        if unknown:
            known = ", ".join(sorted(type(self).options)) or "none"
            raise ProviderError(
                f"provider {self.name}: unknown option {', '.join(unknown)} (known options: {known})"
            )
        self.option_values: dict[str, str] = given
        self.prompt = prompt
        self.configure()

    def configure(self) -> None:
        """Read `self.option_values` and get ready; a subclass's setup goes here, not in __init__."""

    def lookup(self, query: Query) -> Item:
        """The item for `query`; raises `NotFound` or `ProviderError` (locked, tool missing, ambiguous)."""
        raise NotImplementedError

    def change_signal(self, query: Query, served_id: str) -> str | None:
        """A cheap token that changes whenever the item `query` found (`served_id`, its credential_id)
        may have changed, or None when there is none. The listener's watcher (runwrap.listener.watch)
        skips the full lookup while the token stays the same; it must therefore never stay the same
        across a change. The default, None, means: always look it up."""
        return None

    def renew_lease(self, lease: Lease, increment: float) -> float:
        """Extend a dynamic secret's `lease` (an `Item.lease` this provider returned) by `increment`
        seconds; the seconds granted. `LeaseExhausted` when it can go no further (max TTL)."""
        raise ProviderError(f"provider {self.name} hands out no leases to renew")

    def revoke_lease(self, lease: Lease) -> None:
        """End a dynamic secret's `lease` now: the credential it came with stops working."""
        raise ProviderError(f"provider {self.name} hands out no leases to revoke")

    def close(self) -> None:
        """Release anything held (child processes, sessions, cached items). Safe to call twice."""

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def choose(
    query: Query,
    candidates: Iterable[T],
    *,
    id_of: Callable[[T], str],
    hosts_of: Callable[[T], Iterable[str]],
    source: str,
) -> T:
    """The one candidate `query` names, by id or by host; `source` names the provider in errors."""
    if query.id is not None:
        for candidate in candidates:
            if id_of(candidate) == query.id:
                return candidate
        raise NotFound(f"{source}: no item with id {query.id}")

    domain = str(query.domain)
    best: list[T] = []
    best_len = -1
    for candidate in candidates:
        # The longest matching host of this candidate is how specific its match is.
        host = most_specific(hosts_of(candidate), domain)
        if host is None:
            continue
        length = len(host)
        if length > best_len:
            best, best_len = [candidate], length
        elif length == best_len:
            best.append(candidate)
    if not best:
        raise NotFound(f"{source}: no item for domain {domain}")
    if len(best) > 1:
        raise ambiguous(domain, [id_of(c) for c in best])
    return best[0]


def most_specific(hosts: Iterable[str], domain: str | None) -> str | None:
    """The longest of `hosts` (URIs or host names) that is `domain` or a parent of it; None if none is."""
    best: str | None = None
    for entry in hosts:
        host = host_of(entry)
        if host and domain and host_matches(host, domain) and (best is None or len(host) > len(best)):
            best = host
    return best


def item_domain(hosts: Iterable[str], query: Query) -> str:
    """The domain an item reports: the most specific of its hosts that served `query`, else its first."""
    listed = [host_of(h) for h in hosts]
    return most_specific(listed, query.domain) or next((h for h in listed if h), "")


def ambiguous(domain: str, ids: list[str]) -> ProviderError:
    """The error for a domain that several items match: their ids, so the caller can ask by id."""
    shown = ", ".join(ids[:_MAX_IDS_SHOWN])
    if len(ids) > _MAX_IDS_SHOWN:
        shown += f", and {len(ids) - _MAX_IDS_SHOWN} more"
    return ProviderError(f"{len(ids)} items match domain {domain}: {shown} (ask by --id instead)")


def copy_item(item: Item) -> Item:
    """An independent copy, so wiping what the listener was given leaves the original intact."""
    def dup(secret: Secret | None) -> Secret | None:
        return None if secret is None else Secret(secret.buffer)

    return Item(
        credential_id=item.credential_id,
        domain=item.domain,
        username=item.username,
        password=Secret(item.password.buffer),
        totp_secret=dup(item.totp_secret),
        uri=item.uri,
        notes=dup(item.notes),
        extra={key: Secret(value.buffer) for key, value in item.extra.items()},
        lease=item.lease,  # one lease, one owner to end it: shared, not copied
    )
