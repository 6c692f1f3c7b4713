"""Dynamic secrets live exactly as long as the child (issue 14, items 4 and 5): `runwrap listen --provider openbao`
on a least-privilege token, bao's database engine minting PostgreSQL roles, and a child that logs in
with its role. The role is gone once the child ends, is revoked, outlives the role's max TTL, or the
listener stops; a short lease is renewed under a longer child."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.polling import wait_for

from .bao_kit import PG_BIN, BaoServer, Postgres

PSQL = PG_BIN / "psql"


@pytest.fixture
def listener(bao: BaoServer, database: Postgres) -> Iterator[RunningListener]:
    with RunningListener("openbao", provider_options={"address": bao.address},
                         extra_env={"BAO_TOKEN": bao.grant()}) as running:
        running.pair("db", ["*"])
        yield running


def child_argv(pg: Postgres, out: Path, role: str = "app", then: str = "") -> list[str]:
    """`runwrap run --id database/creds/ROLE` with a child that logs in with `psql -w` (PGPASSWORD from its
    env), writes its pid and what the server said, then runs `then`."""
    login = f'{PSQL} -w -X -A -t -h 127.0.0.1 -p {pg.port} -U "$PGUSER" -d postgres -c "SELECT current_user"'
    script = (f'echo $$ > {out}.pid; printf "%s\\n" "$PGUSER" > {out}.role; {login} > {out}.login 2>&1; '
              f'echo $? >> {out}.login; {then}')
    return [runwrap_executable(), "run", "--id", f"database/creds/{role}", "--env", "PGUSER=username",
            "--env", "PGPASSWORD=password", "--", "sh", "-c", script]


def start(listener: RunningListener, argv: list[str], out: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(argv, env=listener.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: Path(f"{out}.login").exists() and len(Path(f"{out}.login").read_text().splitlines()) >= 2,
             20, "the child to log in")
    role = Path(f"{out}.role").read_text().strip()
    return process, role


def logged_in(out: Path, role: str) -> bool:
    return Path(f"{out}.login").read_text().splitlines() == [role, "0"]


def gone(pg: Postgres, role: str, within: float = 10.0) -> float:
    """Seconds until `role` left pg_roles (a failure after `within`)."""
    started = time.monotonic()
    wait_for(lambda: role not in pg.roles(), within, f"role {role} to leave pg_roles")
    return time.monotonic() - started


def dynamic_events(listener: RunningListener) -> list[dict[str, object]]:
    return [e for e in listener.audit_events() if str(e["event"]).startswith("dynamic_")]


def test_the_child_logs_in_and_its_role_is_gone_when_it_exits(listener: RunningListener, database: Postgres,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "c"
    process, role = start(listener, child_argv(database, out), out)
    assert process.wait(30) == 0, process.stderr.read() if process.stderr else ""
    assert role.startswith("v-") and logged_in(out, role)
    gone(database, role)  # its lease was 60 s: only the listener's revocation takes it this soon
    events = dynamic_events(listener)
    assert [(e["event"], e.get("decision")) for e in events] == [("dynamic_lease", None),
                                                                 ("dynamic_revoke", "revoked")]
    assert events[0]["engine_path"] == "database/creds/app" and events[0]["duration_s"] == 60
    assert events[1]["reason"] == "the child exited"
    assert "database/creds/app/" not in listener.audit_log.read_text()  # a lease id names its path so


def test_peers_revoke_ends_the_child_and_its_role(listener: RunningListener, database: Postgres,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "c"
    process, role = start(listener, child_argv(database, out, then="exec sleep 60"), out)
    assert logged_in(out, role)
    listener.run("peers", "revoke", "db")
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 125 and "access revoked by the listener: peer revoked" in stderr
    gone(database, role)
    assert dynamic_events(listener)[-1]["reason"] == "ended by the listener: peer revoked"


def test_a_six_second_lease_is_renewed_for_a_fifteen_second_child(listener: RunningListener, database: Postgres,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "c"
    again = (f'sleep 15; {PSQL} -w -X -A -t -h 127.0.0.1 -p {database.port} -U "$PGUSER" -d postgres '
             f'-c "SELECT 2" > {out}.late 2>&1')
    process, role = start(listener, child_argv(database, out, role="six", then=again), out)
    assert process.wait(40) == 0, process.stderr.read() if process.stderr else ""
    assert logged_in(out, role) and (out.parent / "c.late").read_text().strip() == "2"  # 15 s on: still valid
    gone(database, role)
    renewals = [e for e in dynamic_events(listener) if e["event"] == "dynamic_renew"]
    assert len(renewals) >= 2 and {e["decision"] for e in renewals} == {"renewed"}
    assert {e["granted_s"] for e in renewals} == {6}


def test_max_ttl_reached_ends_the_child_with_the_documented_line(listener: RunningListener, database: Postgres,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "c"
    started = time.monotonic()
    process, role = start(listener, child_argv(database, out, role="eight", then="exec sleep 20"), out)
    _, stderr = process.communicate(timeout=20)
    took = time.monotonic() - started
    assert process.returncode == 125 and took < 10, (took, stderr)
    line = ("runwrap: access revoked by the listener: the dynamic secret from database/creds/eight can be "
            "renewed no further")
    assert line in stderr and "reached its max TTL" in stderr and len(stderr.strip().splitlines()) == 1
    gone(database, role)
    events = dynamic_events(listener)
    assert [e.get("decision") for e in events if e["event"] == "dynamic_renew"] == ["exhausted"]
    assert events[-1]["event"] == "dynamic_revoke" and "can be renewed no further" in str(events[-1]["reason"])


def test_the_listener_stopping_revokes_what_its_children_hold(listener: RunningListener, database: Postgres,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "c"
    process, role = start(listener, child_argv(database, out, then="exec sleep 60"), out)
    assert listener.process is not None
    os.killpg(listener.process.pid, signal.SIGTERM)
    assert listener.process.wait(20) == 0
    _, stderr = process.communicate(timeout=10)
    assert role not in database.roles()  # revoked before the listener exited, not after
    assert process.returncode == 125 and "access revoked by the listener: the listener stopped" in stderr
    assert dynamic_events(listener)[-1]["reason"] == "the listener stopped"


def test_connect_leaves_the_credential_to_its_ttl_and_says_so(listener: RunningListener,
                                                            database: Postgres) -> None:
    result = listener.run("connect", "--id", "database/creds/short")
    role = next(line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("username: "))
    assert "expires by its TTL in 3s" in result.stdout
    assert role in database.roles()  # connect holds no lease, so nothing revokes it
    left = dynamic_events(listener)[-1]
    assert left["event"] == "dynamic_left" and left["engine_path"] == "database/creds/short"
