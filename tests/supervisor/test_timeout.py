"""--timeout: TERM, KILL after the grace period, exit 124 — even for a child that traps TERM."""

from __future__ import annotations

import shlex
import time

from tests.polling import wait_for

from .supervisor_support import state


def test_a_term_trapping_child_still_ends_and_runwrap_exits_124(procs) -> None:
    report, reporter = procs.report()
    started = time.monotonic()
    # 2 s: time enough for the reporter to set its trap, even on a loaded machine.
    done = procs.run(["--no-mask", "--timeout", "2", "--kill-grace", "1"], [*reporter, "--trap", "TERM"])
    elapsed = time.monotonic() - started
    assert done.returncode == 124
    assert done.stderr == b"runwrap: timed out after 2s\n"
    assert report.signals() == ["SIGTERM"]
    assert state(report.info()["pid"]) is None
    assert 2.9 < elapsed < 12


def test_a_child_that_ends_on_term_ends_at_once(procs) -> None:
    started = time.monotonic()
    done = procs.run(["--no-mask", "--timeout", "0.5", "--kill-grace", "30"], ["sleep", "60"])
    assert done.returncode == 124
    assert done.stderr == b"runwrap: timed out after 500ms\n"
    assert time.monotonic() - started < 10


def test_a_child_that_finishes_in_time_keeps_its_status(procs) -> None:
    done = procs.run(["--no-mask", "--timeout", "30"], ["sh", "-c", "exit 5"])
    assert done.returncode == 5


def test_the_whole_tree_gets_term_so_the_run_takes_the_grace_period_once(procs, tmp_path) -> None:
    # The child and its grandchild both ignore TERM: each needs the KILL at the end of the grace.
    report, reporter = procs.report()
    ready = tmp_path / "ready"
    script = f'trap "" TERM; {shlex.join(reporter)} --trap TERM & touch {ready}; wait'
    timeout, grace = 1.0, 3.0
    driver = procs.start(["--no-mask", "--timeout", str(timeout), "--kill-grace", str(grace)],
                         ["sh", "-c", script])
    wait_for(ready.exists, timeout=30, what="the child to start")
    started = time.monotonic()
    grandchild = report.info()["pid"]
    assert driver.wait(timeout=30) == 124
    elapsed = time.monotonic() - started
    assert report.signals() == ["SIGTERM"]  # at the timeout, with the child: once
    assert state(grandchild) is None
    assert elapsed < timeout + grace + 1.5, elapsed  # not timeout + 2 x grace
