"""Help as a new user asks for it: `runwrap PROFILE --help`, `runwrap help [COMMAND]`, examples that
keep their lines, and placeholders that are words."""

from __future__ import annotations

import re
import subprocess

import pytest

from runwrap.cli.app import EPILOG
from runwrap.testing.listener import runwrap_executable

COMMANDS = [["exec"], ["run"], ["connect"], ["pair"], ["listen"], ["invite"], ["audit"], ["doctor"],
            ["connections", "list"], ["connections", "remove"], ["peers", "list"], ["peers", "revoke"],
            ["peers", "scope"], ["profiles", "list"], ["profiles", "show"], ["profiles", "check"]]


def runwrap(*args: str, tmp_path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "RUNWRAP_HOME": str(tmp_path), "LANG": "C.UTF-8"}
    return subprocess.run([runwrap_executable(), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv", [
    ["deploy", "--help"],
    ["deploy", "-h"],
    ["profiles/deploy.yaml", "--connection", "ci", "--help", "--", "./deploy.sh"],
    ["exec", "deploy", "--help"],
    ["exec", "--help"],
    ["help", "exec"],
])
def test_help_of_the_exec_form_before_the_dashes(argv, tmp_path):
    result = runwrap(*argv, tmp_path=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: runwrap PROFILE [--connection NAME]")
    assert "--timeout DUR" in result.stdout and "127" in result.stdout


def test_help_after_the_dashes_is_the_commands(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("credentials:\n  - domain: github.com\n    env: {TOKEN: password}\n")
    result = runwrap(str(profile), "--dry-run", "--", "ls", "--help", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "would run: " in result.stdout and result.stdout.rstrip().endswith("ls --help")


@pytest.mark.parametrize("command", [[], *COMMANDS[1:]], ids=lambda c: " ".join(c) or "runwrap")
def test_runwrap_help_command_is_command_help(command, tmp_path):
    asked = runwrap("help", *command, tmp_path=tmp_path)
    assert (asked.returncode, asked.stderr) == (0, "")
    assert asked.stdout == runwrap(*command, "--help", tmp_path=tmp_path).stdout
    assert asked.stdout.startswith("Usage: runwrap")


def test_the_examples_keep_their_lines(tmp_path):
    shown = runwrap("--help", tmp_path=tmp_path).stdout.splitlines()
    examples = [line.strip() for line in EPILOG.splitlines() if line.startswith("  runwrap ")]
    assert len(examples) >= 6
    assert all(example in (line.strip() for line in shown) for example in examples), "\n".join(shown)


@pytest.mark.parametrize("command", COMMANDS[1:], ids=" ".join)
def test_placeholders_are_words(command, tmp_path):
    text = runwrap(*command, "--help", tmp_path=tmp_path).stdout
    assert text.startswith("Usage: runwrap")
    assert re.findall(r"<(?:str|int|float|path|list\[\w+\])>", text) == []


def test_the_placeholders_people_look_for(tmp_path):
    text = {" ".join(c): runwrap(*c, "--help", tmp_path=tmp_path).stdout for c in COMMANDS[1:]}
    assert "--scope PATTERN" in text["invite"] and "--ttl DUR" in text["invite"]
    assert "--name NAME" in text["invite"]
    assert "--provider-option KEY=VALUE" in text["listen"] and "--tcp HOST:PORT" in text["listen"]
    assert "--env VAR=FIELD" in text["run"] and "--keep-env NAME" in text["run"]
    assert "{NAME} {PATTERN}..." in text["peers scope"]
