"""Every signal sent to runwrap reaches the child exactly once; the terminal's own are not doubled."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import termios

import pytest

from tests.polling import wait_for

from .supervisor_support import pending, state

FORWARDED = ["TERM", "HUP", "INT", "QUIT", "USR1", "USR2", "WINCH", "CONT", "ALRM", "TSTP", "TTIN", "TTOU"]


def send(pid: int, name: str) -> None:
    os.kill(pid, signal.Signals["SIG" + name])


@pytest.mark.parametrize("name", FORWARDED)
def test_each_signal_sent_twice_arrives_exactly_twice(procs, name: str) -> None:
    sentinel = "USR1" if name == "USR2" else "USR2"
    report, reporter = procs.report()
    driver = procs.start([], [*reporter, "--trap", "all", "--exit-on", sentinel])
    report.info()
    for count in (1, 2):
        send(driver.pid, name)
        wait_for(lambda c=count: report.signals().count("SIG" + name) >= c, timeout=30,
                 what=lambda c=count: f"SIG{name} #{c}; the child got {report.signals()}")
    send(driver.pid, sentinel)
    assert driver.wait(timeout=30) == 0, driver.stderr.read()
    assert report.signals() == ["SIG" + name, "SIG" + name, "SIG" + sentinel]


def test_without_a_terminal_the_child_gets_its_own_process_group(procs) -> None:
    report, reporter = procs.report()
    driver = procs.start([], [*reporter, "--exit-on", "TERM"])
    info = report.info()
    assert info["pgid"] == info["pid"] != os.getpgid(driver.pid)
    assert info["ppid"] == driver.pid
    send(driver.pid, "TERM")
    assert driver.wait(timeout=10) == 0


def terminal_session() -> tuple[int, int, dict]:
    """A pty whose slave becomes the controlling terminal of a new session for the driver."""
    master, slave = os.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return master, slave, {"stdin": slave, "start_new_session": True, "preexec_fn": take_terminal}


def test_with_a_terminal_stdin_the_child_shares_runwraps_group_and_ctrl_c_arrives_once(procs) -> None:
    master, slave, popen = terminal_session()
    try:
        report, reporter = procs.report()
        driver = procs.start(["--no-mask"], [*reporter, "--trap", "INT", "--exit-on", "USR2"], **popen)
        info = report.info()
        assert info["pgid"] == os.getpgid(driver.pid) == driver.pid
        assert info["isatty"][0] is True
        os.write(master, b"\x03")  # the terminal sends SIGINT to its foreground group: both
        wait_for(lambda: "SIGINT" in report.signals(), what="the terminal's SIGINT")
        # A signal still pending at runwrap would swallow a second one (standard signals do not queue).
        wait_for(lambda: not pending(driver.pid, signal.SIGINT), what="runwrap to take the terminal's SIGINT")
        send(driver.pid, "INT")  # kill() from elsewhere reaches only runwrap: forwarded
        wait_for(lambda: report.signals().count("SIGINT") >= 2, what="the forwarded SIGINT")
        send(driver.pid, "USR2")
        assert driver.wait(timeout=10) == 0
        assert report.signals() == ["SIGINT", "SIGINT", "SIGUSR2"]
    finally:
        os.close(master)
        os.close(slave)


def test_a_stop_signal_stops_the_child_then_runwrap_and_cont_resumes_both(procs) -> None:
    report, reporter = procs.report()
    driver = procs.start([], [*reporter, "--trap", "CONT", "--exit-on", "USR2"])
    child = report.info()["pid"]
    send(driver.pid, "TSTP")
    wait_for(lambda: state(child) == "T" and state(driver.pid) == "T", what="both to stop")
    send(driver.pid, "CONT")
    wait_for(lambda: state(child) in ("S", "R") and state(driver.pid) in ("S", "R"), what="both to run")
    wait_for(lambda: report.signals() == ["SIGCONT"], what="exactly one SIGCONT at the child")
    send(driver.pid, "USR2")
    assert driver.wait(timeout=10) == 0
    assert report.signals() == ["SIGCONT", "SIGUSR2"]


def test_a_child_stopped_by_someone_else_does_not_stop_runwrap(procs) -> None:
    report, reporter = procs.report()
    driver = procs.start([], [*reporter, "--exit-on", "USR2"])
    child = report.info()["pid"]
    os.kill(child, signal.SIGSTOP)
    wait_for(lambda: state(child) == "T", what="the child to stop")
    send(driver.pid, "USR2")  # runwrap still runs and forwards; the child handles it once continued
    os.kill(child, signal.SIGCONT)
    assert driver.wait(timeout=10) == 0  # a stopped runwrap would never have forwarded USR2


def test_signals_after_exec_failure_setup_are_not_left_blocked_for_the_child(procs) -> None:
    # The child starts with no blocked signals and default dispositions (Python ignores SIGPIPE).
    done = procs.run(["--no-mask"], ["sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"],
                     stdin=subprocess.DEVNULL)
    assert done.returncode == 0
    assert done.stdout == b"SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"


def test_int_and_quit_ignored_by_runwraps_caller_stay_ignored_in_the_child(procs) -> None:
    # As `cmd &` in a non-interactive shell, or nohup (HUP), leaves them.
    def ignore() -> None:
        for signo in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(signo, signal.SIG_IGN)

    done = procs.run(["--no-mask"], ["sh", "-c", "grep -E '^SigIgn' /proc/self/status"], preexec_fn=ignore)
    assert done.returncode == 0
    ignored = int(done.stdout.split()[1], 16)
    assert ignored == (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGQUIT - 1)) | (1 << (signal.SIGHUP - 1))
