"""KV items through the openbao provider against a real `bao server -dev`: the contract, v1 and v2, ids as
`bao kv get`/`bao read` take them, every key a field, and the one-line errors for what is not there."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from runwrap.credential import Query
from runwrap.errors import NotFound, ProviderError, RunwrapError
from runwrap.providers import available, load
from runwrap.providers.openbao import OpenBaoProvider, VaultProvider
from runwrap.testing.contract import ProviderContract
from runwrap.totp import totp

from .bao_kit import (
    API_EXAMPLE,
    DEPLOY_V1,
    DEPLOY_V2,
    GITHUB,
    KV1_GITHUB,
    LISTENER_POLICY,
    BaoServer,
    write_secret_file,
)

MakeProvider = Callable[..., OpenBaoProvider]


class TestOpenBaoKv2Contract(ProviderContract):
    @pytest.fixture
    def provider(self, make_provider: MakeProvider) -> Iterator[OpenBaoProvider]:
        yield make_provider()

    @pytest.fixture
    def known_domain(self) -> str:
        return "github.com"

    @pytest.fixture
    def known_id(self) -> str:
        return "secret/runwrap/github.com@1"

    @pytest.fixture
    def known_username(self) -> str:
        return "alice"

    @pytest.fixture
    def known_password(self) -> str:
        return "pw-github"

    @pytest.fixture
    def unknown_domain(self) -> str:
        return "nothing-here.example"


class TestOpenBaoKv1Contract(TestOpenBaoKv2Contract):
    @pytest.fixture
    def provider(self, make_provider: MakeProvider) -> Iterator[OpenBaoProvider]:
        yield make_provider(mount="kv1")

    @pytest.fixture
    def known_id(self) -> str:
        return "kv1/runwrap/github.com"

    @pytest.fixture
    def known_username(self) -> str:
        return KV1_GITHUB["username"]

    @pytest.fixture
    def known_password(self) -> str:
        return KV1_GITHUB["password"]


def test_registered_as_openbao_and_vault() -> None:
    found = available()
    assert found["openbao"] is OpenBaoProvider and found["vault"] is VaultProvider
    assert issubclass(VaultProvider, OpenBaoProvider) and VaultProvider.name == "vault"
    assert set(OpenBaoProvider.options) == {"address", "mount", "prefix", "token_file", "role_id_file",
                                            "secret_id_file", "ca_cert", "namespace"}
    assert all(help_text and "\n" not in help_text for help_text in OpenBaoProvider.options.values())


def test_vault_is_the_same_provider_under_its_own_name(bao: BaoServer, token_file) -> None:
    with load("vault", {"address": bao.address, "token_file": str(token_file)}) as provider:
        assert provider.lookup(Query(domain="github.com")).password.reveal() == "pw-github"
        with pytest.raises(NotFound) as caught:
            provider.lookup(Query(domain="nothing-here.example"))
        assert str(caught.value).startswith("vault: ")


def test_the_most_specific_domain_wins_then_parents(make_provider: MakeProvider) -> None:
    provider = make_provider()
    assert provider.lookup(Query(domain="api.example.org")).username == API_EXAMPLE["username"]
    deep = provider.lookup(Query(domain="www.shop.example.org"))
    assert (deep.username, deep.domain, deep.credential_id) == ("bob", "example.org", "secret/runwrap/example.org@1")
    with pytest.raises(NotFound) as caught:
        provider.lookup(Query(domain="a.b.nowhere.example"))
    message = str(caught.value)
    for path in ("secret/runwrap/a.b.nowhere.example", "secret/runwrap/b.nowhere.example",
                 "secret/runwrap/nowhere.example"):
        assert path in message
    assert "secret/runwrap/example " not in message  # never a bare top-level label


def test_every_key_is_a_field_and_the_standard_ones_keep_their_meaning(make_provider: MakeProvider) -> None:
    item = make_provider().lookup(Query(domain="github.com"))
    assert item.uri == GITHUB["uri"] and item.domain == "github.com"
    assert item.notes is not None and item.notes.reveal() == GITHUB["notes"]
    assert item.totp_secret is not None and totp(item.totp_secret) == totp("JBSWY3DPEHPK3PXP")
    assert {key: value.reveal() for key, value in item.extra.items()} == GITHUB
    example = make_provider().lookup(Query(domain="example.org"))
    assert example.extra["port"].reveal() == "5432"  # a JSON number, as text
    assert example.totp_secret is not None and totp(example.totp_secret) == totp("JBSWY3DPEHPK3PXP")
    assert "sk-github-123" not in repr(item) and "api_key" in repr(item)  # names show, values never
    item.wipe()
    assert all(not value for value in item.extra.values())


@pytest.mark.parametrize("path", ["secret/team/deploy", "kv1/team/deploy", "secret/runwrap/github.com"])
def test_an_id_is_a_path_as_bao_kv_get_takes_it(bao: BaoServer, listener_token: str,
                                                make_provider: MakeProvider, path: str) -> None:
    cli = json.loads(bao.cli("kv", "get", "-format=json", path, token=listener_token).stdout)
    expected = cli["data"]["data"] if "metadata" in cli["data"] else cli["data"]
    item = make_provider().lookup(Query(id=path))
    assert {key: value.reveal() for key, value in item.extra.items()} == expected
    assert item.password.reveal() == expected["password"]


def test_an_id_is_also_a_path_as_bao_read_takes_it(bao: BaoServer, listener_token: str,
                                                   make_provider: MakeProvider) -> None:
    cli = json.loads(bao.cli("read", "-format=json", "kv1/team/deploy", token=listener_token).stdout)
    item = make_provider().lookup(Query(id="kv1/team/deploy"))
    assert {key: value.reveal() for key, value in item.extra.items()} == cli["data"] == DEPLOY_V1
    assert item.credential_id == "kv1/team/deploy" and item.lease is None


def test_kv2_versions_latest_by_default_and_pinned_with_at(make_provider: MakeProvider) -> None:
    provider = make_provider()
    latest = provider.lookup(Query(id="secret/team/deploy"))
    assert (latest.password.reveal(), latest.credential_id) == (DEPLOY_V2["password"], "secret/team/deploy@2")
    pinned = provider.lookup(Query(id="secret/team/deploy@1"))
    assert (pinned.password.reveal(), pinned.credential_id) == (DEPLOY_V1["password"], "secret/team/deploy@1")
    assert provider.lookup(Query(id=latest.credential_id)).password.reveal() == DEPLOY_V2["password"]
    with pytest.raises(NotFound):
        provider.lookup(Query(id="secret/team/deploy@9"))


def one_line_error(provider: OpenBaoProvider, query: Query, kind: type[RunwrapError]) -> str:
    with pytest.raises(kind) as caught:
        provider.lookup(query)
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message
    for value in ("pw-", "sk-github", "alice"):
        assert value not in message and value not in repr(caught.value.args)
    return message


def test_missing_item_is_not_found(make_provider: MakeProvider) -> None:
    message = one_line_error(make_provider(), Query(id="secret/runwrap/absent.example"), NotFound)
    assert message == "openbao: no item at secret/runwrap/absent.example"


def test_deleted_latest_version_says_so(make_provider: MakeProvider) -> None:
    provider = make_provider()
    message = one_line_error(provider, Query(id="secret/runwrap/deleted.test"), NotFound)
    assert "version 1 of secret/runwrap/deleted.test was deleted" in message and "bao kv undelete" in message
    by_domain = one_line_error(provider, Query(domain="deleted.test"), NotFound)
    assert "secret/runwrap/deleted.test (version 1 deleted)" in by_domain


def test_destroyed_latest_version_says_so(make_provider: MakeProvider) -> None:
    message = one_line_error(make_provider(), Query(id="secret/runwrap/destroyed.test"), NotFound)
    assert "version 1 of secret/runwrap/destroyed.test was destroyed" in message


def test_a_path_outside_the_policy_is_permission_denied(bao: BaoServer, make_provider: MakeProvider) -> None:
    bao.kv_put("secret/private/root-only", {"password": "pw-root-only"})
    provider = make_provider()
    message = one_line_error(provider, Query(id="secret/private/root-only"), NotFound)
    assert message.startswith("openbao: permission denied on secret/private/root-only")
    assert "pw-root-only" not in message
    # The provider keeps working after a refusal.
    assert provider.lookup(Query(domain="github.com")).username == "alice"


def test_option_errors_are_one_line_and_name_the_fix(bao: BaoServer, token_file, tmp_path) -> None:
    cases = [
        ({"address": "ftp://127.0.0.1:1"}, "address must be http(s)://HOST[:PORT]"),
        ({"address": "http://me:hunter2@127.0.0.1:1"}, "must not hold a user name or password"),
        ({"address": bao.address, "token_file": str(token_file), "role_id_file": str(token_file)},
         "either token_file or role_id_file"),
        ({"address": bao.address, "role_id_file": str(token_file)}, "needs both role_id_file and secret_id_file"),
        ({"address": bao.address, "token_file": str(tmp_path / "missing")}, "cannot read token_file"),
        ({"address": bao.address, "token_file": str(token_file), "ca_cert": str(token_file)},
         "ca_cert is set but the address"),
        ({"address": bao.address, "token_file": str(token_file), "colour": "red"}, "unknown option colour"),
    ]
    for options, expected in cases:
        with pytest.raises(ProviderError) as caught:
            OpenBaoProvider(options)
        assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_token_file_others_can_read_is_refused(bao: BaoServer, token_file) -> None:
    token_file.chmod(0o644)
    with pytest.raises(ProviderError, match="can be read by other users; chmod 600 it"):
        OpenBaoProvider({"address": bao.address, "token_file": str(token_file)})


def test_namespace_option_reads_inside_that_namespace(bao: BaoServer, tmp_path) -> None:
    bao.ok("POST", "sys/namespaces/team-ns", {})
    bao.ok("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, namespace="team-ns")
    bao.ok("POST", "secret/data/runwrap/github.com", {"data": {"password": "pw-in-namespace"}}, namespace="team-ns")
    bao.ok("PUT", "sys/policies/acl/runwrap", {"policy": LISTENER_POLICY}, namespace="team-ns")
    token = bao.ok("POST", "auth/token/create", {"policies": ["runwrap"], "no_default_policy": True},
                   namespace="team-ns")["auth"]["client_token"]
    token_file = write_secret_file(tmp_path / "ns-token", token)
    with OpenBaoProvider({"address": bao.address, "token_file": str(token_file), "namespace": "team-ns"}) as p:
        assert p.lookup(Query(domain="github.com")).password.reveal() == "pw-in-namespace"
    # Without the namespace the same token reads the root namespace, where its policy grants nothing.
    with OpenBaoProvider({"address": bao.address, "token_file": str(token_file)}) as outside:
        with pytest.raises(NotFound, match="permission denied"):
            outside.lookup(Query(domain="github.com"))
