"""The pass provider against a real password store, encrypted with throwaway gpg keys in a temp GNUPGHOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.credential import Query
from runwrap.errors import NotFound, ProviderError
from runwrap.providers.password_store import PassProvider, entry_hosts, parse_entry
from runwrap.testing.contract import ProviderContract
from runwrap.totp import totp

PASSPHRASE = "correct passphrase for the test key"
ENTRIES = {
    "github.com": "pw-github\nlogin: alice\nurl: https://github.com/login\n"
    "otpauth://totp/GitHub:alice?secret=JBSWY3DPEHPK3PXP&issuer=GitHub\nrecovery: 1111 2222\n",
    "web/example.org": "pw-example\nusername: bob\n",
    "api.example.org": "pw-api\nuser: api\n",
    "gitlab.com/carol": "pw-carol\nuser: carol\n",
    "gitlab.com/dave": "pw-dave\nuser: dave\n",
    "notes/wifi": "pw-wifi\n",
}


def gpg(home: Path, *args: str, stdin: str = "") -> str:
    proc = subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), *args],
        input=stdin.encode(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    return proc.stdout.decode()


def new_key(home: Path, uid: str, passphrase: str) -> str:
    gpg(
        home,
        "--pinentry-mode",
        "loopback",
        "--passphrase-fd",
        "0",
        "--quick-gen-key",
        uid,
        "default",
        "default",
        "never",
        stdin=passphrase,
    )
    listing = gpg(home, "--list-secret-keys", "--with-colons", uid)
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def make_store(home: Path, store: Path, fingerprint: str, entries: dict[str, str]) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GNUPGHOME": str(home),
        "PASSWORD_STORE_DIR": str(store),
    }
    subprocess.run(["pass", "init", fingerprint], env=env, check=True, capture_output=True, timeout=60)
    for name, text in entries.items():
        subprocess.run(
            ["pass", "insert", "-m", name],
            env=env,
            input=text.encode(),
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def stores() -> Iterator[tuple[Path, Path]]:
    """(open store, store whose key has a passphrase), both in one throwaway GNUPGHOME."""
    # A short path: gpg-agent's socket lives in GNUPGHOME and socket paths are limited to ~107 bytes.
    home = Path(tempfile.mkdtemp(prefix="rwgpg"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GNUPGHOME", str(home))
        try:
            open_key = new_key(home, "runwrap open <open@example.invalid>", "")
            locked_key = new_key(home, "runwrap locked <locked@example.invalid>", PASSPHRASE)
            make_store(home, home / "open", open_key, ENTRIES)
            make_store(home, home / "locked", locked_key, {"github.com": "pw-locked\nlogin: locked\n"})
            yield home / "open", home / "locked"
        finally:
            subprocess.run(
                ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], timeout=30, check=False
            )
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def open_store(stores: tuple[Path, Path]) -> Path:
    return stores[0]


@pytest.fixture
def locked_store(stores: tuple[Path, Path]) -> Path:
    # Forget any passphrase an earlier test gave the agent, so every test starts locked.
    subprocess.run(["gpgconf", "--reload", "gpg-agent"], timeout=30, check=True)
    return stores[1]


class TestPassContract(ProviderContract):
    @pytest.fixture
    def provider(self, open_store: Path) -> Iterator[PassProvider]:
        provider = PassProvider({"store": str(open_store)})
        yield provider
        provider.close()

    @pytest.fixture
    def known_domain(self) -> str:
        return "github.com"

    @pytest.fixture
    def known_id(self) -> str:
        return "github.com"

    @pytest.fixture
    def known_username(self) -> str:
        return "alice"

    @pytest.fixture
    def known_password(self) -> str:
        return "pw-github"

    @pytest.fixture
    def unknown_domain(self) -> str:
        return "bitbucket.org"


def test_an_entry_is_parsed_into_every_field(open_store: Path) -> None:
    item = PassProvider({"store": str(open_store)}).lookup(Query(domain="github.com"))
    assert (item.domain, item.uri) == ("github.com", "https://github.com/login")
    assert item.totp_secret is not None and item.totp_secret.reveal().startswith("otpauth://totp/")
    assert totp(item.totp_secret, 1700000000) == "324550"
    assert item.notes is not None and item.notes.reveal() == "recovery: 1111 2222"


def test_store_from_password_store_dir(open_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSWORD_STORE_DIR", str(open_store))
    item = PassProvider().lookup(Query(domain="www.example.org"))
    assert (item.credential_id, item.username, item.password.reveal()) == (
        "web:example.org",
        "bob",
        "pw-example",
    )


def test_the_most_specific_entry_wins(open_store: Path) -> None:
    item = PassProvider({"store": str(open_store)}).lookup(Query(domain="api.example.org"))
    assert (item.credential_id, item.password.reveal()) == ("api.example.org", "pw-api")


def test_two_entries_for_one_host_are_ambiguous_until_asked_by_id(open_store: Path) -> None:
    provider = PassProvider({"store": str(open_store)})
    with pytest.raises(ProviderError) as caught:
        provider.lookup(Query(domain="gitlab.com"))
    message = str(caught.value)
    assert message.startswith("2 items match domain gitlab.com: gitlab.com:carol, gitlab.com:dave")
    assert "pw-" not in message
    item = provider.lookup(Query(id="gitlab.com:dave"))
    assert (item.username, item.password.reveal()) == ("dave", "pw-dave")


def test_entries_without_a_domain_are_found_by_id_only(open_store: Path) -> None:
    provider = PassProvider({"store": str(open_store)})
    assert provider.lookup(Query(id="notes:wifi")).password.reveal() == "pw-wifi"
    with pytest.raises(NotFound):
        provider.lookup(Query(domain="wifi"))


def test_pass_show_gets_a_scrubbed_environment_and_no_secret_in_argv(
    open_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real `pass` earlier on PATH that records what it was given, then runs the real one.
    seen = tmp_path / "seen"
    wrapper = tmp_path / "bin" / "pass"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\nenv > {seen}.env\necho "$@" > {seen}.argv\nexec {shutil.which("pass")} "$@"\n'
    )
    wrapper.chmod(0o700)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "listener-only-value")
    item = PassProvider({"store": str(open_store)}).lookup(Query(domain="github.com"))
    assert item.password.reveal() == "pw-github"
    env = dict(line.split("=", 1) for line in Path(f"{seen}.env").read_text().splitlines() if "=" in line)
    assert "AWS_SECRET_ACCESS_KEY" not in env and "listener-only-value" not in Path(f"{seen}.env").read_text()
    assert env["PASSWORD_STORE_DIR"] == str(open_store)
    assert Path(f"{seen}.argv").read_text().split() == ["show", "--", "github.com"]


def test_a_key_that_needs_a_passphrase_gives_a_clear_error(locked_store: Path) -> None:
    provider = PassProvider({"store": str(locked_store)})
    with pytest.raises(ProviderError) as caught:
        provider.lookup(Query(domain="github.com"))
    message = str(caught.value)
    assert "needs its passphrase" in message and "runwrap listen" in message
    assert "pw-locked" not in message


def test_the_prompt_unlocks_the_key_at_start(locked_store: Path) -> None:
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return PASSPHRASE

    provider = PassProvider({"store": str(locked_store)}, prompt=prompt)
    assert len(asked) == 1 and str(locked_store) in asked[0]
    subprocess.run(["gpgconf", "--reload", "gpg-agent"], timeout=30, check=True)  # the agent forgets it...
    assert provider.lookup(Query(domain="github.com")).password.reveal() == "pw-locked"  # ...we do not
    provider.close()


def test_a_wrong_passphrase_is_refused_at_start(locked_store: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        PassProvider({"store": str(locked_store)}, prompt=lambda _: "wrong")
    assert "does not unlock" in str(caught.value)


def test_a_store_this_keyring_cannot_decrypt(
    open_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = Path(tempfile.mkdtemp(prefix="rwgpg"))
    monkeypatch.setenv("GNUPGHOME", str(empty))
    try:
        with pytest.raises(ProviderError) as caught:
            PassProvider({"store": str(open_store)}).lookup(Query(domain="github.com"))
        assert "no secret key" in str(caught.value)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(empty), "--kill", "gpg-agent"], timeout=30, check=False)
        shutil.rmtree(empty, ignore_errors=True)


def test_missing_store_and_missing_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProviderError) as caught:
        PassProvider({"store": str(tmp_path / "nope")})
    assert "no password store" in str(caught.value)
    assert PassProvider.unusable_reason() is None
    monkeypatch.setenv("PATH", str(tmp_path))
    reason = PassProvider.unusable_reason()
    assert reason is not None and "apt-get install pass" in reason


@pytest.mark.parametrize(
    ("entry", "hosts"),
    [
        ("github.com", ["github.com"]),
        ("web/GitHub.com", ["github.com"]),
        ("github.com/alice", ["github.com"]),
        ("github.com/alice.smith", ["github.com"]),
        ("mail/alice", []),
        ("x/.hidden./y", []),
    ],
)
def test_entry_hosts(entry: str, hosts: list[str]) -> None:
    assert entry_hosts(entry) == hosts


def test_parse_entry_keeps_only_the_first_of_each_key() -> None:
    item = parse_entry("a.com/x", b"pw\nUser: first\nlogin: second\nURL: https://a.com\nfree text\n")
    assert (item.username, item.uri, item.credential_id, item.domain) == (
        "first",
        "https://a.com",
        "a.com:x",
        "a.com",
    )
    assert item.notes is not None and item.notes.reveal() == "login: second\nfree text"


def test_key_value_lines_are_fields_by_their_key() -> None:
    item = parse_entry("a.com", b"pw\nlogin: al\napi_key: sk-123\nAWS_ID:  AKIA9\nhttps://not-a-key\nfree text\n")
    values = {name: value.reveal() for name, value in item.values(["api_key", "AWS_ID", "https", "login"]).items()}
    assert values == {"api_key": "sk-123", "AWS_ID": "AKIA9", "login": "al"}
    assert item.username == "al" and item.field_names() == ["username", "password", "notes", "domain", "credential_id",
                                                             "AWS_ID", "api_key", "login"]
