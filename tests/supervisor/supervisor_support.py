"""Shared tools for the supervisor's tests: real processes, a reporter child, deadlines, and a
teardown that kills every process a test started (each test's processes carry a marker variable)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from tests.polling import wait_for

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
PYTHON = sys.executable
DRIVER = [PYTHON, str(HELPERS / "supervise.py")]
REPORTER = [PYTHON, str(HELPERS / "reporter.py")]
MARK = "RUNWRAP_TEST_MARK"




def marked_pids(mark: str) -> set[int]:
    """Processes whose environment carries this test's marker."""
    needle = f"{MARK}={mark}".encode()
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.add(int(entry.name))
            except OSError:
                pass
    return found


def state(pid: int) -> str | None:
    """The process's state letter (R, S, T, Z...), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
    except OSError:
        return None
    return line[line.rindex(b")") + 2:].split()[0].decode()


def pending(pid: int, signo: int) -> bool:
    """Whether `signo` is pending for the process (its ShdPnd or SigPnd mask in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            masks = [int(line.split()[1], 16) for line in f if line.startswith(("ShdPnd:", "SigPnd:"))]
    except OSError:
        return False
    return any(mask >> (signo - 1) & 1 for mask in masks)


class Report:
    """What the reporter child wrote: its first JSON line, then `signal NAME` lines."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[str]:
        try:
            return self.path.read_text().splitlines()
        except FileNotFoundError:
            return []

    def info(self, timeout: float = 10.0) -> dict[str, Any]:
        return json.loads(wait_for(lambda: self.lines()[:1], timeout, "the reporter to start")[0])

    def signals(self) -> list[str]:
        return [line.split()[1] for line in self.lines()[1:] if line.startswith("signal ")]

    def env(self) -> dict[bytes, bytes]:
        return {bytes.fromhex(k): bytes.fromhex(v) for k, v in self.info()["env"].items()}


class Processes:
    """Starts the driver with this test's marker and kills whatever is left at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.mark = uuid.uuid4().hex
        self.started: list[subprocess.Popen[bytes]] = []
        self.reports = 0

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, MARK: self.mark, **extra}

    def report(self) -> tuple[Report, list[str]]:
        """A fresh reporter output file and the reporter command line that writes it."""
        self.reports += 1
        path = self.tmp / f"report{self.reports}.txt"
        return Report(path), [*REPORTER, str(path)]

    def start(self, driver_args: list[str], command: list[str], **popen: Any) -> subprocess.Popen[bytes]:
        popen.setdefault("stdin", subprocess.DEVNULL)
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        env = popen.pop("env", None) or self.env()
        proc = subprocess.Popen([*DRIVER, *driver_args, "--", *command], env=env, **popen)
        self.started.append(proc)
        return proc

    def run(self, driver_args: list[str], command: list[str], timeout: float = 30.0,
            **popen: Any) -> subprocess.CompletedProcess[bytes]:
        proc = self.start(driver_args, command, **popen)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
        for _ in range(3):
            for pid in marked_pids(self.mark):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for proc in self.started:
            proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()


def running(mark: str, argv: list[str]) -> list[int]:
    """This test's processes whose command line ends with `argv` (argv[0] compared by basename)."""
    found = []
    for pid in marked_pids(mark):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        if len(args) == len(argv) and os.path.basename(args[0]).decode() == argv[0] \
                and [a.decode() for a in args[1:]] == argv[1:]:
            found.append(pid)
    return found
