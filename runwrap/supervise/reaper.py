"""Ending descendants: no process the child started outlives it.

runwrap is a child subreaper (tini), so everything the child started, double-forked daemons
included, is reparented to it. When the child ends, each remaining descendant (found by walking the
ppid links in /proc) gets TERM, then KILL after the grace period, and all of them are reaped. A
timeout or a revocation signals the whole tree at once (`signal_descendants`), so the run takes the
grace period once, not once for the child and again for what it left.
"""

from __future__ import annotations

import os
import select
import time

from runwrap.supervise.signals import SignalFd, kill
from runwrap.supervise.streams import say

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # not signal.py's enums: see runwrap.supervise.signals

STUCK_AFTER_KILL = 30.0  # give up on processes that survive SIGKILL this long (D state)


def descendants(root: int) -> dict[int, bytes]:
    """Live descendants of `root` (pid -> state letter), from the ppid links in /proc."""
    children: dict[int, list[int]] = {}
    states: dict[int, bytes] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                line = f.read()
        except OSError:
            continue
        fields = line[line.rindex(b")") + 2:].split()
        pid = int(entry.name)
        states[pid] = fields[0]
        children.setdefault(int(fields[1]), []).append(pid)
    found: dict[int, bytes] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = states[pid]
        todo.extend(children.get(pid, []))
    return {pid: state for pid, state in found.items() if state not in (b"Z", b"X")}


def _has_children() -> bool:
    """Reap what has ended; True while any child (live or not yet reaped) is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def signal_descendants(signo: int) -> set[int]:
    """Send `signo` to every live descendant (then SIGCONT, so a stopped one sees it); their pids."""
    alive = set(descendants(os.getpid()))
    for pid in alive:
        kill(pid, signo)
        kill(pid, signal.SIGCONT)
    return alive


def end_descendants(grace: float, sigfd: SignalFd | None = None, *, termed: set[int] | None = None,
                    kill_by: float | None = None, signals: list[tuple[int, int]] | None = None) -> None:
    """TERM every descendant, KILL those left after `grace`, until none is left and all are reaped.

    `termed`: pids already sent TERM (not sent it twice); `kill_by`: a KILL deadline already set
    (a timeout's), which the grace period does not extend. As a subreaper, runwrap is the ancestor
    of everything the child started, so an empty wait list means nothing is left and /proc need
    not be read. `signals`: where to keep the signals (signo, code) sent to runwrap meanwhile, for a
    restart that goes on after this; otherwise the child is gone and they are dropped.
    """
    termed = set() if termed is None else set(termed)
    kill_at: float | None = None
    killed_at: float | None = None
    while _has_children():
        alive = descendants(os.getpid())
        now = time.monotonic()
        for pid in alive.keys() - termed:
            kill(pid, signal.SIGTERM)
            kill(pid, signal.SIGCONT)
            termed.add(pid)
        if kill_at is None:
            kill_at = now + grace if kill_by is None else min(now + grace, kill_by)
        if now >= kill_at:
            for pid in alive:
                kill(pid, signal.SIGKILL)
            killed_at = killed_at or now
            kill_at = now + 0.5
            if alive and now - killed_at > STUCK_AFTER_KILL:
                say(f"{len(alive)} process(es) survived SIGKILL; leaving them: "
                    + " ".join(map(str, sorted(alive))))
                return
        wait = min(0.05, max(0.0, kill_at - now))
        if sigfd is None:
            time.sleep(wait)
            continue
        if select.select([sigfd.fd], [], [], wait)[0]:
            for signo, code, _pid in sigfd.read():
                # The child is gone: a signal now only hurries nothing; SIGCHLD just wakes us.
                if signals is not None and signo != signal.SIGCHLD:
                    signals.append((signo, code))


def state(pid: int) -> bytes | None:
    """The state letter of `pid` in /proc (R, S, T, t, Z...), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
    except OSError:
        return None
    return line[line.rindex(b")") + 2:].split()[0]


def ignores(pid: int, signo: int) -> bool:
    """Whether `pid` ignores `signo` (its SigIgn mask in /proc)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (signo - 1) & 1)
    except OSError:
        pass
    return False
