"""The example provider keeps the contract and serves exactly the SPEC's table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runwrap.credential import Query
from runwrap.errors import NotFound
from runwrap.providers.example import ExampleProvider
from runwrap.testing.contract import ProviderContract
from runwrap.totp import totp


class TestExampleContract(ProviderContract):
    @pytest.fixture
    def provider(self) -> Iterator[ExampleProvider]:
        provider = ExampleProvider()
        yield provider
        provider.close()

    @pytest.fixture
    def known_domain(self) -> str:
        return "github.com"

    @pytest.fixture
    def known_id(self) -> str:
        return "8b4c5e0a-0000-4000-8000-000000000001"

    @pytest.fixture
    def known_username(self) -> str:
        return "example"

    @pytest.fixture
    def known_password(self) -> str:
        return "alligator5"

    @pytest.fixture
    def unknown_domain(self) -> str:
        return "gitlab.com"


@pytest.mark.parametrize(
    ("domain", "credential_id", "username", "password"),
    [
        ("github.com", "8b4c5e0a-0000-4000-8000-000000000001", "example", "alligator5"),
        ("example.com", "8b4c5e0a-0000-4000-8000-000000000002", "demo", "correct-horse-battery-staple"),
        ("test.com", "8b4c5e0a-0000-4000-8000-000000000003", "tester", "hunter2-but-longer"),
    ],
)
def test_serves_the_spec_table(domain: str, credential_id: str, username: str, password: str) -> None:
    item = ExampleProvider().lookup(Query(domain=domain))
    assert (item.domain, item.credential_id, item.username) == (domain, credential_id, username)
    assert item.password.reveal() == password
    assert item.uri == f"https://{domain}"
    assert (item.totp_secret is not None) == (domain == "test.com")


def test_test_com_totp_is_a_code_from_its_seed() -> None:
    item = ExampleProvider().lookup(Query(domain="test.com"))
    assert item.totp_secret is not None
    assert item.totp_secret.reveal() == "JBSWY3DPEHPK3PXP"
    assert totp(item.totp_secret, 1700000000) == "324550"


def test_api_github_com_finds_github_com() -> None:
    assert ExampleProvider().lookup(Query(domain="API.GitHub.com.")).domain == "github.com"


def test_a_domain_that_only_ends_with_the_same_letters_is_not_found() -> None:
    with pytest.raises(NotFound):
        ExampleProvider().lookup(Query(domain="mytest.com"))
