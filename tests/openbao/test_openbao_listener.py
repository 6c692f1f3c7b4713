"""End to end: `runwrap listen --provider openbao` (its token in BAO_TOKEN, never argv) serving a paired
consumer's `runwrap PROFILE -- sh -c ...` and `runwrap connect`, against the session's real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener

from .bao_kit import DEPLOY_V2, GITHUB, BaoServer

PROFILE = """\
credentials:
  - domain: api.github.com
    env:
      GH_USER: username
      GH_TOKEN: password
  - id: secret/team/deploy
    env:
      DEPLOY_TOKEN: password
"""

# What the exec path must never load: the provider runs in the listener only.
NOT_ON_THE_EXEC_PATH = {"runwrap.providers.openbao", "runwrap.providers", "http.client", "ssl"}


@pytest.fixture(scope="module")
def listener(bao: BaoServer, listener_token: str) -> Iterator[RunningListener]:
    with RunningListener("openbao", provider_options={"address": bao.address},
                         extra_env={"BAO_TOKEN": listener_token}) as running:
        running.pair()
        yield running


def test_the_token_is_in_no_argv_output_or_file(listener: RunningListener, listener_token: str) -> None:
    listener.run("connect", "--domain", "github.com")
    assert listener.process is not None
    assert b"openbao" in Path(f"/proc/{listener.process.pid}/cmdline").read_bytes()
    assert "(provider openbao)" in listener.output()
    for path in [Path(f"/proc/{listener.process.pid}/cmdline"), *listener.home.rglob("*")]:
        if path.is_file():
            assert listener_token.encode() not in path.read_bytes(), path


def test_a_child_gets_the_kv_username_and_password(listener: RunningListener, tmp_path: Path) -> None:
    profile = tmp_path / "deploy.yaml"
    profile.write_text(PROFILE)
    seen = tmp_path / "seen"
    script = f'printf "%s\\n%s\\n%s\\n" "$GH_USER" "$GH_TOKEN" "$DEPLOY_TOKEN" > {seen}; echo "token=$GH_TOKEN"'
    result = listener.run(str(profile), "--", "sh", "-c", script)
    assert seen.read_text().splitlines() == [GITHUB["username"], GITHUB["password"], DEPLOY_V2["password"]]
    assert result.stdout == "token=***\n"  # masked like any other provider's values


def test_connect_prints_the_item_and_a_missing_one_is_exit_4(listener: RunningListener) -> None:
    found = json.loads(listener.run("connect", "--domain", "github.com", "--output", "json").stdout)
    assert found["success"] is True
    credential = found["credential"]
    assert (credential["username"], credential["password"], credential["uri"]) == (
        GITHUB["username"], GITHUB["password"], GITHUB["uri"])
    assert credential["credential_id"] == "secret/runwrap/github.com@1"
    missing = listener.run("connect", "--id", "secret/runwrap/absent.example", "--output", "json", check=False)
    assert missing.returncode == 4 and json.loads(missing.stdout)["error"]["code"] == "not_found"
    denied = listener.run("connect", "--id", "secret/private/nothing", "--output", "json", check=False)
    assert denied.returncode == 4
    # The listener keeps serving after both.
    again = listener.run("connect", "--domain", "github.com", "--output", "json")
    assert json.loads(again.stdout)["credential"]["password"] == GITHUB["password"]


def test_the_exec_path_never_loads_the_provider(listener: RunningListener, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(PROFILE)
    env = {**listener.env, "PYTHONPROFILEIMPORTTIME": "1"}
    result = listener.run(str(profile), "--", "true", env=env)
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "runwrap.supervise.supervisor" in imported  # it is the exec path's import log
    assert sorted(imported & NOT_ON_THE_EXEC_PATH) == []
