"""on_change: a change pushed through the lease restarts the child, signals it, or ends the run —
bounded, masked, wiped, acknowledged — with real children and the FIFO test lease."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests.polling import wait_for

from .supervisor_support import PYTHON, REPORTER, Processes, state

OLD = b"old-value-Kx81q"
NEW = b"new-value-Zp47w"
NEWER = b"newer-value-Tm33v"

# Each start of the command leaves `DIR/start.PID` holding the TOKEN it was given, then sleeps.
RECORD = 'printf %s "$TOKEN" > "$0/start.$$"; exec sleep 1000'


class Rig:
    """The driver with a lease folder, the value files, and the children's records."""

    def __init__(self, procs: Processes, tmp: Path) -> None:
        self.procs = procs
        self.tmp = tmp
        self.lease = tmp / "lease"
        self.lease.mkdir()
        self.out = tmp / "out"
        self.out.mkdir()
        for name, value in (("old", OLD), ("new", NEW), ("newer", NEWER)):
            (tmp / name).write_bytes(value)

    def start(self, args: list[str], command: list[str], **popen: object) -> subprocess.Popen[bytes]:
        return self.procs.start(["--lease", str(self.lease), *args], command, **popen)

    def push(self, *changes: str, then: str = "") -> None:
        """Write one `change` line per argument, and `then` as a line of its own, all in one write."""
        with open(self.lease / "revoke", "w") as fifo:
            fifo.write("".join(f"change {change}\n" for change in changes) + (f"{then}\n" if then else ""))

    def starts(self) -> list[tuple[int, bytes]]:
        """(pid, TOKEN) of each start of the command so far, in the order they started."""
        found = []
        for path in self.out.glob("start.*"):
            found.append((path.stat().st_mtime_ns, int(path.suffix[1:]), path.read_bytes()))
        return [(pid, token) for _, pid, token in sorted(found)]

    def rotated(self) -> list[int]:
        try:
            return [int(line) for line in (self.lease / "rotated").read_text().split()]
        except FileNotFoundError:
            return []


def test_restart_stops_the_tree_and_starts_the_command_with_the_new_value(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    # The first child leaves a grandchild that takes a moment to end on TERM: the whole tree is gone
    # before the next child starts (which records whether it saw the grandchild's last word).
    grandchild = 'trap "sleep 0.3; touch $0/gone; exit 0" TERM; : > $0/trapped; while :; do sleep 0.05; done'
    script = (f'if [ -e "$0"/start.* ]; then [ -e "$0/gone" ] && touch "$0/saw-gone"; {RECORD}; fi; '
              f'sh -c \'{grandchild}\' "$0" & printf %s "$!" > "$0/grandchild.$$"; {RECORD}')
    driver = rig.start(["--no-mask", "--secret", f"TOKEN={tmp_path / 'old'}", "--on-change", "restart"],
                       ["sh", "-c", script, str(rig.out)])
    [(first, token)] = wait_for(lambda: rig.starts() if rig.starts() and rig.starts()[0][1] else None,
                                what="the first child")
    assert token == OLD
    grandchild = int(wait_for(lambda: (rig.out / f"grandchild.{first}").read_text(), what="the grandchild"))
    # Its trap is set before the change comes (else the TERM of the restart would end it at once).
    wait_for(lambda: (rig.out / "trapped").exists(), what="the grandchild's trap")
    rig.push(f"TOKEN={tmp_path / 'new'}")
    wait_for(lambda: len(rig.starts()) == 2 and rig.starts()[1][1], what="the second child")
    _, token = rig.starts()[1]
    assert token == NEW
    assert state(first) is None and state(grandchild) is None  # never two trees at once
    assert (rig.out / "saw-gone").exists()
    assert rig.rotated() == [1]
    assert driver.poll() is None
    os.kill(driver.pid, signal.SIGTERM)  # after a restart, TERM still ends the run by the child's death
    assert driver.wait(timeout=10) == -signal.SIGTERM
    assert b"runwrap:" not in driver.stderr.read()  # (sh may say its sleep was Terminated)


def test_old_and_new_values_are_masked_after_a_restart(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    # Each child prints its TOKEN and the old value (which the test left in a plain file).
    script = f'echo "token=$TOKEN"; echo "old=$(cat "$1")"; {RECORD}'
    driver = rig.start(["--secret", f"TOKEN={tmp_path / 'old'}", "--on-change", "restart"],
                       ["sh", "-c", script, str(rig.out), str(tmp_path / "old")])
    wait_for(lambda: rig.starts() and rig.starts()[0][1], what="the first child")
    rig.push(f"TOKEN={tmp_path / 'new'}")
    wait_for(lambda: len(rig.starts()) == 2 and rig.starts()[1][1], what="the second child")
    os.kill(driver.pid, signal.SIGTERM)
    out, _ = driver.communicate(timeout=10)
    assert OLD not in out and NEW not in out
    assert out == b"token=***\nold=***\ntoken=***\nold=***\n"


def test_changes_during_a_restart_coalesce_into_it(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    # The first child takes half a second to stop, so the two later changes arrive meanwhile.
    script = 'trap "sleep 0.5; exit 0" TERM; printf %s "$TOKEN" > "$0/start.$$"; sleep 1000 & wait'
    driver = rig.start(["--no-mask", "--secret", f"TOKEN={tmp_path / 'old'}", "--on-change", "restart",
                        "--backoff", "0.1"], ["sh", "-c", f'[ -e "$0"/start.* ] && {{ {RECORD}; }}; {script}',
                                              str(rig.out)])
    wait_for(lambda: rig.starts() and rig.starts()[0][1], what="the first child")
    rig.push(f"TOKEN={tmp_path / 'new'}", f"TOKEN={tmp_path / 'old'}", f"TOKEN={tmp_path / 'newer'}")
    wait_for(lambda: rig.rotated() == [1, 2, 3], what="the three changes acknowledged")
    # ROTATED goes when the new child has been started, maybe before its printf: wait for that too.
    wait_for(lambda: len(rig.starts()) >= 2 and rig.starts()[-1][1], what="the second child's token")
    assert [token for _, token in rig.starts()] == [OLD, NEWER]  # one restart, with the latest values
    os.kill(driver.pid, signal.SIGTERM)
    assert driver.wait(timeout=10) == -signal.SIGTERM


def test_a_restart_storm_ends_the_run_with_125_and_a_clear_line(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    driver = rig.start(["--no-mask", "--secret", f"TOKEN={tmp_path / 'old'}", "--on-change", "restart",
                        "--restart-limit", "2", "--backoff", "0.2"], ["sh", "-c", RECORD, str(rig.out)])
    wait_for(lambda: rig.starts(), what="the first child")
    for seq, value in ((1, "new"), (2, "newer")):
        rig.push(f"TOKEN={tmp_path / value}")
        wait_for(lambda seq=seq: rig.rotated()[-1:] == [seq], what=f"restart {seq}")
    rig.push(f"TOKEN={tmp_path / 'old'}")
    assert driver.wait(timeout=10) == 125
    assert driver.stderr.read() == (b"runwrap: the credentials changed again after 2 restarts within 1m, the limit"
                                    b" of on_change: restart: stopping \xe2\x80\x94 find out what changes them so"
                                    b" often\n")
    assert [token for _, token in rig.starts()] == [OLD, NEW, NEWER]
    assert all(state(pid) is None for pid, _ in rig.starts())


def test_restarts_back_off(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    driver = rig.start(["--no-mask", "--secret", f"TOKEN={tmp_path / 'old'}", "--on-change", "restart",
                        "--backoff", "1.5"], ["sh", "-c", RECORD, str(rig.out)])
    wait_for(lambda: rig.starts(), what="the first child")
    rig.push(f"TOKEN={tmp_path / 'new'}")
    wait_for(lambda: rig.rotated() == [1], what="the first restart, at once")
    first = time.monotonic()
    rig.push(f"TOKEN={tmp_path / 'newer'}")
    wait_for(lambda: rig.rotated() == [1, 2], what="the second restart")
    assert time.monotonic() - first >= 1.4  # the second restart within the window waited its backoff
    driver.kill()


def test_the_exit_status_is_the_last_childs(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    # The second start exits 7 by itself a moment after it started.
    script = f'if [ -e "$0"/start.* ]; then printf %s "$TOKEN" > "$0/start.$$"; sleep 0.2; exit 7; fi; {RECORD}'
    driver = rig.start(["--no-mask", "--secret", f"TOKEN={tmp_path / 'old'}", "--on-change", "restart"],
                       ["sh", "-c", script, str(rig.out)])
    wait_for(lambda: rig.starts(), what="the first child")
    rig.push(f"TOKEN={tmp_path / 'new'}")
    assert driver.wait(timeout=10) == 7
    assert [token for _, token in rig.starts()] == [OLD, NEW]


def test_signals_reach_the_restarted_child_once(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    script = f'printf %s "$TOKEN" > "$0/start.$$"; exec {PYTHON} {REPORTER[1]} "$0/report.$$" --trap USR1,HUP'
    driver = rig.start(["--no-mask", "--secret", f"TOKEN={tmp_path / 'old'}", "--on-change", "restart"],
                       ["sh", "-c", script, str(rig.out)])
    wait_for(lambda: rig.starts(), what="the first child")
    rig.push(f"TOKEN={tmp_path / 'new'}")
    wait_for(lambda: len(rig.starts()) == 2, what="the second child")
    second = rig.starts()[1][0]
    report = rig.out / f"report.{second}"
    wait_for(lambda: report.exists() and report.read_text(), what="the second child's reporter")
    for signo in (signal.SIGUSR1, signal.SIGHUP):
        os.kill(driver.pid, signo)
    wait_for(lambda: report.read_text().count("signal") == 2, what="both signals")
    os.kill(driver.pid, signal.SIGTERM)
    assert driver.wait(timeout=10) == -signal.SIGTERM
    # Once each (a signalfd hands pending signals out lowest number first, so the order may differ).
    assert sorted(report.read_text().splitlines()[1:]) == ["signal SIGHUP", "signal SIGUSR1"]


def test_term_during_a_restart_ends_the_run_by_the_childs_signal(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    # The child takes a moment to stop, then dies by TERM; runwrap gets TERM meanwhile.
    script = ('trap \'touch "$0/stopping"; sleep 0.5; trap - TERM; kill -TERM $$\' TERM; '
              'printf %s "$TOKEN" > "$0/start.$$"; sleep 1000 & wait')
    driver = rig.start(["--no-mask", "--secret", f"TOKEN={tmp_path / 'old'}", "--on-change", "restart"],
                       ["sh", "-c", script, str(rig.out)])
    wait_for(lambda: rig.starts(), what="the first child")
    rig.push(f"TOKEN={tmp_path / 'new'}")
    wait_for(lambda: (rig.out / "stopping").exists(), what="the restart to begin")
    os.kill(driver.pid, signal.SIGTERM)
    assert driver.wait(timeout=10) == -signal.SIGTERM
    assert len(rig.starts()) == 1  # no restart after all
    assert rig.rotated() == []


def test_term_while_the_stopped_childs_descendants_end_ends_the_run(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    # The child dies of TERM at once; its grandchild takes a while, and runwrap gets TERM meanwhile.
    grandchild = 'trap "touch $0/stopping; sleep 0.5; exit 0" TERM; : > $0/trapped; while :; do sleep 0.05; done'
    script = f'sh -c \'{grandchild}\' "$0" & {RECORD}'
    driver = rig.start(["--no-mask", "--secret", f"TOKEN={tmp_path / 'old'}", "--on-change", "restart"],
                       ["sh", "-c", script, str(rig.out)])
    wait_for(lambda: rig.starts(), what="the first child")
    wait_for(lambda: (rig.out / "trapped").exists(), what="the grandchild's trap")  # before the restart's TERM
    rig.push(f"TOKEN={tmp_path / 'new'}")
    wait_for(lambda: (rig.out / "stopping").exists(), what="the restart to begin")
    os.kill(driver.pid, signal.SIGTERM)
    assert driver.wait(timeout=10) == -signal.SIGTERM  # the child's own death
    assert len(rig.starts()) == 1
    assert rig.rotated() == []


def test_the_timeout_counts_from_the_start_not_from_the_restart(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    started = time.monotonic()
    driver = rig.start(["--no-mask", "--timeout", "3", "--secret", f"TOKEN={tmp_path / 'old'}",
                        "--on-change", "restart"], ["sh", "-c", RECORD, str(rig.out)])
    wait_for(lambda: rig.starts(), what="the first child")
    wait_for(lambda: time.monotonic() - started > 1.5, what="1.5 s to pass")
    rig.push(f"TOKEN={tmp_path / 'new'}")
    wait_for(lambda: len(rig.starts()) == 2, what="the second child")
    assert driver.wait(timeout=15) == 124
    assert time.monotonic() - started < 4.4  # 3 s from the start; from the restart it would be 4.5 or more
    assert driver.stderr.read() == b"runwrap: timed out after 3s\n"


HUP_CHILD = """\
import os, signal, sys
out = sys.argv[1]
def reread(signo, frame):
    with open(os.environ["CONF"], "rb") as f:
        data = f.read()
    with open(out, "ab") as o:
        o.write(b"HUP " + data + b"\\n")
signal.signal(signal.SIGHUP, reread)
with open(os.environ["CONF"], "rb") as f, open(out, "ab") as o:
    o.write(b"ready " + f.read() + b"\\n")
while True:
    signal.pause()
"""


def test_signal_hup_comes_once_after_the_file_holds_the_new_value(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    log = rig.out / "hup.log"
    driver = rig.start(["--file", f"CONF={tmp_path / 'old'}", "--on-change", "signal:HUP"],
                       [PYTHON, "-c", HUP_CHILD, str(log)])
    wait_for(lambda: log.exists() and log.read_bytes().endswith(b"\n"), what="the child")
    rig.push(f"CONF={tmp_path / 'new'}")
    wait_for(lambda: rig.rotated() == [1], what="the change acknowledged")
    wait_for(lambda: log.read_bytes().count(b"\n") == 2, what="the HUP")
    os.kill(driver.pid, signal.SIGTERM)
    assert driver.wait(timeout=10) == -signal.SIGTERM
    assert log.read_bytes() == b"ready " + OLD + b"\nHUP " + NEW + b"\n"  # one HUP, the new content


def test_signal_with_an_environment_change_says_the_child_keeps_the_old_value(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    log = rig.out / "hup.log"
    driver = rig.start(["--no-mask", "--file", f"CONF={tmp_path / 'old'}", "--secret", f"TOKEN={tmp_path / 'old'}",
                        "--on-change", "signal:HUP"], [PYTHON, "-c", HUP_CHILD, str(log)])
    wait_for(lambda: log.exists() and log.read_bytes().endswith(b"\n"), what="the child")
    rig.push(f"TOKEN={tmp_path / 'new'}")
    wait_for(lambda: log.read_bytes().count(b"\n") == 2, what="the first HUP")
    rig.push(f"CONF={tmp_path / 'newer'}")  # after it: two HUPs pending at once would be one
    wait_for(lambda: log.read_bytes().count(b"\n") == 3, what="the second HUP")
    os.kill(driver.pid, signal.SIGTERM)
    assert driver.wait(timeout=10) == -signal.SIGTERM
    assert log.read_bytes() == b"ready " + OLD + b"\nHUP " + OLD + b"\nHUP " + NEWER + b"\n"
    assert driver.stderr.read() == (b"runwrap: TOKEN changed, but a running process's environment cannot: the child"
                                    b" keeps the old value until it ends (on_change: restart gives it the new one)\n")
    assert rig.rotated() == [2]  # the first change is not all applied: the listener must not revoke its values


def test_exit_mode_stops_the_child_and_exits_125(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    driver = rig.start(["--no-mask", "--secret", f"TOKEN={tmp_path / 'old'}", "--on-change", "exit"],
                       ["sh", "-c", RECORD, str(rig.out)])
    wait_for(lambda: rig.starts(), what="the child")
    rig.push(f"TOKEN={tmp_path / 'new'}")
    assert driver.wait(timeout=10) == 125
    assert driver.stderr.read() == (b"runwrap: the credentials changed and on_change is exit: the child was stopped"
                                    b" \xe2\x80\x94 run again for the new values\n")
    assert state(rig.starts()[0][0]) is None and len(rig.starts()) == 1
    assert rig.rotated() == []


def unread(fifo: Path) -> int:
    """How many bytes wait in the FIFO, read by no one yet (FIONREAD takes none of them)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(fd)


def test_none_keeps_the_old_values(procs, tmp_path: Path) -> None:
    rig = Rig(procs, tmp_path)
    script = f'printf %s "$TOKEN" > "$0/start.$$"; exec {PYTHON} {REPORTER[1]} "$0/report" --trap USR1 --exit-on TERM'
    driver = rig.start(["--no-mask", "--secret", f"TOKEN={tmp_path / 'old'}"], ["sh", "-c", script, str(rig.out)])
    report = rig.out / "report"
    wait_for(lambda: report.exists() and report.read_text(), what="the child")
    rig.push(f"TOKEN={tmp_path / 'new'}")
    wait_for(lambda: unread(rig.lease / "revoke") == 0, what="the change to be read")
    os.kill(driver.pid, signal.SIGUSR1)
    wait_for(lambda: "signal SIGUSR1" in report.read_text(), what="the USR1")
    os.kill(driver.pid, signal.SIGTERM)
    assert driver.wait(timeout=10) == 0
    assert report.read_text().splitlines()[1:] == ["signal SIGUSR1", "signal SIGTERM"]  # nothing else came
    assert [token for _, token in rig.starts()] == [OLD]
    assert rig.rotated() == []


def test_a_restart_in_pty_mode_keeps_the_terminal(procs, tmp_path: Path) -> None:
    from .test_terminal import Tmux  # the tmux harness of the terminal tests

    tmux = Tmux(procs, tmp_path)
    try:
        rig = Rig(procs, tmp_path)
        (tmp_path / "secret").write_bytes(OLD)
        # Each start says its terminal and prints its TOKEN (masked), then waits for a key.
        script = ('printf %s "$TOKEN" > "$0/start.$$"; echo "tty=$(tty) pgid=$(ps -o pgid= $$) token=$TOKEN";'
                  ' read line; echo "got $line"')
        tmux.type(f"rw --secret TOKEN=secret --lease {rig.lease} --on-change restart -- sh -c '{script}' {rig.out}")
        tmux.wait("token=***")
        rig.push(f"TOKEN={tmp_path / 'new'}")
        screen = tmux.wait("token=***", count=2)
        assert OLD.decode() not in screen and NEW.decode() not in screen
        assert screen.count("tty=/dev/pts/") == 2  # the new child has the pty as its terminal too
        tmux.type("hello")  # typed keys reach the new child
        tmux.wait("got hello")
        tmux.prompt()
        assert [token for _, token in rig.starts()] == [OLD, NEW]
    finally:
        tmux.close()
