"""Helpers for the policy tests: an in-process session, a recording provider, a tmux pane.

Nothing here fakes the listener: it is always the installed `runwrap listen` in its own process.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from runwrap.consumer.client import Channel
from runwrap.consumer.connections import Connections
from runwrap.paths import layout
from runwrap.testing.listener import RunningListener, runwrap_executable
from runwrap.wire.identity import load_or_create_identity
from tests.polling import wait_for

GITHUB_ID = "8b4c5e0a-0000-4000-8000-000000000001"
EXAMPLE_ID = "8b4c5e0a-0000-4000-8000-000000000002"
SECRETS = ("alligator5", "correct-horse-battery-staple", "hunter2-but-longer", "recorded-secret-value")

# A `command` provider that appends every query it is asked to a file before answering it: the
# proof of whether, and when, the listener asked the vault.
RECORDER = """\
import json, sys
query = json.load(sys.stdin)
with open(sys.argv[1], "a") as log:
    log.write(json.dumps(query) + "\\n")
print(json.dumps({"username": "rec", "password": "recorded-secret-value",
                  "domain": query.get("domain") or "github.com", "credential_id": "rec-1"}))
"""




def open_channel(home: Path, timeout: float = 10.0) -> Channel:
    """A Noise session of this home's consumer, opened in this process."""
    lay = layout({"RUNWRAP_HOME": str(home)})
    conn = Connections(lay.connections).pick(None)
    return Channel.open(conn, load_or_create_identity(lay.consumer_key), timeout)


def recorder(tmp: Path) -> tuple[dict[str, str], Path]:
    """Provider options for the recording `command` provider, and the file it records to."""
    script = tmp / "recorder.py"
    script.write_text(RECORDER)
    calls = tmp / "calls.log"
    calls.touch()
    command = " ".join(shlex.quote(part) for part in (sys.executable, str(script), str(calls)))
    return {"command": command}, calls


def calls_made(calls: Path) -> int:
    return len(calls.read_text().splitlines())


def no_secret_in(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


class Pane:
    """A detached tmux session whose one pane runs a command, for the listener's terminal."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is needed for the approval tests (apt-get install tmux)")
        self.name = name
        self.socket = f"rw-{name}-{os.getpid()}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k in ("RUNWRAP_HOME", "PATH"))
        line = f"env {exports} {' '.join(shlex.quote(c) for c in command)}; echo LISTENER-EXITED=$?; sleep 600"
        subprocess.run(["tmux", "-L", self.socket, "new-session", "-d", "-x", "200", "-y", "50", "-s", name,
                        "bash", "--norc", "--noprofile", "-c", line], check=True, env=env)

    def text(self) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, "capture-pane", "-p", "-J", "-S", "-200",
                                 "-t", self.name], capture_output=True, text=True, check=False)
        return result.stdout

    def send(self, *keys: str) -> None:
        subprocess.run(["tmux", "-L", self.socket, "send-keys", "-t", self.name, *keys], check=True)

    def wait_text(self, needle: str, count: int = 1, timeout: float = 15.0) -> str:
        return wait_for(lambda: self.text() if self.text().count(needle) >= count else "", timeout,
                        f"{needle!r} x{count} in the pane:\n{self.text()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


def start_listener_in_pane(running: RunningListener, name: str, args: list[str],
                           provider_options: dict[str, str] | None = None) -> Pane:
    """`runwrap listen ARGS` in a tmux pane (a real terminal) on `running`'s home."""
    command = [runwrap_executable(), "listen", "--provider", running.provider, *args]
    for key, value in (provider_options or {}).items():
        command += ["--provider-option", f"{key}={value}"]
    pane = Pane(name, command, running.env)
    try:
        pane.wait_text("listening on")
        wait_for(running.socket.exists, what="the listener's socket")
    except BaseException:
        print(pane.text())
        pane.close()
        raise
    return pane
