"""The keepass provider on real KDBX 4 files made with pykeepass, cross-checked with keepassxc-cli."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pykeepass import PyKeePass, create_database

from runwrap.credential import Query
from runwrap.errors import NotFound, ProviderError
from runwrap.providers.keepass import KeePassProvider
from runwrap.testing.contract import ProviderContract
from runwrap.totp import totp

MASTER = "kp-master-password"
OTP = "otpauth://totp/GitHub:alice?secret=JBSWY3DPEHPK3PXP&issuer=GitHub"


def cheap_kdf(kp: PyKeePass) -> None:
    """Argon2 with 2 rounds and 1 MiB instead of 14 rounds and 64 MiB: every test opens the file."""
    params = kp.kdbx.header.value.dynamic_header.kdf_parameters.data.dict
    params["I"].value, params["M"].value = 2, 1 << 20


class Vault:
    def __init__(self, root: Path) -> None:
        self.path = root / "vault.kdbx"
        kp = create_database(str(self.path), password=MASTER)
        web = kp.add_group(kp.root_group, "web")
        github = kp.add_entry(web, "GitHub", "alice", "pw-github", url="https://github.com/login", notes="n1")
        github.otp = OTP
        example = kp.add_entry(kp.root_group, "Example", "bob", "pw-example", url="https://example.org")
        example.set_custom_property("KP2A_URL_1", "https://example.net/app")
        example.set_custom_property("api_key", "sk-example-123", protect=True)
        kp.add_entry(kp.root_group, "Bitbucket one", "c1", "pw-b1", url="https://bitbucket.org")
        kp.add_entry(kp.root_group, "Bitbucket two", "c2", "pw-b2", url="bitbucket.org")
        trashed = kp.add_entry(kp.root_group, "Old GitLab", "old", "pw-old", url="https://gitlab.com")
        kp.trash_entry(trashed)
        cheap_kdf(kp)
        kp.save()
        self.github_id = str(github.uuid)
        self.bitbucket_ids = sorted(str(e.uuid) for e in kp.find_entries(url="bitbucket", regex=True))

        self.keyfile_path = root / "keyfile.kdbx"
        self.keyfile = root / "vault.key"
        self.keyfile.write_bytes(b"0123456789abcdef" * 4)
        kp2 = create_database(str(self.keyfile_path), password=None, keyfile=str(self.keyfile))
        kp2.add_entry(kp2.root_group, "Key only", "k", "pw-keyfile", url="https://key.example.com")
        cheap_kdf(kp2)
        kp2.save()


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Vault:
    return Vault(tmp_path_factory.mktemp("kdbx"))


def keepassxc_cli(*args: str, stdin: str = MASTER) -> str:
    proc = subprocess.run(
        ["keepassxc-cli", *args], input=f"{stdin}\n".encode(), capture_output=True, timeout=60, check=True
    )
    return proc.stdout.decode()


class TestKeePassContract(ProviderContract):
    @pytest.fixture
    def provider(self, vault: Vault) -> Iterator[KeePassProvider]:
        provider = KeePassProvider({"database": str(vault.path)}, prompt=lambda _: MASTER)
        yield provider
        provider.close()

    @pytest.fixture
    def known_domain(self) -> str:
        return "github.com"

    @pytest.fixture
    def known_id(self, vault: Vault) -> str:
        return vault.github_id

    @pytest.fixture
    def known_username(self) -> str:
        return "alice"

    @pytest.fixture
    def known_password(self) -> str:
        return "pw-github"

    @pytest.fixture
    def unknown_domain(self) -> str:
        return "gitlab.org"


@pytest.fixture
def provider(vault: Vault) -> Iterator[KeePassProvider]:
    provider = KeePassProvider({"database": str(vault.path)}, prompt=lambda _: MASTER)
    yield provider
    provider.close()


def test_the_file_is_kdbx_4(vault: Vault) -> None:
    header = vault.path.read_bytes()[:12]
    assert header[:8] == bytes.fromhex("03d9a29a67fb4bb5")  # the KeePass 2 signatures
    assert int.from_bytes(header[10:12], "little") == 4


def test_keepassxc_cli_reads_the_same_file(vault: Vault) -> None:
    assert keepassxc_cli("show", "-s", "-a", "Password", str(vault.path), "web/GitHub").strip() == "pw-github"
    assert (
        keepassxc_cli("show", "-a", "URL", str(vault.path), "web/GitHub").strip()
        == "https://github.com/login"
    )
    # Its TOTP code from the otp attribute is ours (either side of a period boundary).
    before = totp(OTP)
    code = keepassxc_cli("show", "-t", str(vault.path), "web/GitHub").strip()
    assert code in (before, totp(OTP))


def test_a_database_written_by_keepassxc_is_read(tmp_path: Path) -> None:
    path = tmp_path / "made-by-keepassxc.kdbx"
    keepassxc_cli("db-create", "-p", str(path), stdin=f"{MASTER}\n{MASTER}")
    keepassxc_cli(
        "add",
        "-u",
        "dora",
        "--url",
        "https://dora.example.com/x",
        "-p",
        str(path),
        "Dora",
        stdin=f"{MASTER}\npw-dora\npw-dora",
    )
    provider = KeePassProvider({"database": str(path)}, prompt=lambda _: MASTER)
    item = provider.lookup(Query(domain="api.dora.example.com"))
    assert (item.username, item.password.reveal(), item.domain) == ("dora", "pw-dora", "dora.example.com")


def test_every_field_and_the_totp_seed(provider: KeePassProvider) -> None:
    item = provider.lookup(Query(domain="github.com"))
    assert (item.uri, item.domain) == ("https://github.com/login", "github.com")
    assert item.totp_secret is not None and item.totp_secret.reveal() == OTP
    assert totp(item.totp_secret, 1700000000) == "324550"
    assert item.notes is not None and item.notes.reveal() == "n1"


def test_extra_urls_match(provider: KeePassProvider) -> None:
    item = provider.lookup(Query(domain="www.example.net"))
    assert (item.username, item.domain) == ("bob", "example.net")


def test_recycle_bin_entries_are_ignored(provider: KeePassProvider) -> None:
    with pytest.raises(NotFound):
        provider.lookup(Query(domain="gitlab.com"))


def test_two_entries_for_one_host_are_ambiguous(provider: KeePassProvider, vault: Vault) -> None:
    with pytest.raises(ProviderError) as caught:
        provider.lookup(Query(domain="bitbucket.org"))
    assert str(caught.value).startswith(
        f"2 items match domain bitbucket.org: {', '.join(vault.bitbucket_ids)}"
    )
    assert "pw-b" not in str(caught.value)


def test_password_from_an_environment_variable(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RW_KP_MASTER", MASTER)
    provider = KeePassProvider({"database": str(vault.path), "password_env": "RW_KP_MASTER"})
    assert provider.lookup(Query(domain="github.com")).username == "alice"
    assert getattr(provider._kp, "password", None) is None  # the master password is not kept


def test_key_file_only(vault: Vault) -> None:
    provider = KeePassProvider({"database": str(vault.keyfile_path), "keyfile": str(vault.keyfile)})
    assert provider.lookup(Query(domain="key.example.com")).password.reveal() == "pw-keyfile"


def test_wrong_password_fails_at_start_without_echoing_it(vault: Vault) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        KeePassProvider({"database": str(vault.path)}, prompt=lambda _: "not-the-master")
    assert "wrong master password" in str(caught.value) and "not-the-master" not in str(caught.value)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "database=PATH"),
        ({"database": "/no/such.kdbx"}, "no database file"),
        (
            {"database": "__vault__", "password_env": "RW_KP_UNSET_VARIABLE"},
            "RW_KP_UNSET_VARIABLE is not set",
        ),
        ({"database": "__vault__"}, "needs the master password"),
        ({"database": "__vault__", "keyfile": "/no/such.key"}, "no key file"),
    ],
)
def test_bad_options_say_what_to_fix(vault: Vault, options: dict[str, str], expected: str) -> None:
    options = {k: str(vault.path) if v == "__vault__" else v for k, v in options.items()}
    with pytest.raises(ProviderError) as caught:
        KeePassProvider(options)
    assert expected in str(caught.value)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.kdbx"
    bogus.write_bytes(b"not a keepass file at all")
    with pytest.raises(ProviderError) as caught:
        KeePassProvider({"database": str(bogus)}, prompt=lambda _: MASTER)
    assert "not a KeePass 2 database" in str(caught.value) and MASTER not in str(caught.value)


def test_closed_provider_refuses_lookups(provider: KeePassProvider) -> None:
    provider.close()
    with pytest.raises(ProviderError):
        provider.lookup(Query(domain="github.com"))


def test_custom_string_fields_are_fields_by_name(vault: Vault) -> None:
    with KeePassProvider({"database": str(vault.path)}, prompt=lambda _: MASTER) as provider:
        item = provider.lookup(Query(domain="example.org"))
    values = {name: value.reveal() for name, value in item.values(["api_key", "password", "nope"]).items()}
    assert values == {"api_key": "sk-example-123", "password": "pw-example"}
    assert "api_key" in item.field_names() and "sk-example-123" not in repr(item)
