"""Every way a command can fail, per command family: the exit status from runwrap.errors' table and
one line on stderr, never a traceback (unless --debug, for every command alike).

The installed `runwrap` runs against a real listener. Each failure is a real one: a home that is not
paired, a connection whose address is gone, a consumer key the listener does not know, a pinned key
that is not the listener's, a narrow scope. An unexpected exception is a real bug injected into
runwrap by tests/helpers/bug (sitecustomize), since runwrap has none to offer on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from runwrap.paths import folder_for_files, layout, write_private
from runwrap.testing.listener import RunningListener, runwrap_executable

BUG_PATH = str(Path(__file__).resolve().parents[1] / "helpers" / "bug")
INTERNAL = "runwrap: internal error (ZeroDivisionError); run again with --debug"
EXEC_BUG = "runwrap.supervise.command:resolve_command"  # the exec forms resolve the command first
CONNECT_BUG = "runwrap.wire.identity:load_or_create_identity"  # `connect` loads the consumer's key first
OTHER_BUG = "runwrap.profile.lookup:list_profiles"  # what `profiles list` calls

PROFILE = """\
credentials:
  - domain: github.com
    env:
      TOKEN: password
"""
RUN = ["run", "--domain", "github.com", "--env", "T=password", "--"]


def _copy_consumer(src: Path, dest: Path, *, key: bool = True, **conn_changes: str) -> Path:
    """A consumer home holding `src`'s connections (changed as asked) and, if `key`, its key."""
    source, target = layout({"RUNWRAP_HOME": str(src)}), layout({"RUNWRAP_HOME": str(dest)})
    folder_for_files(target.config)
    doc = json.loads(source.connections.read_text())
    for conn in doc["connections"].values():
        conn.update(conn_changes)
    write_private(target.connections, json.dumps(doc).encode())
    if key:
        write_private(target.consumer_key, source.consumer_key.read_bytes())
    return dest


@pytest.fixture(scope="module")
def homes(listener: RunningListener, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("homes")
    bad_peers = base / "bad-peers"
    folder_for_files(layout({"RUNWRAP_HOME": str(bad_peers)}).config)
    write_private(layout({"RUNWRAP_HOME": str(bad_peers)}).peers, b'{"peers": {"x": {"public": 7}}}')
    files = base / "files"
    files.mkdir()
    (files / "p.yaml").write_text(PROFILE)
    (files / "noexec").write_text("#!/bin/sh\n")
    return {
        "paired": listener.home,
        "narrow": listener.paired_home("narrow", ["github.com"]),
        "unpaired": base / "unpaired",
        "nothing": base / "nothing",  # never touched: no audit log, no listener ever ran here
        "down": _copy_consumer(listener.home, base / "down", address=f"unix:{base}/gone.sock"),
        "stranger": _copy_consumer(listener.home, base / "stranger", key=False),
        "mismatch": _copy_consumer(listener.home, base / "mismatch", public="ab" * 32),
        "bad-peers": bad_peers,
        "files": files,
    }


def runwrap(homes: dict[str, Path], home: str, argv: list[str], bug: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRAP_") and k != "PYTHONPATH"}
    env["RUNWRAP_HOME"] = str(homes[home])
    env["RUNWRAP_PROFILES"] = str(homes["files"])
    if bug:
        env.update(PYTHONPATH=BUG_PATH, RUNWRAP_TEST_BUG=bug)
    argv = [str(homes["files"] / "noexec") if a == "NOEXEC" else a for a in argv]
    return subprocess.run([runwrap_executable(), *argv], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


# (home, argv, injected bug, status, what the one line of stderr says)
EXEC_FORMS = {
    "child's status": ("paired", ["p", "--", "sh", "-c", "exit 3"], None, 3, None),
    "timeout": ("paired", ["p", "--timeout", "0.3s", "--", "sleep", "30"], None, 124, "timed out after"),
    "usage: no --": ("paired", ["p"], None, 125, "missing `--`"),
    "usage: bad --timeout": ("paired", ["exec", "p", "--timeout", "soon", "--", "true"], None, 125, "--timeout"),
    "usage: unknown flag": ("paired", ["p", "--bogus", "--", "true"], None, 125, "--bogus"),
    "usage: run, option without value": ("paired", ["run", "--domain"], None, 125, "--domain"),
    "usage: run, --domain and --id": ("paired", ["run", "--domain", "github.com", "--id", "x", "--env", "T=password",
                                                 "--", "true"], None, 125, "exactly one"),
    "usage: run, bad --timeout": ("paired", ["run", "--timeout", "soon", *RUN[1:], "true"], None, 125, "--timeout"),
    "profile": ("paired", ["no-such-profile", "--", "true"], None, 125, "no-such-profile"),
    "config: not paired": ("unpaired", ["p", "--", "true"], None, 125, "not paired"),
    "connection failed": ("down", ["p", "--", "true"], None, 125, "cannot reach the listener"),
    "handshake failed": ("stranger", [*RUN, "true"], None, 125, "not a peer"),
    "fingerprint mismatch": ("mismatch", ["p", "--", "true"], None, 125, "pinned"),
    "not found": ("paired", ["run", "--domain", "nothing-here.invalid", *RUN[3:], "true"], None, 125, "no item"),
    "denied": ("narrow", ["run", "--domain", "example.com", *RUN[3:], "true"], None, 125, "outside the scope"),
    "command not found": ("paired", ["p", "--", "no-such-command-xyz"], None, 127, "command not found"),
    "cannot execute": ("paired", ["exec", "p", "--", "NOEXEC"], None, 126, "noexec"),
    "internal error": ("paired", ["p", "--", "true"], EXEC_BUG, 125, INTERNAL),
    "internal error, run": ("paired", [*RUN, "true"], EXEC_BUG, 125, INTERNAL),
}

CONNECT = {
    "usage: --domain and --id": ("paired", ["connect", "--domain", "github.com", "--id", "x"], None, 1, "exactly one"),
    "usage: unknown option": ("paired", ["connect", "--bogus"], None, 1, "--bogus"),
    "usage: bad --output": ("paired", ["connect", "--domain", "github.com", "--output", "xml"], None, 1, "xml"),
    "config: not paired": ("unpaired", ["connect", "--domain", "github.com"], None, 1, "not paired"),
    "connection failed": ("down", ["connect", "--domain", "github.com"], None, 2, "cannot reach the listener"),
    "handshake failed": ("stranger", ["connect", "--domain", "github.com"], None, 3, "not a peer"),
    "not found": ("paired", ["connect", "--domain", "nothing-here.invalid"], None, 4, "no item"),
    "denied": ("narrow", ["connect", "--domain", "example.com"], None, 4, "outside the scope"),
    "fingerprint mismatch": ("mismatch", ["connect", "--domain", "github.com"], None, 5, "pinned"),
    "internal error": ("paired", ["connect", "--domain", "github.com"], CONNECT_BUG, 1, INTERNAL),
}

OTHER = {
    "usage: unknown option": ("paired", ["invite", "--bogus"], None, 2, "--bogus"),
    "usage: unknown root option": ("paired", ["--bogus"], None, 2, "--bogus"),
    "usage: bad --ttl": ("paired", ["invite", "--scope", "*", "--ttl", "soon"], None, 2, "--ttl"),
    "usage: bad scope, listener running": ("paired", ["invite", "--scope", "example.*"], None, 2,
                                           "not a scope pattern"),
    "usage: bad scope in peers scope": ("paired", ["peers", "scope", "tests", "id:../../etc"], None, 2,
                                        "not a scope pattern"),
    "usage: bad --rate": ("unpaired", ["listen", "--rate", "lots"], None, 2, "--rate"),
    "usage: bad --tcp port": ("unpaired", ["listen", "--tcp", "127.0.0.1:99999"], None, 2, "--tcp"),
    "usage: bad --provider-option": ("unpaired", ["listen", "--provider-option", "novalue"], None, 2, "KEY=VALUE"),
    "error: no such peer": ("paired", ["peers", "revoke", "nobody"], None, 1, "no peer named 'nobody'"),
    "config: no such connection": ("paired", ["connections", "remove", "nobody"], None, 1, "no connection named"),
    "config: unreadable peers": ("bad-peers", ["peers", "list"], None, 1, "does not understand"),
    "connection failed": ("unpaired", ["invite", "--scope", "*"], None, 1, "cannot reach the listener"),
    "pairing failed": ("unpaired", ["pair", "not-a-code"], None, 1, "not a pairing code"),
    "profile": ("paired", ["profiles", "check", "no-such-profile"], None, 1, "no-such-profile"),
    "no audit log": ("nothing", ["audit"], None, 1, "no audit log"),
    "internal error": ("paired", ["profiles", "list"], OTHER_BUG, 1, INTERNAL),
}


def _check(homes: dict[str, Path], home: str, argv: list[str], bug: str | None, status: int,
           says: str | None) -> None:
    result = runwrap(homes, home, argv, bug)
    assert result.returncode == status, (result.returncode, result.stderr)
    if says is None:
        assert result.stderr == ""
        return
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("runwrap: "), result.stderr
    assert says in lines[0], result.stderr


@pytest.mark.parametrize(("home", "argv", "bug", "status", "says"), EXEC_FORMS.values(), ids=EXEC_FORMS)
def test_exec_forms(homes, home, argv, bug, status, says):
    _check(homes, home, argv, bug, status, says)


@pytest.mark.parametrize(("home", "argv", "bug", "status", "says"), CONNECT.values(), ids=CONNECT)
def test_connect(homes, home, argv, bug, status, says):
    _check(homes, home, argv, bug, status, says)


@pytest.mark.parametrize(("home", "argv", "bug", "status", "says"), OTHER.values(), ids=OTHER)
def test_every_other_command(homes, home, argv, bug, status, says):
    _check(homes, home, argv, bug, status, says)


@pytest.mark.parametrize(("home", "bug", "status", "code"), [
    ("down", None, 2, "connection_failed"),
    ("stranger", None, 3, "handshake_failed"),
    ("mismatch", None, 5, "fingerprint_mismatch"),
    ("paired", CONNECT_BUG, 1, "internal"),
])
def test_connect_json_reports_on_stdout_with_the_same_status(homes, home, bug, status, code):
    result = runwrap(homes, home, ["connect", "--domain", "github.com", "--output", "json"], bug)
    assert result.returncode == status, result.stderr
    assert result.stderr == ""
    answer = json.loads(result.stdout)
    assert answer["success"] is False and answer["error"]["code"] == code and answer["error"]["message"]


@pytest.mark.parametrize(("home", "argv", "bug", "status", "last"), [
    ("paired", ["--debug", "p", "--", "no-such-command-xyz"], None, 127, "command not found"),
    ("paired", ["p", "--debug", "--", "true"], EXEC_BUG, 125, "internal error (ZeroDivisionError)"),
    ("paired", ["--debug", *RUN, "no-such-command-xyz"], None, 127, "command not found"),
    ("down", ["--debug", "connect", "--domain", "github.com"], None, 2, "cannot reach the listener"),
    ("paired", ["--debug", "peers", "revoke", "nobody"], None, 1, "no peer named"),
    ("paired", ["--debug", "invite", "--scope", "*", "--ttl", "soon"], None, 2, "--ttl"),
    ("paired", ["--debug", "profiles", "list"], OTHER_BUG, 1, "internal error (ZeroDivisionError)"),
], ids=["exec form", "exec form, internal", "run", "connect", "typer command", "usage", "typer, internal"])
def test_debug_shows_the_traceback_for_every_command_and_keeps_the_status(homes, home, argv, bug, status, last):
    result = runwrap(homes, home, argv, bug)
    assert result.returncode == status, result.stderr
    assert result.stderr.startswith("Traceback (most recent call last):"), result.stderr
    final = result.stderr.splitlines()[-1]
    assert final.startswith("runwrap: ") and last in final, result.stderr
