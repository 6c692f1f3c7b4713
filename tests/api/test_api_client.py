"""`runwrap.Client` against a real listener: lookups, wiping, sessions, `env()`, and the CLI's errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap import Client, ConfigError, ConnectionFailed, Credential, Denied, NotFound, RunwrapError, Secret
from runwrap.credential import Query
from runwrap.errors import UsageError
from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.envdump import ENV_DUMPER, read_env_dump

GITHUB_ID = "8b4c5e0a-0000-4000-8000-000000000001"
TEST_ID = "8b4c5e0a-0000-4000-8000-000000000003"

@pytest.fixture
def client(listener: RunningListener) -> Iterator[Client]:
    with listener.client() as c:
        yield c


def test_credential_by_domain_holds_secrets_that_reveal_the_values(client):
    with client.credential(domain="api.github.com") as cred:
        assert isinstance(cred, Credential)
        assert all(isinstance(value, Secret) for value in cred.values())
        assert cred.username.reveal() == "example"
        assert cred["password"].reveal() == "alligator5"
        assert cred.credential_id.reveal() == GITHUB_ID
        assert "totp" not in cred  # the github.com item has no TOTP seed


def test_credential_by_id_with_named_fields_only(client):
    cred = client.credential(id=TEST_ID, fields=["username", "totp"])
    try:
        assert set(cred) == {"username", "totp"}
        assert cred.username.reveal() == "tester"
        code = cred.totp.reveal()
        assert len(code) == 6 and code.isdigit()
    finally:
        cred.wipe()
    assert cred.username.reveal() == "" and cred.totp.reveal() == ""


def test_one_field_may_be_named_as_a_string(client):
    with client.credential(domain="example.com", fields="password") as cred:
        assert list(cred) == ["password"]
        assert cred.password.reveal() == "correct-horse-battery-staple"


def test_leaving_the_with_block_wipes_every_field(client):
    with client.credential(domain="github.com") as cred:
        buffers = [cred[name].buffer for name in cred]
        assert all(buffers)
    assert all(len(buf) == 0 for buf in buffers)
    assert all(cred[name].reveal() == "" for name in cred)


def test_requests_share_one_session_and_closing_the_client_closes_it(listener):
    with listener.client() as client:
        client.credential(domain="github.com").wipe()
        channel = client.open()
        client.credential(domain="example.com").wipe()
        assert client.open() is channel
    assert channel.sock.fileno() == -1


def test_requests_carry_this_process_as_provenance(client, listener):
    client.credential(domain="test.com", fields=["username"]).wipe()
    event = [e for e in listener.audit_events() if e.get("event") == "request"][-1]
    assert event["decision"] == "allowed"
    assert event["query"] == {"domain": "test.com"}
    assert event["provenance"]["pid"] == str(os.getpid())


@pytest.mark.parametrize("kwargs", [{}, {"domain": "github.com", "id": GITHUB_ID}, {"domain": "not a host"},
                                    {"domain": "github.com", "fields": ["password", "not a field"]},
                                    {"domain": "github.com", "fields": []}])
def test_a_bad_request_is_a_usage_error_before_anything_is_sent(client, kwargs):
    with pytest.raises(UsageError) as info:
        client.credential(**kwargs)
    assert info.value.exit_status == 125 and info.value.connect_status == 1


def test_an_unpaired_home_is_a_config_error_at_construction(tmp_path):
    with pytest.raises(ConfigError, match="not paired"):
        Client(home=tmp_path)


def test_an_unknown_connection_name_is_a_config_error(listener):
    with pytest.raises(ConfigError, match="no connection named 'elsewhere'"):
        listener.client("elsewhere")


# ---- errors: the same types, and the same statuses `runwrap connect` exits with ----

def connect_status(listener: RunningListener, *args: str, home: Path | None = None) -> int:
    env = {**listener.env, "RUNWRAP_HOME": str(home or listener.home)}
    return listener.run("connect", *args, check=False, env=env).returncode


def test_not_found_is_notfound_with_connects_status_4(client, listener):
    with pytest.raises(NotFound) as info:
        client.credential(domain="nothing-here.invalid")
    assert info.value.connect_status == 4 == connect_status(listener, "--domain", "nothing-here.invalid")
    assert "nothing-here.invalid" in str(info.value)
    # The listener answered; the session goes on.
    channel = client.open()
    client.credential(domain="github.com").wipe()
    assert client.open() is channel


def test_denied_scope_is_denied_with_connects_status_4(listener):
    narrow = listener.paired_home("narrow", scope=["example.com"])
    with listener.client(home=narrow) as client:
        with client.credential(domain="example.com") as cred:
            assert cred.username.reveal() == "demo"
        with pytest.raises(Denied, match="scope") as info:
            client.credential(domain="github.com")
    assert info.value.connect_status == 4 == connect_status(listener, "--domain", "github.com", home=narrow)


def test_unreachable_listener_is_connection_failed_and_a_restart_is_picked_up():
    with RunningListener() as running:
        running.pair()
        with running.client() as client:
            client.credential(domain="github.com").wipe()
            running.stop()
            with pytest.raises(ConnectionFailed) as info:
                client.credential(domain="github.com")
            assert info.value.connect_status == 2 == connect_status(running, "--domain", "github.com")
            assert info.value.exit_status == 125
            running.start()
            client.credential(domain="github.com").wipe()  # a fresh session
            # A session the listener forgot (it restarted) is replaced without the caller noticing.
            running.stop()
            running.start()
            with client.credential(domain="github.com") as cred:
                assert cred.username.reveal() == "example"


# ---- env(): what `runwrap PROFILE -- cmd` gives its child, without the child ----

PROFILE = """\
credentials:
  - domain: github.com
    env:
      GH_USER: username
      GH_TOKEN: password
env:
  inherit: [PATH, HOME, "LC_*"]
  set:
    DEPLOY_ENV: production
"""


def test_env_is_exactly_the_environment_the_cli_gives_the_child(client, listener, tmp_path):
    profile = tmp_path / "deploy.yaml"
    profile.write_text(PROFILE)
    parent = {**listener.env, "HOME": "/home/somebody", "LC_ALL": "C.UTF-8", "AWS_SECRET_ACCESS_KEY": "no"}
    dump = tmp_path / "env.bin"
    subprocess.run([runwrap_executable(), str(profile), "--", sys.executable, "-c", ENV_DUMPER, str(dump)],
                   env=parent, check=True, timeout=60)
    env = client.env(profile, environ=parent)
    try:
        assert isinstance(env["GH_TOKEN"], Secret) and isinstance(env["DEPLOY_ENV"], str)
        revealed = {k: v.reveal() if isinstance(v, Secret) else v for k, v in env.items()}
    finally:
        for value in env.values():
            if isinstance(value, Secret):
                value.wipe()
    assert revealed == read_env_dump(dump)
    assert revealed["GH_TOKEN"] == "alligator5" and "AWS_SECRET_ACCESS_KEY" not in revealed


def test_env_finds_profiles_by_name_and_uses_the_profiles_connection(client, listener, tmp_path):
    (tmp_path / "named.yaml").write_text("connection: listener\n" + PROFILE)
    env = client.env("named", environ={"RUNWRAP_PROFILES": str(tmp_path), "PATH": "/usr/bin"})
    assert env["GH_USER"] == Secret("example") and env["PATH"] == "/usr/bin"
    (tmp_path / "elsewhere.yaml").write_text("connection: elsewhere\n" + PROFILE)
    with pytest.raises(ConfigError, match="no connection named 'elsewhere'"):
        client.env("elsewhere", environ={"RUNWRAP_PROFILES": str(tmp_path)})


def test_env_errors_are_the_clis(client, tmp_path):
    (tmp_path / "missing.yaml").write_text(PROFILE.replace("github.com", "nothing-here.invalid"))
    with pytest.raises(NotFound):
        client.env(tmp_path / "missing.yaml", environ={})
    with pytest.raises(RunwrapError) as info:
        client.env("no-such-profile", environ={"RUNWRAP_PROFILES": str(tmp_path)})
    assert info.value.exit_status == 125


def test_import_runwrap_stays_cheap_and_client_is_exported():
    code = ("import sys, runwrap\n"
            "assert 'runwrap.api' not in sys.modules and 'runwrap.consumer.client' not in sys.modules\n"
            "from runwrap import Client\n"
            "assert Client.__module__ == 'runwrap.api'\n"
            "assert set(runwrap.__all__) <= set(dir(runwrap))\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_a_handshake_runs_meanwhile_between_its_two_messages(listener):
    # The exec path loads its supervisor while the listener computes its answer (run.launch): the
    # answer waits in the socket, and a failure meanwhile closes the connection it opened.
    from runwrap.consumer.client import Endpoint
    from runwrap.paths import config_dir

    endpoint = Endpoint.pick_in(config_dir(listener.env), None)
    calls: list[int] = []
    channel = endpoint.open(meanwhile=lambda: (calls.append(1), time.sleep(0.3)))
    try:
        assert calls == [1]
        assert channel.request(Query(domain="github.com"), ["username"])["username"].reveal() == "example"
    finally:
        channel.close()
    before = len(os.listdir("/proc/self/fd"))

    def fail() -> None:
        raise RuntimeError("meanwhile failed")

    with pytest.raises(RuntimeError, match="meanwhile failed"):
        endpoint.open(meanwhile=fail)
    assert len(os.listdir("/proc/self/fd")) == before  # the socket was closed
