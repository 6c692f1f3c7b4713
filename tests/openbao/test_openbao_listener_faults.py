"""The listener's half of issue 14, item 1: a sealed server, a refused token and a missing item each give
the consumer that asked one line, and the same listener keeps serving another peer's KV request (from
its `--cache-ttl` cache while the server cannot answer)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener

from .bao_kit import GITHUB, BaoServer, seeded_server


def one_line_error(listener: RunningListener, *args: str) -> str:
    result = listener.run("connect", *args, check=False)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def other_peer_gets_github(listener: RunningListener, home: Path) -> None:
    env = {**listener.env, "RUNWRAP_HOME": str(home)}
    found = json.loads(listener.run("connect", "--domain", "github.com", "--output", "json", env=env).stdout)
    assert found["credential"]["password"] == GITHUB["password"]


@pytest.fixture
def own_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    with seeded_server(tmp_path_factory.mktemp("sealed")) as server:  # sealed below: not the session's server
        yield server


def test_a_sealed_server_is_one_line_and_another_peer_is_still_served(own_bao: BaoServer) -> None:
    with RunningListener("openbao", args=["--cache-ttl", "5m"], provider_options={"address": own_bao.address},
                         extra_env={"BAO_TOKEN": own_bao.grant()}) as listener:
        listener.pair("a")
        other = listener.paired_home("b")
        other_peer_gets_github(listener, other)
        own_bao.cli("operator", "seal")
        line = one_line_error(listener, "--id", "secret/team/deploy")
        assert line == (f"runwrap: provider openbao: the server at {own_bao.address} is sealed; unseal it "
                        "(bao operator unseal)")
        other_peer_gets_github(listener, other)
        assert listener.process is not None and listener.process.poll() is None


def test_a_refused_token_and_a_missing_item_are_one_line_and_another_peer_is_still_served(
        bao: BaoServer) -> None:
    token = bao.grant()
    with RunningListener("openbao", args=["--cache-ttl", "5m"], provider_options={"address": bao.address},
                         extra_env={"BAO_TOKEN": token}) as listener:
        listener.pair("a")
        other = listener.paired_home("b")
        other_peer_gets_github(listener, other)
        missing = one_line_error(listener, "--id", "secret/runwrap/absent.example")
        assert missing == "runwrap: the vault has no item for id secret/runwrap/absent.example"
        other_peer_gets_github(listener, other)
        bao.ok("POST", "auth/token/revoke", {"token": token})
        refused = one_line_error(listener, "--id", "secret/team/deploy")
        assert refused.startswith("runwrap: provider openbao: the server no longer accepts the listener's token")
        assert token not in refused
        other_peer_gets_github(listener, other)
        assert listener.process is not None and listener.process.poll() is None
        assert token not in listener.output()
