"""The README's walk-through ("Use"), run as written against the installed runwrap (issue 13, section 6).

Every command is taken from README.md's text, so the test fails when the README drifts from what
runwrap does: the listen line, the invite and its scopes, the pairing address the invite prints, the
profile, and each command of the list under it. What cannot run here is changed in the open, one
rule each: the listener binds loopback on a free port instead of `0.0.0.0:7777`, the consumer pairs
with the address the invite printed (its host standing for `vault-host`), a command that is not
installed (`gh`) is replaced by one that prints the injected variable, `audit --follow` is stopped
once it has shown the requests, and of `peers list / peers revoke NAME / ...` only `peers list` runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from runwrap.testing.listener import runwrap_executable
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DEPLOY_SH = """#!/bin/sh
echo "user=$DEPLOY_USER token=$DEPLOY_TOKEN env=$DEPLOY_ENV"
cat "$PGPASSFILE" "$NETRC"
"""


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


def command_lines(body: str) -> list[list[str]]:
    return [shlex.split(line, comments=True) for line in body.splitlines()
            if line.startswith("runwrap ")]


USE = blocks(section("Use"))
VAULT_SIDE, CONSUMER_SIDE, PROFILE, COMMANDS = USE[0][1], USE[1][1], USE[2], USE[3][1]


def run(argv: list[str], home: Path, cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "RUNWRAP_HOME": str(home)}
    return subprocess.run([runwrap_executable(), *argv[1:]], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60, **kwargs)


def scopes(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == "--scope"]


def covers(pattern: str, domain: str) -> bool:
    from runwrap.credential import Query
    from runwrap.listener.policy import allows

    return allows([pattern], Query(domain=domain))


def test_the_profile_is_the_repository_one_and_the_invite_covers_it():
    language, body = PROFILE
    assert language == "yaml"
    profile = yaml.safe_load(body)
    assert profile == yaml.safe_load((ROOT / "profiles" / "deploy.yaml").read_text())
    invite = next(argv for argv in command_lines(VAULT_SIDE) if argv[1] == "invite")
    asked = [spec["domain"] for spec in profile["credentials"]]
    asked += [argv[argv.index("--domain") + 1] for argv in command_lines(COMMANDS) if "--domain" in argv]
    for domain in asked:
        assert any(covers(p, domain) for p in scopes(invite)), f"{domain} is outside {scopes(invite)}"


def test_the_pairing_address_is_the_form_the_listener_listens_on():
    listen = next(argv for argv in command_lines(VAULT_SIDE) if argv[1] == "listen")
    pair = command_lines(CONSUMER_SIDE)[0]
    address = pair[pair.index("--address") + 1]
    if address.startswith("tcp:"):
        assert "--tcp" in listen, "the README pairs over TCP but its listen line has no --tcp"
        assert address.rsplit(":", 1)[1] == listen[listen.index("--tcp") + 1].rsplit(":", 1)[1]
    else:
        assert address.startswith("unix:")
    shown = re.search(r"#  -> (runwrap pair .*)", VAULT_SIDE)
    assert shown, "the README shows what invite prints"
    printed = shlex.split(shown.group(1))
    assert printed[printed.index("--address") + 1].split(":")[0] == address.split(":")[0]


@pytest.fixture
def walkthrough():
    """The vault side as the README says, in its own home; the consumer's home; a project folder."""
    base = Path(tempfile.mkdtemp(prefix="rw-readme-", dir="/tmp"))  # short: a socket path fits
    vault, consumer, project = base / "v", base / "c", base / "p"
    for folder in (vault, consumer):
        folder.mkdir(mode=0o700)
    (project / "profiles").mkdir(parents=True)
    listen = next(argv for argv in command_lines(VAULT_SIDE) if argv[1] == "listen")
    listen[listen.index("--tcp") + 1] = "127.0.0.1:0"  # a free port, which the listener prints
    env = {"PATH": os.environ["PATH"], "HOME": str(vault), "LANG": "C.UTF-8", "RUNWRAP_HOME": str(vault)}
    out = open(os.open(vault / "listen.out", os.O_WRONLY | os.O_CREAT, 0o600), "w")
    process = subprocess.Popen([runwrap_executable(), *listen[1:]], env=env, stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        started = wait_for(lambda: re.search(r"listening on tcp:127\.0\.0\.1:(\d+)",
                                             (vault / "listen.out").read_text()), 20, "the listener to start")
        yield vault, consumer, project, int(started.group(1))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        out.close()
        shutil.rmtree(base, ignore_errors=True)


def test_the_walkthrough_runs_as_written(walkthrough):
    vault, consumer, project, port = walkthrough
    invite = next(argv for argv in command_lines(VAULT_SIDE) if argv[1] == "invite")
    invited = run(invite, vault, project)
    assert invited.returncode == 0, invited.stderr
    printed = shlex.split(invited.stdout.splitlines()[0])
    assert printed[:2] == ["runwrap", "pair"] and printed[3] == "--address"
    assert printed[4] == f"tcp:127.0.0.1:{port}"

    pair = command_lines(CONSUMER_SIDE)[0]
    pair[pair.index("pair") + 1] = printed[2]
    pair[pair.index("--address") + 1] = printed[4]  # its host stands for vault-host
    paired = run(pair, consumer, project)
    assert paired.returncode == 0, paired.stderr

    (project / "profiles" / "deploy.yaml").write_text(PROFILE[1])
    (project / "deploy.sh").write_text(DEPLOY_SH)
    (project / "deploy.sh").chmod(0o755)
    shown: dict[str, str] = {}  # the README's line -> what it printed
    for line in command_lines(COMMANDS):
        argv = line[: line.index("/")] if "/" in line else line  # `peers list / peers revoke NAME / ...`
        side = vault if argv[1] in ("peers", "audit") else consumer
        command = argv[argv.index("--") + 1] if "--" in argv else None
        if command is not None and "/" not in command and shutil.which(command) is None:
            variable = argv[argv.index("--env") + 1].split("=")[0]  # `gh` is not installed here
            argv = [*argv[: argv.index("--") + 1], "sh", "-c", f'echo "{variable}=${variable}"']
        if argv[1:3] == ["audit", "--follow"]:
            shown[shlex.join(line)] = follow_audit(argv, side, project)
            continue
        result = run(argv, side, project)
        assert result.returncode == 0, f"{shlex.join(argv)}: {result.returncode} {result.stderr}"
        shown[shlex.join(line)] = result.stdout

    def of(start: str) -> str:
        found = [out for line, out in shown.items() if line.startswith(start)]
        assert len(found) == 1, f"the README has {len(found)} lines starting {start!r}"
        return found[0]

    assert of("runwrap deploy -- ") == ("user=*** token=*** env=production\n*:*:*:***:***\n"
                                       "machine db.example.com login *** password ***\n")
    assert "would run: ./deploy.sh" in of("runwrap deploy --dry-run")
    assert of("runwrap run --domain github.com") == "GH_TOKEN=***\n"
    assert of("runwrap run --domain example.com --file") == "28\n"  # correct-horse-battery-staple
    assert json.loads(of("runwrap connect"))["success"] is True
    assert of("runwrap profiles check deploy").startswith("ok: ")
    assert "ci-runner" in of("runwrap peers list")
    assert of("runwrap audit --follow").count("allowed") >= 4
    assert "answers, key as pinned" in of("runwrap doctor")
    assert of("runwrap help invite").startswith("Usage: runwrap invite")


def follow_audit(argv: list[str], home: Path, cwd: Path) -> str:
    """`audit --follow` never ends by itself: run it until it has shown the walk-through's requests."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "RUNWRAP_HOME": str(home)}
    with tempfile.TemporaryFile("w+") as out:
        follower = subprocess.Popen([runwrap_executable(), *argv[1:]], env=env, cwd=cwd, stdout=out, text=True)
        try:
            def shown() -> bool:
                out.seek(0)
                return out.read().count("allowed") >= 4
            wait_for(shown, 20, "audit --follow to show the requests")
        finally:
            follower.terminate()
            follower.wait(10)
        out.seek(0)
        return out.read()
