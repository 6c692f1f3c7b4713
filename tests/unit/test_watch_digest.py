"""The watcher's digest of what a request was served: the data decides, keyed per listener."""

from __future__ import annotations

from typing import Any

from runwrap.credential import Item
from runwrap.listener.watch import Watcher
from runwrap.secret import Secret


def watcher() -> Watcher:
    # The digest touches none of the parts it is wired to.
    none: Any = None
    return Watcher(provider=none, audit=none, dynamic=none, decide=none, end_lease=none)


def item(password: str = "pw", *, version: int = 1, seed: str | None = None, **extra: str) -> Item:
    return Item(credential_id=f"secret/runwrap/github.com@{version}", domain="github.com", username="alice",
                password=Secret(password), totp_secret=Secret(seed) if seed else None,
                extra={k: Secret(v) for k, v in extra.items()})


def test_the_same_data_in_a_new_version_has_the_same_digest() -> None:
    w = watcher()
    assert w._digest(item(version=1), ["username", "password"]) == w._digest(item(version=2), ["username", "password"])
    assert w._digest(item("pw"), ["password"]) != w._digest(item("pw2"), ["password"])


def test_only_the_fields_the_request_named_count() -> None:
    w = watcher()
    assert w._digest(item(api_key="a"), ["password"]) == w._digest(item(api_key="b"), ["password"])
    assert w._digest(item(api_key="a"), ["api_key"]) != w._digest(item(api_key="b"), ["api_key"])
    # A field that appears or goes is a change, and no two fields' values can run into each other.
    assert w._digest(item(api_key="x"), ["api_key"]) != w._digest(item(), ["api_key"])
    assert w._digest(item("ab", api_key="c"), ["password", "api_key"]) != \
        w._digest(item("a", api_key="bc"), ["password", "api_key"])


def test_a_totp_field_is_its_seed_not_the_code_of_the_moment() -> None:
    w = watcher()
    seed = "JBSWY3DPEHPK3PXP"
    assert w._digest(item(seed=seed), ["totp"]) == w._digest(item(seed=seed), ["totp"])
    assert w._digest(item(seed=seed), ["totp"]) != w._digest(item(seed="GEZDGNBVGY3TQOJQ"), ["totp"])


def test_the_key_is_per_watcher_so_a_digest_means_nothing_elsewhere() -> None:
    assert watcher()._digest(item(), ["password"]) != watcher()._digest(item(), ["password"])
    assert len(watcher()._digest(item(), ["password"])) == 32
