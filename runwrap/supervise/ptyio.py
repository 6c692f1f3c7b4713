"""The terminal side of the supervisor: a pty for the child, raw mode for runwrap's terminal.

Loaded only on the terminal path: whether there is a terminal at all is streams.open_terminal's.

When masking is on and runwrap has a terminal (a controlling terminal, or one on stdin, stdout or
stderr), the child gets a pty instead: as its controlling terminal, so what it writes to /dev/tty
is masked too, and on each of its stdin, stdout and stderr that is a terminal for runwrap, so
`isatty` stays true and colours, prompts and line editing keep working. The child never holds an
fd of the real terminal, so nothing it writes there bypasses the masker. runwrap's own terminal
goes into raw mode so keys pass straight through to the pty — except that ISIG stays on: Ctrl-C,
Ctrl-\\ and Ctrl-Z still signal runwrap's process group (and a calling shell script's, which is
what Cracauer's "wait and cooperative exit" needs); the supervisor passes them on to the pty's
foreground group. runwrap leaves the terminal alone when it finds it out of canonical mode: another
program in the pipeline (`| less`) is reading keys from it, and two readers would split them.
"""

from __future__ import annotations

import fcntl
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # not signal.py's enums: see runwrap.supervise.signals

# termios is imported where a terminal is at hand: a run whose output is not one never loads it
# (~0.3 ms of a launch). struct winsize: four unsigned shorts.
_WINSIZE_LEN = 8


def get_winsize(fd: int) -> bytes | None:
    import termios

    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(_WINSIZE_LEN))
    except OSError:
        return None


def set_winsize(fd: int, size: bytes | None) -> bool:
    """Set the window size; True if it changed (the kernel then sends SIGWINCH to the pty's group)."""
    if size is None:
        return False
    if get_winsize(fd) == size:
        return False
    import termios

    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
    except OSError:
        return False
    return True


def open_pty(like: int, size_from: int) -> tuple[int, int]:
    """A (master, slave) pair whose slave has the modes of terminal `like` and the size of `size_from`.

    Both ends are close-on-exec; the child dup2()s the slave onto its stdio.
    """
    import termios

    master, slave = os.openpty()
    try:
        termios.tcsetattr(slave, termios.TCSANOW, termios.tcgetattr(like))
    except termios.error:
        pass
    set_winsize(master, get_winsize(size_from))
    os.set_blocking(master, False)
    return master, slave


def make_controlling(slave: int) -> None:
    """In the forked child, after setsid(): make the pty slave its controlling terminal."""
    import termios

    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)


def is_foreground(fd: int) -> bool:
    """Whether runwrap's process group owns the terminal on `fd` (so it may change its modes)."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def foreground_group(master: int) -> int | None:
    try:
        return os.tcgetpgrp(master)
    except OSError:
        return None


class RawMode:
    """Raw mode for runwrap's terminal that keeps ISIG, and restores the saved modes on demand.

    `keep_output`: leave output processing (OPOST) on, for when runwrap's stdout is not this
    terminal: the rest of the pipeline (`| grep`) writes to it too and needs its newlines made CR LF;
    the pty's output, already processed, passes unchanged but for a CR before each CR LF. (A
    full-screen program drawing on /dev/tty while its stdout is piped then has its bare LFs made
    CR LF too: rarer, and the lesser harm.)
    """

    def __init__(self, fd: int, keep_output: bool = False) -> None:
        self.fd = fd
        import termios

        self.keep_output = keep_output
        self.saved = termios.tcgetattr(fd)
        self.active = False
        self.yielded = False  # another program reads keys from this terminal: do not read them too

    def enter(self) -> None:
        if self.active or not is_foreground(self.fd):
            return
        import termios

        mode = termios.tcgetattr(self.fd)
        # A shell hands its jobs the terminal in canonical mode; out of it, a pager or picker later
        # in the pipeline has taken the keys.
        self.yielded = not mode[3] & termios.ICANON
        if self.yielded:
            return
        iflag, oflag, cflag, lflag = 0, 1, 2, 3
        mode[iflag] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                         | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
        if not self.keep_output:
            mode[oflag] &= ~termios.OPOST
        mode[cflag] = (mode[cflag] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
        mode[lflag] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.IEXTEN)  # ISIG stays
        mode[6] = list(mode[6])
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSADRAIN, mode)
        self.active = True

    def restore(self) -> None:
        if not self.active:
            return
        self.active = False
        import termios

        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        except termios.error:
            pass


def stop_if_orphaned(master: int, pid: int) -> None:
    """Ctrl-Z in pty mode, once the child had its chance to handle SIGTSTP: stop it for real.

    The child leads its own session, so its process group is orphaned, and the kernel discards
    a SIGTSTP whose default action would stop it (POSIX, to protect orphans nobody could
    continue). runwrap is there to continue it, so it sends SIGSTOP unless the child ignores
    SIGTSTP or has already stopped. A job of a shell inside the pty is not orphaned and stops
    by itself; runwrap then leaves it to that shell.
    """
    from runwrap.supervise import reaper
    from runwrap.supervise.signals import killpg

    if foreground_group(master) != pid or reaper.state(pid) in (b"T", b"t") or reaper.ignores(pid, signal.SIGTSTP):
        return
    killpg(pid, signal.SIGSTOP)
