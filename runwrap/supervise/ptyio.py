"""The terminal side of the supervisor: a pty for the child, raw mode for runwrap's terminal.

When runwrap's stdout is a terminal and masking is on, the child gets a pty so `isatty` stays true
and colours, prompts and line editing keep working, while runwrap reads everything it prints.
runwrap's own terminal goes into raw mode so keys pass straight through to the pty — except that
ISIG stays on: Ctrl-C, Ctrl-\\ and Ctrl-Z still signal runwrap's process group (and a calling
shell script's, which is what Cracauer's "wait and cooperative exit" needs); the supervisor passes
them on to the pty's foreground group.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios

_WINSIZE = struct.Struct("HHHH")


def get_winsize(fd: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(_WINSIZE.size))
    except OSError:
        return None


def set_winsize(fd: int, size: bytes | None) -> bool:
    """Set the window size; True if it changed (the kernel then sends SIGWINCH to the pty's group)."""
    if size is None:
        return False
    if get_winsize(fd) == size:
        return False
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
    except OSError:
        return False
    return True


def open_pty(like: int, size_from: int) -> tuple[int, int]:
    """A (master, slave) pair whose slave has the modes of terminal `like` and the size of `size_from`.

    Both ends are close-on-exec; the child dup2()s the slave onto its stdio.
    """
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
    """Raw mode for runwrap's terminal that keeps ISIG, and restores the saved modes on demand."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved = termios.tcgetattr(fd)
        self.active = False

    def enter(self) -> None:
        if self.active or not is_foreground(self.fd):
            return
        mode = termios.tcgetattr(self.fd)
        iflag, oflag, cflag, lflag = 0, 1, 2, 3
        mode[iflag] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                         | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
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
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        except termios.error:
            pass
