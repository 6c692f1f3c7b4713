"""Scopes against a real listener: set by `invite --scope`, changed by `peers scope`, checked on every
request before the provider is asked; a denial names the domain and shows no secret."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from runwrap.credential import Query
from runwrap.errors import Denied
from runwrap.testing.listener import RunningListener

from .policy_support import GITHUB_ID, calls_made, no_secret_in, open_channel, recorder


@pytest.fixture(scope="module")
def scoped(tmp_path_factory) -> Iterator[tuple[RunningListener, object]]:
    """A listener on the recording `command` provider; its consumer may ask for github.com and
    anything below example.com, at a rate no test here reaches."""
    options, calls = recorder(tmp_path_factory.mktemp("rec"))
    with RunningListener("command", provider_options=options, args=["--rate", "1000/1m"]) as running:
        running.pair("scoped", ["GitHub.COM.", "*.example.com"])
        yield running, calls


def connect(running: RunningListener, *args: str):
    return running.run("connect", *args, "--output", "json", check=False)


def test_invite_scope_is_stored_canonical(scoped):
    running, _ = scoped
    (peer,) = json.loads(running.run("peers", "list", "--output", "json").stdout)
    assert (peer["name"], peer["scope"]) == ("scoped", ["github.com", "*.example.com"])


@pytest.mark.parametrize("domain", ["github.com", "GITHUB.COM", "github.com.", "www.example.com",
                                    "A.B.Example.Com."])
def test_in_scope_is_served(scoped, domain):
    running, calls = scoped
    before = calls_made(calls)
    result = connect(running, "--domain", domain)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["success"] is True
    assert calls_made(calls) == before + 1  # the recorder sees every lookup


@pytest.mark.parametrize(("args", "query"), [
    (["--domain", "example.com"], {"domain": "example.com"}),        # the parent is not below itself
    (["--domain", "EXAMPLE.com."], {"domain": "example.com"}),
    (["--domain", "api.github.com"], {"domain": "api.github.com"}),  # an exact pattern is exact
    (["--domain", "test.com"], {"domain": "test.com"}),
    (["--id", GITHUB_ID], {"id": GITHUB_ID}),                        # a domain pattern grants no id
])
def test_out_of_scope_is_exit_4_names_the_domain_and_never_asks_the_vault(scoped, args, query):
    named = " ".join(*query.items())
    running, calls = scoped
    before = calls_made(calls)
    result = connect(running, *args)
    assert result.returncode == 4, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "denied"
    assert named in error["message"] and "outside the scope of peer scoped" in error["message"]
    assert no_secret_in(result.stdout + result.stderr)
    assert calls_made(calls) == before
    last = running.audit_events()[-1]
    assert (last["event"], last["decision"], last["query"]) == ("request", "denied", query)


@pytest.mark.parametrize("form", ["run", "profile"])
def test_exec_forms_exit_125_and_start_nothing(scoped, tmp_path, form):
    running, calls = scoped
    marker = tmp_path / "child-ran"
    before = calls_made(calls)
    child = ["--", "sh", "-c", f"touch {marker}"]
    if form == "run":
        result = running.run("run", "--domain", "test.com", "--env", "P=password", *child, check=False)
    else:
        profile = tmp_path / "denied.yaml"
        profile.write_text("credentials:\n  - domain: example.com\n    env:\n      P: password\n")
        result = running.run(str(profile), *child, check=False)
    assert result.returncode == 125
    assert "outside the scope" in result.stderr and "domain" in result.stderr
    assert no_secret_in(result.stdout + result.stderr)
    assert not marker.exists()
    assert calls_made(calls) == before


@pytest.mark.parametrize("bad_id", ["../../etc", "..", "/etc/passwd", "a/../../b"])
def test_ids_that_look_like_paths_are_refused_before_the_vault(scoped, bad_id):
    running, calls = scoped
    before = calls_made(calls)
    result = connect(running, "--id", bad_id)
    assert result.returncode != 0
    assert "not a vault item id" in result.stdout + result.stderr
    # The same id sent straight over the wire by a consumer that skips its own checks.
    channel = open_channel(running.home)
    try:
        channel._send({"type": "request", "query": {"id": bad_id}, "fields": ["password"], "provenance": {}})
        header, values = channel._receive(None)
    finally:
        channel.close()
    assert header["type"] == "error" and "not a vault item id" in header["message"] and not values
    assert calls_made(calls) == before
    assert running.audit_events()[-1]["decision"] == "error"


def test_peers_scope_applies_to_the_next_request_on_an_open_session(scoped):
    running, calls = scoped
    channel = open_channel(running.home)
    try:
        cred = channel.request(Query(domain="github.com"), ["username"], {"argv0": "scope-test"})
        lease = channel.lease
        assert cred["username"].reveal() == "rec"
        cred.wipe()
        changed = running.run("peers", "scope", "scoped", "test.com")
        assert "test.com" in changed.stdout
        before = calls_made(calls)
        with pytest.raises(Denied, match=r"domain github\.com is outside the scope"):
            channel.request(Query(domain="github.com"), ["username"], {"argv0": "scope-test"})
        assert calls_made(calls) == before
        cred = channel.request(Query(domain="test.com"), ["username"], {"argv0": "scope-test"})  # same session
        cred.wipe()
        assert channel.lease == lease
    finally:
        channel.close()
        running.run("peers", "scope", "scoped", "github.com", "*.example.com")
    stored = json.loads(running.run("peers", "list", "--output", "json").stdout)
    assert stored[0]["scope"] == ["github.com", "*.example.com"]
    scope_events = [e for e in running.audit_events() if e["event"] == "scope"]
    assert [e["reason"] for e in scope_events[-2:]] == ["scope github.com *.example.com -> test.com",
                                                        "scope test.com -> github.com *.example.com"]


def test_bad_scope_patterns_are_refused(scoped):
    running, _ = scoped
    result = running.run("peers", "scope", "scoped", "id:../../etc", check=False)
    assert result.returncode != 0 and "not a scope pattern" in result.stderr
    result = running.run("invite", "--scope", "example.*", check=False)
    assert result.returncode != 0 and "not a scope pattern" in result.stderr
    result = running.run("peers", "scope", "nobody", "github.com", check=False)
    assert result.returncode != 0 and "no peer named 'nobody'" in result.stderr
