"""signalfd through libc (runwrap.linux), and the small signal helpers the supervisor shares.

The standard library has no signalfd. Reading blocked signals from
an fd lets the supervisor wait for signals, output, stdin, the lease and a deadline in one poll, and
it sees each signal's sender (a terminal key or kill()), which a Python signal handler does not.
"""

from __future__ import annotations

import os
import sys

from runwrap.linux import Int, VoidP, address, errno, function

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Iterator
    from typing import NoReturn
else:  # the C module: signal.py converts every constant to an enum at import (~0.5 ms of each
    import _signal as signal  # launch); runwrap needs only the numbers and the calls

SFD_CLOEXEC = os.O_CLOEXEC
SFD_NONBLOCK = os.O_NONBLOCK
_SIGINFO_SIZE = 128
_SIGSET_SIZE = 128  # glibc's sigset_t: 1024 bits

# What SPEC says reaches the child, plus the job-control stops.
FORWARDED = (
    signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGWINCH, signal.SIGCONT, signal.SIGALRM, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
)
STOPS = (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
KEYBOARD = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP)  # what a terminal's keys generate
SI_KERNEL = 0x80  # ssi_code of a signal the kernel sent (a terminal key, a resize), not kill()

_signalfd = function("signalfd", Int, Int, VoidP, Int)
_sigaddset = function("sigaddset", Int, VoidP, Int)


class SignalFd:
    """The blocked signals, readable as (signo, code, pid) records from one fd."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        mask = bytearray(_SIGSET_SIZE)  # an empty set (sigemptyset zeroes it too)
        where = address(mask)
        for signo in signals:
            _sigaddset(where, signo)
        self.fd = _signalfd(-1, where, SFD_CLOEXEC | SFD_NONBLOCK)
        if self.fd < 0:
            err = errno()
            raise OSError(err, f"signalfd: {os.strerror(err)}")

    def read(self) -> Iterator[tuple[int, int, int]]:
        while True:
            try:
                data = os.read(self.fd, _SIGINFO_SIZE * 16)
            except BlockingIOError:
                return
            for off in range(0, len(data), _SIGINFO_SIZE):
                # signalfd_siginfo starts u32 ssi_signo, i32 ssi_errno, i32 ssi_code, u32 ssi_pid
                signo = int.from_bytes(data[off : off + 4], sys.byteorder)
                code = int.from_bytes(data[off + 8 : off + 12], sys.byteorder, signed=True)
                pid = int.from_bytes(data[off + 12 : off + 16], sys.byteorder)
                yield signo, code, pid

    def close(self) -> None:
        os.close(self.fd)


def kill(pid: int, signo: int) -> None:
    """os.kill, quiet when the process is already gone (or no longer runwrap's to signal)."""
    try:
        os.kill(pid, signo)
    except (ProcessLookupError, PermissionError):
        pass


def killpg(pgid: int, signo: int) -> None:
    """os.killpg, quiet when the group is already gone."""
    try:
        os.killpg(pgid, signo)
    except (ProcessLookupError, PermissionError):
        pass


def flush_stdio() -> None:
    """Flush Python's stdout and stderr before the process ends without the interpreter's teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # None when runwrap was started with that fd closed
                stream.flush()
        except (OSError, ValueError):
            pass


def die_by(signo: int) -> NoReturn:
    """End this process by signal `signo`, as the child did, so the caller's shell sees 128+N."""
    flush_stdio()
    if signo != signal.SIGKILL:
        try:
            signal.signal(signo, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, (signo,))
        except (OSError, ValueError):
            pass
    os.kill(os.getpid(), signo)
    # Only a signal whose default action does not terminate gets here.
    os._exit(128 + signo)
