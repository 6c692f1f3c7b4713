"""The child's exit status is runwrap's; a death by signal N is runwrap's death by N."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from .supervisor_support import HELPERS, PYTHON


def test_every_status_0_to_255_comes_back_unchanged() -> None:
    # One interpreter forks a copy per status, each calling run(): 256 runs in about a second.
    out = subprocess.run([PYTHON, str(HELPERS / "statuses.py"), "0", "255"], capture_output=True,
                         check=True, timeout=120).stdout
    results = json.loads(out)
    assert len(results) == 256
    assert [r for r in results if r != [r[0], "exit", r[0]]] == []


@pytest.mark.parametrize("status", [0, 1, 2, 126, 127, 255])
def test_the_driver_exits_with_the_childs_status(procs, status: int) -> None:
    report, reporter = procs.report()
    done = procs.run(["--no-mask"], [*reporter, "--exit", str(status)])
    assert done.returncode == status, done.stderr
    assert report.info()["pid"] > 0


@pytest.mark.parametrize("sig", ["TERM", "HUP", "QUIT", "INT", "USR1", "KILL"])
def test_a_death_by_signal_is_reproduced(procs, sig: str) -> None:
    _, reporter = procs.report()
    done = procs.run([], [*reporter, "--die", sig])
    assert done.returncode == -signal.Signals["SIG" + sig], done.stderr


def test_deaths_by_many_signals_in_forked_runs() -> None:
    wanted = [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGABRT, signal.SIGKILL, signal.SIGSEGV,
              signal.SIGPIPE, signal.SIGALRM, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2]
    numbers = ",".join(str(int(s)) for s in wanted)
    out = subprocess.run([PYTHON, str(HELPERS / "statuses.py"), "--signals", numbers],
                         capture_output=True, check=True, timeout=60).stdout
    assert json.loads(out) == [[int(s), "signal", int(s)] for s in wanted]
