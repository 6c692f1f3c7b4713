"""The pytest plugin as its users meet it: a project's own tests, run by pytest in a subprocess.

The plugin is loaded through the installed `pytest11` entry point, not by these tests, so a broken
registration fails here too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

VALUES = ("alligator5", "from-my-vault")

USER_TESTS = """\
from pathlib import Path

from runwrap import Client, Secret
from runwrap.testing.listener import RunningListener

RECORD = Path(__file__).parent / "record.txt"


def test_client_fetches_from_the_example_vault(runwrap_listener, runwrap_client):
    assert isinstance(runwrap_client, Client)
    assert runwrap_client.connection.address == f"unix:{runwrap_listener.socket}"
    with runwrap_client.credential(domain="github.com") as cred:
        assert isinstance(cred.password, Secret)
        assert cred.username.reveal() == "example"
        assert len(cred.password) == 10
    assert not cred.password


def test_listener_serves_the_cli_as_the_paired_consumer(runwrap_listener, tmp_path):
    assert isinstance(runwrap_listener, RunningListener)
    RECORD.write_text(f"{runwrap_listener.process.pid} {runwrap_listener.home}")
    profile = tmp_path / "p.yaml"
    profile.write_text("credentials:\\n  - domain: github.com\\n    env:\\n      TOKEN: password\\n")
    result = runwrap_listener.run(str(profile), "--", "sh", "-c", 'echo "token=$TOKEN"')
    assert result.stdout == "token=***\\n"
"""

FAKE_VAULT = """\
import json, sys
query = json.load(sys.stdin)
if query.get("domain") == "internal.example":
    print(json.dumps({"username": "robot", "password": "from-my-vault", "credential_id": "fake-1",
                      "domain": "internal.example"}))
else:
    print(json.dumps({"error": "not_found"}))
    sys.exit(1)
"""

PROVIDER_TESTS = f"""\
import pytest
from pathlib import Path
from runwrap import NotFound

VAULT = "{sys.executable} " + str(Path(__file__).parent / "fake_vault.py")


@pytest.mark.runwrap_provider("command", command=VAULT)
def test_marker_names_the_provider(runwrap_client):
    with runwrap_client.credential(domain="internal.example") as cred:
        assert cred.username.reveal() == "robot"
        assert cred.password.reveal() == "from-my-vault"
    with pytest.raises(NotFound):
        runwrap_client.credential(domain="github.com")


@pytest.mark.runwrap_provider("example")
@pytest.mark.parametrize("runwrap_listener", [{{"provider": "command", "command": VAULT}}], indirect=True)
def test_indirect_parameter_names_the_provider_and_wins(runwrap_listener, runwrap_client):
    assert runwrap_listener.provider == "command"
    with runwrap_client.credential(domain="internal.example", fields=["username"]) as cred:
        assert cred.username.reveal() == "robot"


@pytest.mark.runwrap_provider("nonesuch")
def test_an_unknown_provider_is_an_error(runwrap_listener):
    pass


@pytest.mark.runwrap_provider()
def test_a_marker_without_a_name_is_an_error(runwrap_listener):
    pass
"""

# Assertions compare Secrets (or their lengths), never revealed text: pytest's assertion
# introspection prints every intermediate value, and a revealed value is a plain str (docs/api.md).
FAILING_TEST = """\
from runwrap import Secret


def test_a_wrapper_that_fails(runwrap_client):
    cred = runwrap_client.credential(domain="github.com")
    password = cred.password
    assert password == Secret("not-the-password"), f"unexpected token {password} in {cred}"


def test_a_wrapper_that_fails_on_length(runwrap_client):
    with runwrap_client.credential(domain="github.com") as cred:
        assert len(cred.password) == 3
"""

UNRELATED_TEST = """\
import sys


def test_nothing_of_runwrap_is_loaded_unless_asked_for():
    assert "runwrap.testing.plugin" in sys.modules  # the entry point loaded it
    heavy = [m for m in sys.modules if m.startswith(("runwrap.", "noise", "cryptography", "typer", "yaml"))]
    assert heavy == ["runwrap.testing", "runwrap.testing.plugin"], heavy
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # As a user's machine: plugins autoload, no runwrap home of ours leaks in.
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("RUNWRAP_HOME", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers", *args, timeout=180)


def test_fixtures_give_a_paired_client_and_listener_and_clean_up(project):
    project.makepyfile(test_wrapper=USER_TESTS)
    result = run(project, "-v")
    result.assert_outcomes(passed=2)
    pid, home = (project.path / "record.txt").read_text().split()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)  # the listener was stopped (and reaped) at teardown
    assert not Path(home).exists()


def test_the_test_names_the_provider_by_marker_or_parameter(project):
    project.makepyfile(test_providers=PROVIDER_TESTS, fake_vault=FAKE_VAULT)
    result = run(project, "-v", "-rE")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines([
        "*test_indirect_parameter_names_the_provider_and_wins?runwrap_listener0? PASSED*",
        "runwrap_listener: runwrap listen exited with 1: runwrap: unknown provider 'nonesuch'; known providers:*",
        '*use @pytest.mark.runwrap_provider("NAME", option="value", ...)*',
    ])


def test_a_failing_user_test_shows_no_secret_even_with_locals(project):
    project.makepyfile(test_failing=FAILING_TEST)
    result = run(project, "--showlocals", "--tb=long", "-vv")
    result.assert_outcomes(failed=2)
    output = result.stdout.str() + result.stderr.str()
    assert "password   = Secret(***)" in output and "cred       = Credential(" in output
    assert "unexpected token Secret(***) in Credential(" in output
    assert "assert Secret(***) == Secret(***)" in output
    assert "where 10 = len(Secret(***))" in output
    assert [value for value in VALUES if value in output] == []


def test_a_project_that_does_not_use_the_fixtures_is_untouched(project):
    project.makepyfile(test_unrelated=UNRELATED_TEST)
    result = run(project, "-W", "error")
    result.assert_outcomes(passed=1)
