"""The command provider against real scripts: the contract, not-found, failures that hide output, timeouts."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.credential import Query
from runwrap.errors import NotFound, ProviderError
from runwrap.providers.command import CommandProvider
from runwrap.testing.contract import ProviderContract

VAULT = """
import json, sys
ITEMS = [
    {"credential_id": "gh-1", "domain": "github.com", "username": "alice", "password": "s3cret-gh",
     "totp": "JBSWY3DPEHPK3PXP", "uri": "https://github.com/login", "notes": "the notes"},
    {"credential_id": "ex-2", "domain": "example.org", "username": "bob", "password": "s3cret-ex"},
]
query = json.load(sys.stdin)
for item in ITEMS:
    domain = query.get("domain")
    if item["credential_id"] == query.get("id") or (
        domain and (domain == item["domain"] or domain.endswith("." + item["domain"]))
    ):
        print(json.dumps(item))
        sys.exit(0)
print(json.dumps({"error": "not_found"}))
sys.exit(1)
"""


def script(tmp_path: Path, body: str, name: str = "vault") -> Path:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o700)
    return path


class TestCommandContract(ProviderContract):
    @pytest.fixture
    def provider(self, tmp_path: Path) -> Iterator[CommandProvider]:
        provider = CommandProvider({"command": str(script(tmp_path, VAULT))})
        yield provider
        provider.close()

    @pytest.fixture
    def known_domain(self) -> str:
        return "github.com"

    @pytest.fixture
    def known_id(self) -> str:
        return "gh-1"

    @pytest.fixture
    def known_username(self) -> str:
        return "alice"

    @pytest.fixture
    def known_password(self) -> str:
        return "s3cret-gh"

    @pytest.fixture
    def unknown_domain(self) -> str:
        return "gitlab.com"


def test_every_field_comes_through(tmp_path: Path) -> None:
    item = CommandProvider({"command": str(script(tmp_path, VAULT))}).lookup(Query(domain="github.com"))
    assert (item.credential_id, item.domain, item.uri) == ("gh-1", "github.com", "https://github.com/login")
    assert item.totp_secret is not None and item.totp_secret.reveal() == "JBSWY3DPEHPK3PXP"
    assert item.notes is not None and item.notes.reveal() == "the notes"


def test_arguments_are_split_without_a_shell_and_the_query_arrives_on_stdin(tmp_path: Path) -> None:
    echo = script(tmp_path, """
        import json, sys
        query = json.load(sys.stdin)
        print(json.dumps({"username": " ".join(sys.argv[1:]), "password": json.dumps(query)}))
    """)
    provider = CommandProvider({"command": f"{echo} 'two words' $HOME ;"})
    item = provider.lookup(Query(domain="a.example.com"))
    assert item.username == "two words $HOME ;"
    assert item.password.reveal() == '{"domain": "a.example.com"}'
    assert (item.credential_id, item.domain) == ("a.example.com", "a.example.com")


def test_a_failure_shows_neither_stdout_nor_stderr(tmp_path: Path) -> None:
    leaky = script(tmp_path, """
        import sys
        print("password=leaked-secret")
        print("stderr-leaked-secret", file=sys.stderr)
        sys.exit(3)
    """)
    with pytest.raises(ProviderError) as caught:
        CommandProvider({"command": str(leaky)}).lookup(Query(domain="github.com"))
    assert "status 3" in str(caught.value) and "leaked" not in str(caught.value)


def test_exit_1_without_the_not_found_json_is_an_error_not_a_miss(tmp_path: Path) -> None:
    broken = script(tmp_path, "import sys; print('oops'); sys.exit(1)\n")
    with pytest.raises(ProviderError) as caught:
        CommandProvider({"command": str(broken)}).lookup(Query(domain="github.com"))
    assert not isinstance(caught.value, NotFound)


@pytest.mark.parametrize("output", ["not json", "[1, 2]", '{"password": 5}'])
def test_output_that_is_not_a_json_object_of_strings_is_refused(tmp_path: Path, output: str) -> None:
    bad = script(tmp_path, f"print({output!r})\n")
    with pytest.raises(ProviderError) as caught:
        CommandProvider({"command": str(bad)}).lookup(Query(id="x"))
    assert output not in str(caught.value)


def test_timeout_stops_the_script_and_what_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    slow = script(tmp_path, f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        time.sleep(60)
    """)
    provider = CommandProvider({"command": str(slow), "timeout": "1"})
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        provider.lookup(Query(domain="github.com"))
    assert time.monotonic() - started < 10
    assert "longer than 1s" in str(caught.value)
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "needs --provider-option command="),
        ({"command": "/no/such/program"}, "not an executable"),
        ({"command": "'unbalanced"}, "cannot split"),
        ({"command": "true", "timeout": "soon"}, "number of seconds"),
        ({"command": "true", "timeout": "-1"}, "positive"),
    ],
)
def test_bad_options_say_what_to_fix(options: dict[str, str], expected: str) -> None:
    with pytest.raises(ProviderError) as caught:
        CommandProvider(options)
    assert expected in str(caught.value)


def test_the_script_inherits_the_listeners_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RW_TEST_TOKEN", "token-from-env")
    env = script(tmp_path, "import json, os; print(json.dumps({'password': os.environ['RW_TEST_TOKEN']}))\n")
    assert CommandProvider({"command": str(env)}).lookup(Query(id="x")).password.reveal() == "token-from-env"
    assert os.environ["RW_TEST_TOKEN"] == "token-from-env"
