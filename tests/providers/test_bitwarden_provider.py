"""The bitwarden provider: the real `bw` for the states reachable without a server, and a stand-in `bw`
(tests/providers/bin/bw, speaking the real CLI's JSON shapes) for unlocked vaults, serve and fallback."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runwrap.credential import Query
from runwrap.errors import NotFound, ProviderError
from runwrap.providers.bitwarden import BitwardenProvider, _Serve, item_from_json, pick, search_term
from runwrap.testing.contract import ProviderContract
from runwrap.totp import totp

HERE = Path(__file__).parent
REPO = HERE.parent.parent
SESSION = "fake-session-key-0123456789"
MASTER = "the master password"
GITHUB_ID = "0e4c1f2a-1111-4000-8000-000000000001"


def cipher(id_: str, name: str, uris: list[tuple[int | None, str]], username: str, password: str, **extra: Any) -> dict:
    """An item as apps/cli's CipherResponse serialises it (field order included)."""
    return {
        "passwordHistory": None,
        "revisionDate": "2026-01-02T03:04:05.000Z",
        "creationDate": "2026-01-02T03:04:05.000Z",
        "deletedDate": extra.get("deletedDate"),
        "object": "item",
        "id": id_,
        "organizationId": None,
        "folderId": None,
        "type": extra.get("type", 1),
        "reprompt": 0,
        "name": name,
        "notes": extra.get("notes"),
        "favorite": False,
        "login": {
            "fido2Credentials": [],
            "uris": [{"match": match, "uri": uri} for match, uri in uris],
            "username": username,
            "password": password,
            "totp": extra.get("totp"),
            "passwordRevisionDate": None,
        },
        "collectionIds": [],
    }


ITEMS = [
    cipher(
        GITHUB_ID,
        "GitHub",
        [(None, "https://github.com/login")],
        "alice",
        "pw-github",
        totp="JBSWY3DPEHPK3PXP",
        notes="recovery codes",
    ),
    cipher(
        "0e4c1f2a-1111-4000-8000-000000000002",
        "Example",
        [(5, "https://never.example.net"), (0, "example.org")],
        "bob",
        "pw-example",
    ),
    cipher(
        "0e4c1f2a-1111-4000-8000-000000000003",
        "Old GitLab",
        [(None, "https://gitlab.com")],
        "old",
        "pw-old",
        deletedDate="2026-02-01T00:00:00.000Z",
    ),
    cipher("0e4c1f2a-1111-4000-8000-000000000004", "Bitbucket 1", [(None, "https://bitbucket.org")], "b1", "pw-b1"),
    cipher("0e4c1f2a-1111-4000-8000-000000000005", "Bitbucket 2", [(1, "bitbucket.org:443")], "b2", "pw-b2"),
    {
        "object": "item",
        "id": "0e4c1f2a-1111-4000-8000-000000000006",
        "type": 2,
        "name": "github.com note",
        "notes": "a secure note",
        "secureNote": {"type": 0},
        "deletedDate": None,
    },
]


class FakeVault:
    """The stand-in bw's state folder ($BITWARDENCLI_APPDATA_DIR)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state = {"status": "locked", "password": MASTER, "session": SESSION, "items": ITEMS}
        self.save()

    def save(self) -> None:
        (self.folder / "fake.json").write_text(json.dumps(self.state))

    def set(self, **changes: Any) -> None:
        self.state.update(changes)
        self.save()

    def calls(self) -> list[dict[str, Any]]:
        path = self.folder / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeVault:
    folder = tmp_path / "bwdata"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("BITWARDENCLI_APPDATA_DIR", str(folder))
    monkeypatch.setenv("PATH", f"{HERE / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("BW_SESSION", SESSION)
    return FakeVault(folder)


@pytest.fixture
def make(fake: FakeVault) -> Iterator[Callable[..., BitwardenProvider]]:
    made: list[BitwardenProvider] = []

    def make(options: dict[str, str] | None = None, prompt: Callable[[str], str] | None = None) -> BitwardenProvider:
        provider = BitwardenProvider(options, prompt=prompt)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


class TestBitwardenContract(ProviderContract):
    @pytest.fixture
    def provider(self, make: Callable[..., BitwardenProvider]) -> BitwardenProvider:
        return make()

    @pytest.fixture
    def known_domain(self) -> str:
        return "github.com"

    @pytest.fixture
    def known_id(self) -> str:
        return GITHUB_ID

    @pytest.fixture
    def known_username(self) -> str:
        return "alice"

    @pytest.fixture
    def known_password(self) -> str:
        return "pw-github"

    @pytest.fixture
    def unknown_domain(self) -> str:
        return "gitlab.org"


@pytest.mark.parametrize(("serve", "transport"), [("unix", "serve-unix"), ("tcp", "serve-tcp"), ("off", "cli")])
def test_each_transport_answers_lookups(
    make: Callable[..., BitwardenProvider], fake: FakeVault, serve: str, transport: str
) -> None:
    provider = make({"serve": serve})
    assert provider.transport == transport
    item = provider.lookup(Query(domain="api.github.com"))
    assert (item.credential_id, item.domain, item.uri) == (GITHUB_ID, "github.com", "https://github.com/login")
    assert item.totp_secret is not None and totp(item.totp_secret, 1700000000) == "324550"
    assert item.notes is not None and item.notes.reveal() == "recovery codes"
    assert provider.lookup(Query(id=GITHUB_ID)).password.reveal() == "pw-github"
    commands = [call["argv"][0] for call in fake.calls()]
    if serve == "off":
        assert commands == ["status", "list", "get"]
    else:
        assert commands == ["status", "serve"]  # lookups went over HTTP, no Node start-up each


def test_serve_listens_on_a_private_unix_socket_and_stops_on_close(make: Callable[..., BitwardenProvider]) -> None:
    provider = make()
    serve = provider._serve
    assert serve is not None and isinstance(serve.address, str)
    assert (os.stat(serve.folder).st_mode & 0o777) == 0o700
    pid = serve.proc.pid
    provider.close()
    provider.close()
    assert serve.proc.poll() is not None and not os.path.exists(serve.folder)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
    with pytest.raises(ProviderError):
        provider.lookup(Query(domain="github.com"))


def test_the_prompt_unlocks_through_an_environment_variable_never_argv(
    make: Callable[..., BitwardenProvider], fake: FakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BW_SESSION")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "listener-only")
    asked: list[str] = []
    provider = make({"serve": "off"}, prompt=lambda text: asked.append(text) or MASTER)
    assert asked == ["Bitwarden master password: "]
    assert provider.lookup(Query(domain="github.com")).username == "alice"
    calls = fake.calls()
    unlock = next(call for call in calls if call["argv"][0] == "unlock")
    assert unlock["argv"] == ["unlock", "--raw", "--passwordenv", "RUNWRAP_BW_PASSWORD"]
    assert "RUNWRAP_BW_PASSWORD" in unlock["env"]
    for call in calls:
        assert MASTER not in " ".join(call["argv"]) and SESSION not in " ".join(call["argv"])
        assert "AWS_SECRET_ACCESS_KEY" not in call["env"]
        if call["argv"][0] != "unlock":
            assert "RUNWRAP_BW_PASSWORD" not in call["env"]
    assert calls[-1]["session"] == SESSION  # the session from unlock is used afterwards


def test_a_wrong_master_password_is_refused(
    make: Callable[..., BitwardenProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BW_SESSION")
    with pytest.raises(ProviderError) as caught:
        make(prompt=lambda _: "guess")
    assert "not accepted" in str(caught.value) and "guess" not in str(caught.value)


def test_locked_without_a_prompt_says_how_to_unlock(
    make: Callable[..., BitwardenProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BW_SESSION")
    with pytest.raises(ProviderError) as caught:
        make()
    assert "locked" in str(caught.value) and "bw unlock --raw" in str(caught.value)


def test_logged_out_says_to_log_in(make: Callable[..., BitwardenProvider], fake: FakeVault) -> None:
    fake.set(status="unauthenticated")
    with pytest.raises(ProviderError) as caught:
        make(prompt=lambda _: MASTER)
    assert "bw login" in str(caught.value)


def test_a_vault_locked_after_start_gives_a_clear_error(
    make: Callable[..., BitwardenProvider], fake: FakeVault
) -> None:
    provider = make({"serve": "off"})
    fake.set(session="another-session")  # as after `bw lock` elsewhere
    with pytest.raises(ProviderError) as caught:
        provider.lookup(Query(domain="github.com"))
    assert "locked" in str(caught.value)


def test_falls_back_to_bw_get_when_serve_does_not_start(
    make: Callable[..., BitwardenProvider], fake: FakeVault, caplog: pytest.LogCaptureFixture
) -> None:
    fake.set(serve_broken=True)
    with caplog.at_level(logging.WARNING, logger="runwrap"):
        provider = make()
    assert provider.transport == "cli"
    assert "bw serve did not start" in caplog.text
    assert provider.lookup(Query(domain="github.com")).password.reveal() == "pw-github"


def test_a_serve_that_died_gives_a_clear_error(make: Callable[..., BitwardenProvider]) -> None:
    provider = make()
    assert provider._serve is not None
    provider._serve.proc.kill()
    provider._serve.proc.wait()
    with pytest.raises(ProviderError) as caught:
        provider.lookup(Query(domain="github.com"))
    assert "bw serve has stopped" in str(caught.value)


def test_ambiguity_trash_and_never_match(make: Callable[..., BitwardenProvider]) -> None:
    provider = make()
    with pytest.raises(ProviderError) as caught:
        provider.lookup(Query(domain="bitbucket.org"))
    assert str(caught.value).startswith("2 items match domain bitbucket.org: 0e4c1f2a-1111-4000-8000-000000000004, ")
    assert "pw-b" not in str(caught.value)
    with pytest.raises(NotFound):
        provider.lookup(Query(domain="gitlab.com"))  # in the trash
    with pytest.raises(NotFound):
        provider.lookup(Query(domain="never.example.net"))  # match detection "never"
    assert provider.lookup(Query(domain="www.example.org")).username == "bob"


# The parsing layer alone, on the shapes the CLI prints.


def test_pick_reads_a_cli_list_response() -> None:
    listing = {"object": "list", "data": ITEMS}
    item = pick(Query(domain="github.com"), listing)
    assert (item.username, item.password.reveal(), item.domain) == ("alice", "pw-github", "github.com")
    assert pick(Query(domain="github.com"), ITEMS).credential_id == GITHUB_ID  # `bw list items` without --response


def test_item_from_json_tolerates_missing_fields() -> None:
    item = item_from_json(
        {"id": "x", "type": 1, "login": {"uris": None, "username": None, "password": None}}, Query(id="x")
    )
    assert (item.credential_id, item.username, item.password.reveal(), item.uri, item.domain) == ("x", "", "", "", "")
    assert item.totp_secret is None and item.notes is None


@pytest.mark.parametrize(
    ("domain", "term"), [("api.github.com", "github.com"), ("github.com", "github.com"), ("localhost", "localhost")]
)
def test_search_term_finds_parents(domain: str, term: str) -> None:
    assert search_term(domain) == term


def test_bad_options(fake: FakeVault) -> None:
    with pytest.raises(ProviderError) as caught:
        BitwardenProvider({"serve": "maybe"})
    assert "unix, tcp or off" in str(caught.value)


# The real bw: the states reachable here without a Bitwarden server.


@pytest.fixture
def real_bw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    local = REPO / ".cache" / "npm" / "node_modules" / ".bin"
    monkeypatch.setenv("PATH", f"{os.environ['PATH']}:{local}")
    bw = shutil.which("bw")
    assert bw is not None, "the Bitwarden CLI is needed: npm install --prefix .cache/npm @bitwarden/cli"
    assert "tests/providers/bin" not in bw
    data = tmp_path / "real-bw-data"
    data.mkdir(mode=0o700)
    monkeypatch.setenv("BITWARDENCLI_APPDATA_DIR", str(data))
    monkeypatch.delenv("BW_SESSION", raising=False)
    return bw


def test_real_bw_status_shape_when_logged_out(real_bw: str) -> None:
    proc = subprocess.run(
        [real_bw, "status", "--response"],
        capture_output=True,
        timeout=60,
        env={**os.environ, "BW_NOINTERACTION": "true"},
    )
    answer = json.loads(proc.stdout)
    assert answer["success"] is True and answer["data"]["object"] == "template"
    assert answer["data"]["template"]["status"] == "unauthenticated"


def test_real_bw_logged_out_gives_a_clear_error(real_bw: str) -> None:
    assert BitwardenProvider.unusable_reason() is None
    with pytest.raises(ProviderError) as caught:
        BitwardenProvider(prompt=lambda _: "never asked")
    assert "not logged in" in str(caught.value) and "bw login" in str(caught.value)


def test_real_bw_serve_refuses_when_logged_out_and_leaves_nothing_behind(real_bw: str) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        _Serve.start(real_bw, "unix", {**os.environ, "BW_NOINTERACTION": "true"}, 60)
    assert "exited" in str(caught.value) and time.monotonic() - started < 60


def test_unusable_without_bw(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    reason = BitwardenProvider.unusable_reason()
    assert reason is not None and "npm install -g @bitwarden/cli" in reason


def test_custom_fields_are_fields_by_name() -> None:
    item = item_from_json({"id": "i-1", "login": {"username": "u", "password": "p"}, "fields": [
        {"name": "api_key", "value": "sk-1", "type": 1}, {"name": "region", "value": "eu", "type": 0},
        {"name": "enabled", "value": "true", "type": 2}, {"name": "linked", "value": None, "type": 3, "linkedId": 100},
        {"name": "bad name", "value": "x", "type": 0}]}, Query(id="i-1"))
    values = {name: value.reveal() for name, value in item.extra.items()}
    assert values == {"api_key": "sk-1", "region": "eu", "enabled": "true"}
