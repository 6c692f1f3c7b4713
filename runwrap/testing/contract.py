"""The contract every provider keeps, as a pytest class its tests subclass (keyring's `BackendBasicTests`).

    from runwrap.testing.contract import ProviderContract

    class TestMyProvider(ProviderContract):
        @pytest.fixture
        def provider(self): ...          # an instance loaded with known data; closed by the fixture
        @pytest.fixture
        def known_domain(self): return "github.com"
        # known_id, known_username, known_password, unknown_domain likewise

The inherited tests look an item up by domain, by id and by a subdomain, ask for what is not
there, and check that neither errors nor item reprs ever show the password.
"""

from __future__ import annotations

import pytest

from runwrap.credential import Item, Query
from runwrap.errors import NotFound, RunwrapError
from runwrap.providers.base import Provider


class ProviderContract:
    """Inherit this; supply the fixtures named in the module docstring."""

    def _check(self, item: Item, known_id: str, known_username: str, known_password: str) -> None:
        assert isinstance(item, Item)
        assert item.credential_id == known_id
        assert item.username == known_username
        assert item.password.reveal() == known_password

    def test_lookup_by_domain(
        self, provider: Provider, known_domain: str, known_id: str, known_username: str, known_password: str
    ) -> None:
        self._check(provider.lookup(Query(domain=known_domain)), known_id, known_username, known_password)

    def test_lookup_by_id(
        self, provider: Provider, known_id: str, known_username: str, known_password: str
    ) -> None:
        self._check(provider.lookup(Query(id=known_id)), known_id, known_username, known_password)

    def test_subdomain_finds_parent(
        self, provider: Provider, known_domain: str, known_id: str, known_username: str, known_password: str
    ) -> None:
        item = provider.lookup(Query(domain=f"api.deep.{known_domain}"))
        self._check(item, known_id, known_username, known_password)

    def test_domain_is_matched_by_label_not_by_suffix(self, provider: Provider, known_domain: str) -> None:
        # "notgithub.com" must not find "github.com".
        with pytest.raises(NotFound):
            provider.lookup(Query(domain=f"not{known_domain}"))

    def test_unknown_domain_raises_not_found(self, provider: Provider, unknown_domain: str) -> None:
        with pytest.raises(NotFound) as caught:
            provider.lookup(Query(domain=unknown_domain))
        assert unknown_domain in str(caught.value)

    def test_unknown_id_raises_not_found(self, provider: Provider) -> None:
        with pytest.raises(NotFound):
            provider.lookup(Query(id="no-such-item-0000"))

    def test_errors_never_contain_the_password(
        self, provider: Provider, known_domain: str, unknown_domain: str, known_password: str
    ) -> None:
        errors: list[RunwrapError] = []
        queries = [Query(domain=unknown_domain), Query(id="no-such-item-0000")]
        queries.append(Query(domain=f"x{known_domain}"))
        for query in queries:
            with pytest.raises(RunwrapError) as caught:
                provider.lookup(query)
            errors.append(caught.value)
        assert len(errors) == 3
        for error in errors:
            for text in (str(error), repr(error), repr(error.args)):
                assert known_password not in text

    def test_item_repr_and_str_hide_the_password(
        self, provider: Provider, known_domain: str, known_password: str
    ) -> None:
        item = provider.lookup(Query(domain=known_domain))
        assert item.password.reveal() == known_password  # the value is there...
        for text in (repr(item), str(item), f"{item}", repr(item.password), str(item.password)):
            assert known_password not in text  # ...and never shows itself
        if item.totp_secret is not None:
            assert item.totp_secret.reveal() not in repr(item)

    def test_wiping_a_returned_item_leaves_the_vault_intact(
        self, provider: Provider, known_domain: str, known_password: str
    ) -> None:
        # The listener wipes every item it served; the next lookup must still work.
        first = provider.lookup(Query(domain=known_domain))
        first.wipe()
        assert first.password.reveal() == ""
        assert provider.lookup(Query(domain=known_domain)).password.reveal() == known_password

    def test_unusable_reason_is_none_or_a_message(self, provider: Provider) -> None:
        reason = type(provider).unusable_reason()
        assert reason is None or (isinstance(reason, str) and reason.strip())

    def test_is_found_by_its_name(self, provider: Provider) -> None:
        # `runwrap listen --provider NAME` must load this very class (built in, or by entry point).
        from runwrap.providers import available

        name = type(provider).name
        assert isinstance(name, str) and name
        assert issubclass(type(provider), available()[name])

    def test_close_is_idempotent(self, provider: Provider) -> None:
        provider.close()
        provider.close()
