"""Item.extra, Item.lease and path-shaped ids: the parts of runwrap.credential that servers like OpenBao need."""

from __future__ import annotations

import pytest

from runwrap.credential import Item, Lease, Query
from runwrap.errors import ProviderError
from runwrap.providers.base import copy_item
from runwrap.providers.example import ExampleProvider
from runwrap.secret import Secret


@pytest.mark.parametrize("ident", ["secret/team/deploy", "secret/team/deploy@3", "database/creds/app",
                                   "kv1/runwrap/github.com", "8b4c5e0a-0000-4000-8000-000000000001"])
def test_paths_are_ids(ident: str) -> None:
    assert Query(id=ident).id == ident


@pytest.mark.parametrize("ident", ["secret/", "/secret", "secret//x", "secret/./x", "secret/../x", "secret/.x",
                                   "a/" * 200 + "a"])
def test_ids_stay_where_a_provider_looks(ident: str) -> None:
    with pytest.raises(ValueError, match="not a vault item id"):
        Query(id=ident)


def item_with_extras() -> Item:
    lease = Lease(Secret("database/creds/app/abc123"), 60, True, "database/creds/app")
    return Item("database/creds/app", "", username="v-app", password=Secret("pw"),
                extra={"username": Secret("v-app"), "password": Secret("pw"), "api_key": Secret("sk-1")}, lease=lease)


def test_wipe_clears_every_extra_and_leaves_the_lease_to_its_owner() -> None:
    item = item_with_extras()
    assert Item("x", "").extra == {} and Item("x", "").lease is None
    item.wipe()
    assert not item.password and all(not value for value in item.extra.values())
    assert item.lease is not None and item.lease.lease_id.reveal() == "database/creds/app/abc123"
    item.lease.wipe()
    assert not item.lease.lease_id


def test_reprs_name_keys_but_never_values_or_lease_ids() -> None:
    item = item_with_extras()
    text = repr(item)
    assert "api_key" in text and "sk-1" not in text and "abc123" not in text
    assert "abc123" not in repr(item.lease) and "database/creds/app" in repr(item.lease)


def test_a_copy_has_its_own_extras_and_shares_the_one_lease() -> None:
    item = item_with_extras()
    copy = copy_item(item)
    item.wipe()
    assert copy.extra["api_key"].reveal() == "sk-1" and copy.lease is item.lease


def test_a_provider_without_leases_says_so() -> None:
    provider = ExampleProvider()
    lease = item_with_extras().lease
    assert lease is not None
    with pytest.raises(ProviderError, match="hands out no leases to renew"):
        provider.renew_lease(lease, 60)
    with pytest.raises(ProviderError, match="hands out no leases to revoke"):
        provider.revoke_lease(lease)
