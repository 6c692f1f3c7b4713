"""The consumer's half of rotation, end to end: the installed `runwrap PROFILE -- cmd` against a
listener that pushes CHANGED over the real wire (tests/helpers/changing_listener.py), so the held
lease, the mapping of a change onto the profile (run.Following) and the supervisor work together.
The real listener's watching is tested on its side (docs/rotation.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runwrap.consumer.connections import Connections
from runwrap.paths import layout
from tests.polling import wait_for

HELPER = Path(__file__).resolve().parents[1] / "helpers" / "changing_listener.py"
RUNWRAP = shutil.which("runwrap", path=os.path.dirname(sys.executable))

PROFILE = """\
credentials:
  - domain: db.example.com
    env: {{DB_USER: username}}
    files:
      PGPASS: {{template: "*:*:*:{{{{username}}}}:{{{{password}}}}\\n"}}
  - domain: api.example.com
    env: {{API_TOKEN: password}}
on_change: {mode}
"""

# Each start prints its line, then records its pid, its API_TOKEN and the file (in that order, so a
# test that saw the record knows the line is already in runwrap's pipe); a HUP records the file again.
CHILD = """\
trap 'cat "$PGPASS" >> "$0/hup.$$"' HUP
echo "token $API_TOKEN file $(cat "$PGPASS")"
printf %s "$API_TOKEN" > "$0/token.$$"
cat "$PGPASS" > "$0/file.$$"
while :; do sleep 0.05; done
"""


class Side:
    """The listener process and a consumer home paired with it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.folder = tmp / "listener"
        self.folder.mkdir()
        self.out = tmp / "out"
        self.out.mkdir()
        self.home = tmp / "home"
        self.set_items("pg-secret-one", "api-token-one")
        self.proc = subprocess.Popen([sys.executable, str(HELPER), str(self.folder)])
        public = wait_for(lambda: (self.folder / "public").exists() and (self.folder / "public").read_text(),
                          what="the listener")
        self.env = {"PATH": os.environ["PATH"], "RUNWRAP_HOME": str(self.home), "HOME": str(tmp)}
        Connections(layout(self.env).connections).add("test", f"unix:{self.folder / 'listener.sock'}",
                                                      bytes.fromhex(public))

    def set_items(self, password: str, token: str) -> None:
        items = {"db.example.com": {"username": "appuser", "password": password},
                 "api.example.com": {"password": token}}
        (self.folder / "items.json").write_text(json.dumps(items))

    def push(self) -> None:
        with open(self.folder / "push", "w") as fifo:
            fifo.write("change\n")

    def run(self, mode: str) -> subprocess.Popen[bytes]:
        path = self.tmp / "p.yaml"
        path.write_text(textwrap.dedent(PROFILE.format(mode=mode)))
        return subprocess.Popen([RUNWRAP, str(path), "--", "sh", "-c", CHILD, str(self.out)], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def log(self) -> list[dict[str, object]]:
        path = self.folder / "log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def records(self, kind: str) -> list[bytes]:
        found = sorted(self.out.glob(f"{kind}.*"), key=lambda p: p.stat().st_mtime_ns)
        return [p.read_bytes() for p in found]


@pytest.fixture
def side(tmp_path: Path) -> Iterator[Side]:
    made = Side(tmp_path)
    try:
        yield made
    finally:
        made.proc.kill()
        made.proc.wait(timeout=10)


def test_restart_runs_the_command_again_with_the_changed_values(side: Side) -> None:
    consumer = side.run("restart")
    wait_for(lambda: side.records("file") and side.records("file")[0], what="the first child")
    assert side.log()[0] == {"hold": {"watch": True}}
    side.set_items("pg-secret-two", "api-token-two")
    side.push()
    wait_for(lambda: len(side.records("file")) == 2 and side.records("file")[1], what="the restarted child")
    assert side.records("token") == [b"api-token-one", b"api-token-two"]
    assert side.records("file") == [b"*:*:*:appuser:pg-secret-one\n", b"*:*:*:appuser:pg-secret-two\n"]
    wait_for(lambda: {"rotated": 1} in side.log(), what="ROTATED 1")
    consumer.send_signal(signal.SIGTERM)
    out, err = consumer.communicate(timeout=10)
    assert consumer.returncode == -signal.SIGTERM
    assert out == b"token *** file *:*:*:***:***\n" * 2  # old and new values masked
    # The shell may report its `sleep` killed by the forwarded TERM before it dies of it itself.
    assert err.replace(b"Terminated\n", b"") == b""
    wait_for(lambda: side.log()[-1] == {"lease_end": 143}, what="the lease's end")


def test_signal_rewrites_the_file_then_sends_hup_once(side: Side) -> None:
    consumer = side.run("signal:HUP")
    wait_for(lambda: side.records("file") and side.records("file")[0], what="the child")
    side.set_items("pg-secret-two", "api-token-one")  # a files-only change
    side.push()
    wait_for(lambda: side.records("hup") and side.records("hup")[0], what="the HUP")
    assert side.records("hup") == [b"*:*:*:appuser:pg-secret-two\n"]
    wait_for(lambda: {"rotated": 1} in side.log(), what="ROTATED 1")
    side.set_items("pg-secret-two", "api-token-two")  # the environment only: the child cannot get it
    side.push()
    wait_for(lambda: side.records("hup")[0].count(b"\n") == 2, what="the second HUP")
    consumer.send_signal(signal.SIGTERM)
    _, err = consumer.communicate(timeout=10)
    assert b"API_TOKEN changed, but a running process's environment cannot" in err
    assert {"rotated": 2} not in side.log()
    assert len(side.records("file")) == 1  # never restarted


def test_none_does_not_ask_to_watch(side: Side) -> None:
    consumer = side.run("none")
    wait_for(lambda: side.records("file"), what="the child")
    consumer.send_signal(signal.SIGTERM)
    consumer.communicate(timeout=10)
    assert side.log()[0] == {"hold": {"watch": False}}
