"""Shell completion through click's protocol, against the installed runwrap (issue 13, section 6):
profile names from the whole search path, provider names, connection names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener, runwrap_executable

PROFILE = "credentials:\n  - domain: github.com\n    env: {TOKEN: password}\n"


@pytest.fixture
def project(listener: RunningListener, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder whose profiles come from ./profiles, $RUNWRAP_PROFILES and ~/.config/runwrap/profiles."""
    for folder, name in [("profiles", "deploy.yaml"), ("shared", "release.yml"),
                         ("config/runwrap/profiles", "nightly.yaml")]:
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / name).write_text(PROFILE)
    env = {**listener.env, "RUNWRAP_PROFILES": str(tmp_path / "shared"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    return tmp_path, env


def complete(line: str, folder: Path, env: dict[str, str], instruction: str = "bash_complete") -> list[str]:
    """What `runwrap` offers for the last word of `line` (a trailing space: a new, empty word)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    result = subprocess.run([runwrap_executable()], cwd=folder, capture_output=True, text=True, timeout=60,
                            env={**env, "_RUNWRAP_COMPLETE": instruction, "COMP_WORDS": line,
                                 "COMP_CWORD": str(cword)})
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("instruction", ["bash_complete", "complete_bash"])  # click's spelling and typer's
def test_runwrap_tab_offers_commands_and_every_profile(project, instruction):
    folder, env = project
    offered = complete("runwrap ", folder, env, instruction)
    assert {"listen", "invite", "doctor", "deploy", "release", "nightly"} <= set(offered)
    assert complete("runwrap de", folder, env, instruction) == ["deploy"]


def test_exec_and_profiles_commands_complete_profile_names(project):
    folder, env = project
    assert complete("runwrap exec ", folder, env) == ["deploy", "nightly", "release"]
    assert complete("runwrap exec n", folder, env) == ["nightly"]
    assert complete("runwrap exec deploy ", folder, env) == []  # named; `--` and the command come next
    assert "--dry-run" in complete("runwrap exec --", folder, env)
    assert complete("runwrap profiles check r", folder, env) == ["release"]
    assert complete("runwrap profiles show ", folder, env) == ["deploy", "nightly", "release"]


def test_provider_values(project):
    folder, env = project
    offered = complete("runwrap listen --provider ", folder, env)
    assert {"example", "pass", "keepass", "command", "bitwarden", "openbao"} <= set(offered)
    assert complete("runwrap listen --provider k", folder, env) == ["keepass"]


def test_connection_names(project):
    folder, env = project  # the module's listener paired this home as connection "listener"
    assert complete("runwrap run --connection ", folder, env) == ["listener"]
    assert complete("runwrap exec --connection ", folder, env) == ["listener"]
    assert complete("runwrap connections remove l", folder, env) == ["listener"]
    assert complete("runwrap peers revoke ", folder, env) == ["tests"]
