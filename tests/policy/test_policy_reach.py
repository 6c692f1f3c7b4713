"""The listener's owner reaches any listener they started, and runwrap leaves their folders alone
(issue 13, section 1): `--socket`/`--audit-log` folders are created 0700 or used as they are (never
chmod-ed), an unsafe one is refused with the reason; a squatted /tmp/runwrap-UID is stepped around;
`invite`, `peers` and `audit` find a listener started with `--socket` (its record, or `--socket`);
a revocation that cannot reach a running listener says so and fails; an invite names its scope."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.testing.listener import RunningListener, runwrap_executable
from tests.polling import wait_for

NOBODY = 65534


class ElsewhereListener(RunningListener):
    """A listener whose socket is `--socket PATH` instead of the home's default."""

    def __init__(self, socket_path: Path, **kwargs: object) -> None:
        args = list(kwargs.pop("args", ()))  # type: ignore[call-overload]
        super().__init__(args=[*args, "--socket", str(socket_path)], **kwargs)  # type: ignore[arg-type]
        self._socket = socket_path

    @property
    def socket(self) -> Path:
        return self._socket


@pytest.fixture
def place() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="rw-place-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def refused(running: RunningListener) -> str:
    with pytest.raises(RuntimeError, match="exited with 1"):
        running.start(timeout=10)
    lines = [line for line in running.output().splitlines() if line]
    assert len(lines) == 1, lines
    return lines[0]


# ---- folders ----

def test_a_sticky_shared_folder_is_used_and_left_as_it_is(place: Path) -> None:
    shared = place / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with ElsewhereListener(shared / "l.sock") as running:
        running.pair()
        assert running.run("connect", "--domain", "github.com").stdout.count("alligator5") == 1
        assert mode(shared) == 0o1777 and mode(shared / "l.sock") == 0o600


def test_missing_socket_folders_are_made_0700(place: Path) -> None:
    with ElsewhereListener(place / "a" / "b" / "l.sock"):
        assert mode(place / "a") == 0o700 and mode(place / "a" / "b") == 0o700


def test_a_2775_team_folder_is_refused_with_the_reason_and_left_as_it_is(place: Path) -> None:
    team = place / "team"
    team.mkdir()
    team.chmod(0o2775)
    running = ElsewhereListener(team / "l.sock")
    try:
        line = refused(running)
    finally:
        running.cleanup()
    assert line == (f"runwrap: the folder {team} has mode 2775: others can remove or replace the files in it; "
                    "choose a folder only you can write (runwrap leaves existing folders alone)")
    assert mode(team) == 0o2775 and not (team / "l.sock").exists()


def test_a_folder_of_another_uid_is_refused_and_left_as_it_is(place: Path) -> None:
    theirs = place / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    running = ElsewhereListener(theirs / "l.sock")
    try:
        line = refused(running)
    finally:
        running.cleanup()
    assert line.startswith(f"runwrap: the folder {theirs} belongs to uid {NOBODY}, who could remove or replace")
    assert mode(theirs) == 0o755 and theirs.stat().st_uid == NOBODY


def test_a_home_folder_that_is_not_0700_is_not_chmod_ed() -> None:
    running = RunningListener()
    running.home.chmod(0o755)  # the user's choice; its files are 0600 anyway
    try:
        running.start()
        assert mode(running.home) == 0o755
    finally:
        running.cleanup()


def test_a_squatted_tmp_runtime_folder_is_stepped_around(place: Path) -> None:
    uid = os.getuid()
    squat = place / f"runwrap-{uid}"
    squat.mkdir(mode=0o755)
    os.chown(squat, NOBODY, NOBODY)
    (place / f"runwrap-{uid}-1").write_text("a file, not a folder")
    from runwrap.paths import runtime_in_tmp

    assert runtime_in_tmp(place, uid) == place / f"runwrap-{uid}-2"
    # The whole path: a listener with no XDG_RUNTIME_DIR starts there, and the owner's commands find it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNWRAP_", "XDG_"))}
    env.update(HOME=str(place / "home"), TMPDIR=str(place))
    log = place / "listener.out"
    with open(log, "wb") as out:
        process = subprocess.Popen([runwrap_executable(), "listen"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: b"listening on" in log.read_bytes() or process.poll() is not None, 15, "the listener")
        sock = place / f"runwrap-{uid}-2" / "listener.sock"
        assert f"listening on unix:{sock}" in log.read_text(), log.read_text()
        invite = subprocess.run([runwrap_executable(), "invite", "--scope", "*", "--output", "json"], env=env,
                                capture_output=True, text=True, timeout=30)
        assert invite.returncode == 0 and json.loads(invite.stdout)["address"] == f"unix:{sock}", invite.stderr
        assert squat.stat().st_uid == NOBODY and mode(squat) == 0o755
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


# ---- reaching the listener ----

def start_child(running: RunningListener, tmp: Path) -> tuple[subprocess.Popen[str], int]:
    pidfile = tmp / "child.pid"
    process = subprocess.Popen(
        [runwrap_executable(), "run", "--domain", "github.com", "--env", "TOKEN=password", "--",
         "sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"],
        env=running.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 20, "the child to start")
    wait_for(lambda: "1" in running.run("peers", "list", "--output", "json").stdout.split('"leases": ')[1][:1],
             10, "the lease")
    return process, int(pidfile.read_text())


def test_revoke_reaches_a_listener_started_with_socket(place: Path) -> None:
    with ElsewhereListener(place / "l.sock") as running:
        running.pair("doomed", ["github.com"])
        process, _child = start_child(running, place)
        revoked = running.run("peers", "revoke", "doomed", check=False)
        assert (revoked.returncode, revoked.stdout) == (0, "revoked doomed; ended 1 running lease(s)\n")
        process.communicate(timeout=10)
        assert process.returncode == 125


def test_the_owners_commands_find_a_listener_started_elsewhere(place: Path) -> None:
    log = place / "logs" / "audit.log"
    with ElsewhereListener(place / "l.sock", args=["--audit-log", str(log)]) as running:
        running.pair("ci", ["github.com"])  # invite without --socket: found through the record
        record = json.loads((running.home / "listener.json").read_text())
        assert record["control"] == str(place / "l.sock") and record["audit_log"] == str(log)
        assert mode(running.home / "listener.json") == 0o600
        listed = json.loads(running.run("peers", "list", "--output", "json").stdout)
        assert [(p["name"], p["leases"]) for p in listed] == [("ci", 0)]
        scoped = running.run("peers", "scope", "ci", "test.com", "--socket", str(place / "l.sock"))
        assert scoped.stdout == "scope of ci: test.com\n"
        events = running.run("audit", "--output", "json").stdout.splitlines()
        assert json.loads(events[-1])["event"] == "scope"
        by_socket = running.run("audit", "--output", "json", "--socket", str(place / "l.sock")).stdout
        assert by_socket.splitlines() == events
    assert not (running.home / "listener.json").exists()  # removed at stop


def test_a_revocation_that_cannot_reach_the_running_listener_fails_and_says_so(place: Path) -> None:
    with ElsewhereListener(place / "l.sock") as running:
        running.pair("doomed", ["github.com"])
        (place / "l.sock").unlink()  # the listener runs on, unreachable
        revoked = running.run("peers", "revoke", "doomed", check=False)
        assert revoked.returncode == 1
        pid = running.process.pid if running.process else 0
        assert revoked.stderr == (
            f"runwrap: revoked doomed in the peers file only: the listener (pid {pid}) at unix:{place / 'l.sock'} "
            "could not be reached; its running children keep their credentials until that listener stops; "
            "the change holds when a listener next starts\n")
        peers = json.loads((running.home / "peers.json").read_text())["peers"]
        assert peers["doomed"]["revoked"] is True
        named = running.run("peers", "scope", "doomed", "x.com", "--socket", str(place / "nothing.sock"), check=False)
        assert named.returncode == 1 and "in the peers file only" in named.stderr


def test_with_no_listener_running_a_revocation_is_made_in_the_files_and_succeeds() -> None:
    with RunningListener() as running:
        running.pair("doomed", ["github.com"])
        running.stop()
        revoked = running.run("peers", "revoke", "doomed")
        assert revoked.stdout == "revoked doomed (no listener is running; the next one refuses its key)\n"


# ---- least privilege ----

def test_an_invite_must_name_its_scope_and_listen_prints_no_code() -> None:
    with RunningListener() as running:
        assert "runwrap pair" not in running.output()
        assert "runwrap invite --name NAME --scope PATTERN" in running.output()
        bare = running.run("invite", "--name", "ci", check=False)
        assert bare.returncode == 2 and bare.stdout == ""
        assert bare.stderr == ("runwrap: name what the peer may ask for: runwrap invite --name NAME --scope "
                               "github.com (repeatable; --scope '*' for everything)\n")
        assert running.run("invite", "--scope", "*").returncode == 0
