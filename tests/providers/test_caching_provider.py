"""CachingProvider: copies in, copies out, wiped on expiry and on close; a clock drives expiry."""

from __future__ import annotations

import time

import pytest

from runwrap.credential import Item, Query
from runwrap.errors import NotFound, ProviderError
from runwrap.providers import CachingProvider
from runwrap.providers.example import ExampleProvider


class Counting(ExampleProvider):
    """The example vault, counting lookups and remembering what it handed out."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0
        self.closed = 0

    def lookup(self, query: Query) -> Item:
        self.lookups += 1
        return super().lookup(query)

    def close(self) -> None:
        self.closed += 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


GITHUB = Query(domain="github.com")


def test_second_lookup_within_ttl_is_served_from_memory() -> None:
    inner, clock = Counting(), Clock()
    cache = CachingProvider(inner, 60, clock=clock)
    assert cache.lookup(GITHUB).password.reveal() == "alligator5"
    clock.now += 59
    assert cache.lookup(GITHUB).password.reveal() == "alligator5"
    assert inner.lookups == 1


def test_expiry_wipes_the_cached_copy_and_asks_again() -> None:
    inner, clock = Counting(), Clock()
    cache = CachingProvider(inner, 60, clock=clock)
    cache.lookup(GITHUB)
    ((_, cached),) = cache._items.values()
    clock.now += 60
    assert cache.purge() == 1
    assert cached.password.reveal() == "" and len(cache) == 0
    cache.lookup(GITHUB)
    assert inner.lookups == 2


def test_the_listener_may_wipe_what_it_was_given() -> None:
    cache = CachingProvider(Counting(), 60, clock=Clock())
    cache.lookup(GITHUB).wipe()
    assert cache.lookup(GITHUB).password.reveal() == "alligator5"


def test_not_found_is_not_cached() -> None:
    inner = Counting()
    cache = CachingProvider(inner, 60, clock=Clock())
    for _ in range(2):
        with pytest.raises(NotFound):
            cache.lookup(Query(domain="nowhere.org"))
    assert inner.lookups == 2


def test_close_wipes_everything_closes_the_inner_provider_once_and_refuses_lookups() -> None:
    inner = Counting()
    cache = CachingProvider(inner, 60, clock=Clock())
    cache.lookup(GITHUB)
    ((_, cached),) = cache._items.values()
    cache.close()
    cache.close()
    assert cached.password.reveal() == "" and inner.closed == 1
    with pytest.raises(ProviderError):
        cache.lookup(GITHUB)


def test_ttl_zero_caches_nothing() -> None:
    inner = Counting()
    cache = CachingProvider(inner, 0, clock=Clock())
    cache.lookup(GITHUB)
    cache.lookup(GITHUB)
    assert inner.lookups == 2 and len(cache) == 0


def test_the_sweeper_wipes_on_expiry_without_another_lookup() -> None:
    cache = CachingProvider(Counting(), 0.2)  # the real monotonic clock, so the sweeper runs
    try:
        cache.lookup(GITHUB)
        ((_, cached),) = cache._items.values()
        deadline = time.monotonic() + 5
        while cached.password.reveal() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cached.password.reveal() == "" and len(cache) == 0
    finally:
        cache.close()
