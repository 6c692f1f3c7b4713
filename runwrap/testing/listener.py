"""A real `runwrap listen` in a private home, paired with a consumer, for tests.

Used by runwrap's own integration tests and by the `runwrap_listener` pytest fixture that projects
embedding runwrap use (runwrap.testing.plugin). Nothing here fakes anything: the listener is the
installed console script in its own process, on a real Unix socket.

    with RunningListener() as listener:          # the example provider, in a fresh temporary home
        listener.pair()                          # this home's consumer becomes a peer with scope *
        with listener.client() as client:        # a runwrap.Client for that consumer
            ...
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwrap.api import Client


def runwrap_executable() -> str:
    """The installed console script next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "runwrap"
    if beside.exists():
        return str(beside)
    found = shutil.which("runwrap")
    if not found:
        raise RuntimeError("the runwrap console script is not installed")
    return found


class RunningListener:
    """`runwrap listen` in a temporary RUNWRAP_HOME; `pair()` makes that home's consumer a peer.

    Listener and consumer share the home (their keys are separate files), so `env` is all a test
    needs to run `runwrap` commands as the paired consumer.
    """

    def __init__(self, provider: str = "example", *, args: Sequence[str] = (),
                 provider_options: Mapping[str, str] | None = None, home: str | None = None,
                 extra_env: Mapping[str, str] | None = None) -> None:
        # A short path: a Unix socket path must fit in 108 bytes.
        self.home = Path(home or tempfile.mkdtemp(prefix="rw-", dir="/tmp"))
        self.provider = provider
        self.args = list(args)
        self.provider_options = dict(provider_options or {})
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWRAP_")}
        self.env.update(extra_env or {})
        self.env["RUNWRAP_HOME"] = str(self.home)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.home / "listener.out"
        self._log_start = 0  # where this run's output starts in the log, so a restart waits afresh

    @property
    def socket(self) -> Path:
        return self.home / "listener.sock"

    @property
    def audit_log(self) -> Path:
        return self.home / "audit.log"

    def start(self, timeout: float = 15.0) -> RunningListener:
        """Start the listener (again, after `stop()`: same home, keys and peers) and wait until it listens."""
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        command = [runwrap_executable(), "listen", "--provider", self.provider, *self.args]
        for key, value in self.provider_options.items():
            command += ["--provider-option", f"{key}={value}"]
        with open(os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as out:
            self.process = subprocess.Popen(command, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"runwrap listen exited with {self.process.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"runwrap listen did not come up in {timeout}s: {self.output()}")
            time.sleep(0.02)
        return self

    def _ready(self) -> bool:
        return self.socket.exists() and "listening on" in self.output()[self._log_start :]

    def output(self) -> str:
        try:
            return self.log.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def run(self, *args: str, check: bool = True, timeout: float = 60.0,
            env: Mapping[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run `runwrap ARGS` as this home's consumer."""
        result = subprocess.run([runwrap_executable(), *args], env=dict(env or self.env), text=True,
                                capture_output=True, timeout=timeout, check=False, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"runwrap {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def invite(self, name: str | None = None, scope: Sequence[str] = ("*",), ttl: str = "5m") -> dict[str, str]:
        """`runwrap invite` for a peer `name` with `scope` (a test's peer may have everything: `*`)."""
        args = ["invite", "--output", "json", "--ttl", ttl]
        if name:
            args += ["--name", name]
        for pattern in scope:
            args += ["--scope", pattern]
        return dict(json.loads(self.run(*args).stdout))

    def pair(self, name: str = "tests", scope: Sequence[str] = ("*",), *,
             env: Mapping[str, str] | None = None) -> str:
        invite = self.invite(name=name, scope=scope)
        self.run("pair", invite["code"], "--address", invite["address"], "--name", "listener", env=env)
        return name

    def paired_home(self, name: str, scope: Sequence[str] = ("*",)) -> Path:
        """A second consumer: a new home (inside this one) paired as peer `name` with `scope`.

        For testing what a narrower peer sees: `Client(home=listener.paired_home("ci", ["github.com"]))`.
        """
        home = Path(tempfile.mkdtemp(prefix="consumer-", dir=self.home))
        env = {**self.env, "RUNWRAP_HOME": str(home)}
        self.pair(name, scope, env=env)
        return home

    def client(self, connection: str | None = None, *, home: str | os.PathLike[str] | None = None) -> Client:
        """A `runwrap.Client` for this home's consumer (or another paired `home`); pair first."""
        from runwrap.api import Client

        return Client(connection, home=self.home if home is None else home)

    def audit_events(self) -> list[dict[str, Any]]:
        from runwrap.listener.audit import read_events

        return list(read_events(self.audit_log))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> RunningListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
