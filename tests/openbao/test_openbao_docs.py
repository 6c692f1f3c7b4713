"""docs/teams.md's policy and AppRole setup, run as written against a fresh `bao server -dev`, then used."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.credential import Query
from runwrap.errors import NotFound
from runwrap.providers.openbao import OpenBaoProvider

from .bao_kit import BAO, BaoServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "teams.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def block(lang: str) -> str:
    (code,) = [code for found, code in FENCE.findall(DOC.read_text()) if found == lang]
    return code


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[BaoServer]:
    server = BaoServer(tmp_path).start()  # its own: the page enables approle, as on a new server
    try:
        yield server
    finally:
        server.stop()


def test_the_pages_policy_and_approle_setup_work_as_written(fresh: BaoServer, tmp_path: Path) -> None:
    (tmp_path / "runwrap-listener.hcl").write_text(block("hcl"))
    etc = tmp_path / "etc"
    etc.mkdir()
    # The page's host address and /etc/runwrap stand for this test's loopback and folder.
    script = block("sh").replace("/etc/runwrap", str(etc)).replace("10.0.4.17/32", "127.0.0.1/32")
    env = {"PATH": f"{Path(BAO).parent}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "BAO_ADDR": fresh.address, "BAO_TOKEN": fresh.root}
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    for name in ("role_id", "secret_id"):
        assert (etc / name).stat().st_mode & 0o077 == 0
    fresh.kv_put("secret/runwrap/github.com", {"username": "alice", "password": "pw-doc"})
    fresh.kv_put("secret/team/deploy", {"password": "pw-deploy"})
    fresh.kv_put("secret/private/other", {"password": "pw-private"})
    with OpenBaoProvider({"address": fresh.address, "role_id_file": str(etc / "role_id"),
                          "secret_id_file": str(etc / "secret_id")}) as provider:
        assert provider.lookup(Query(domain="api.github.com")).password.reveal() == "pw-doc"
        assert provider.lookup(Query(id="secret/team/deploy")).password.reveal() == "pw-deploy"
        with pytest.raises(NotFound, match="permission denied on secret/private/other"):
            provider.lookup(Query(id="secret/private/other"))
