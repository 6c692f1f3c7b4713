"""Dynamic secrets, the provider's half: bao's database engine minting PostgreSQL roles on a real cluster,
and the lease each comes with renewed, cut short at its max TTL, and revoked."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runwrap.credential import Lease, Query
from runwrap.errors import LeaseExhausted, ProviderError
from runwrap.providers import CachingProvider
from runwrap.providers.openbao import OpenBaoProvider
from runwrap.secret import Secret
from tests.polling import wait_for

from .bao_kit import Postgres

MakeProvider = Callable[..., OpenBaoProvider]


def valid_until(pg: Postgres, role: str) -> str:
    return pg.psql(f"SELECT rolvaliduntil FROM pg_roles WHERE rolname = '{role}'").stdout.strip()


def test_a_minted_role_logs_in_and_its_lease_renews_and_revokes(database: Postgres,
                                                                make_provider: MakeProvider) -> None:
    provider = make_provider()
    item = provider.lookup(Query(id="database/creds/app"))
    lease = item.lease
    assert isinstance(lease, Lease)
    assert (lease.path, lease.renewable, lease.duration) == ("database/creds/app", True, 60)
    assert item.credential_id == "database/creds/app" and set(item.extra) == {"username", "password"}
    role, password = item.username, item.password.reveal()
    assert role.startswith("v-") and password
    # The secret parts never show: not the password, not the lease id.
    lease_id = lease.lease_id.reveal()
    assert lease_id.startswith("database/creds/app/")
    for text in (repr(item), repr(lease), str(lease)):
        assert password not in text and lease_id not in text

    login = database.psql("SELECT current_user", user=role, password=password)
    assert login.stdout.strip() == role

    before = valid_until(database, role)
    assert provider.renew_lease(lease, 300) == 300
    assert valid_until(database, role) > before  # the engine moved VALID UNTIL on

    provider.revoke_lease(lease)
    wait_for(lambda: role not in database.roles(), 15, f"role {role} to leave pg_roles")
    assert database.psql("SELECT 1", user=role, password=password, check=False).returncode != 0
    lease.wipe()
    assert not lease.lease_id


def test_a_renewal_cut_short_by_max_ttl_is_lease_exhausted(database: Postgres, make_provider: MakeProvider) -> None:
    provider = make_provider()
    item = provider.lookup(Query(id="database/creds/short"))  # 3 s leases, max 5 s
    assert item.lease is not None and item.lease.duration == 3
    with pytest.raises(LeaseExhausted) as caught:
        provider.renew_lease(item.lease, 60)
    assert caught.value.remaining is not None and 0 <= caught.value.remaining <= 5
    message = str(caught.value)
    assert "reached its max TTL" in message and item.lease.lease_id.reveal() not in message
    assert item.password.reveal() not in message
    provider.revoke_lease(item.lease)
    wait_for(lambda: item.username not in database.roles(), 15, "the short role to go")


def test_renewing_a_revoked_lease_is_a_one_line_error(database: Postgres, make_provider: MakeProvider) -> None:
    provider = make_provider()
    item = provider.lookup(Query(id="database/creds/app"))
    assert item.lease is not None
    provider.revoke_lease(item.lease)
    with pytest.raises(ProviderError) as caught:
        provider.renew_lease(item.lease, 60)
    assert "cannot renew the lease on database/creds/app: it has expired or was revoked" in str(caught.value)
    assert item.lease.lease_id.reveal() not in str(caught.value)


def test_a_lease_that_is_not_renewable_says_so_without_asking(make_provider: MakeProvider) -> None:
    lease = Lease(Secret("database/creds/app/not-a-real-lease"), 30, False, "database/creds/app")
    with pytest.raises(LeaseExhausted) as caught:
        make_provider().renew_lease(lease, 60)
    assert caught.value.remaining is None and "not renewable" in str(caught.value)


def test_the_cache_never_hands_one_dynamic_credential_to_two_consumers(database: Postgres,
                                                                      make_provider: MakeProvider) -> None:
    cached = CachingProvider(make_provider(), ttl=60, sweep=False)
    first = cached.lookup(Query(id="database/creds/app"))
    second = cached.lookup(Query(id="database/creds/app"))
    assert first.username != second.username and len(cached) == 0
    for item in (first, second):
        assert item.lease is not None
        cached.revoke_lease(item.lease)
    wait_for(lambda: not {first.username, second.username} & database.roles(), 15, "both roles to go")


def test_closing_an_approle_provider_revokes_the_leases_its_token_read(bao, database: Postgres,
                                                                      make_provider: MakeProvider,
                                                                      tmp_path) -> None:
    # The server revokes a token's leases with the token: an AppRole listener's own token dies at close.
    role_id, secret_id = bao.approle("leases", tmp_path)
    provider = make_provider(role_id_file=str(role_id), secret_id_file=str(secret_id))
    item = provider.lookup(Query(id="database/creds/app"))
    assert item.username in database.roles()
    provider.close()
    wait_for(lambda: item.username not in database.roles(), 15, f"role {item.username} to leave pg_roles")
