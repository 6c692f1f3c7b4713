"""Output pumping: child fd -> `Masker` -> runwrap's fd, without ever blocking the signal loop.

The child's raw output lands only in one reused buffer per stream, which is wiped when the child
ends; a stream stops reading while its reader is slow, so a stuck terminal cannot grow memory.
When runwrap's fd refuses a write (EPIPE, ENOSPC, EIO...), the stream stops reading and closes its
end of the child's pipe, so the child's next write fails as it would have without runwrap, instead
of runwrap reading and dropping its output forever; `error` keeps the errno for the exit status.
"""

from __future__ import annotations

import errno
import os
import select
import stat

from runwrap.secret import wipe_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:  # the Masker is made by the supervisor, only when masking is on
    from runwrap.supervise.mask import Masker

READ_SIZE = 65536
WRITE_CHUNK = select.PIPE_BUF  # a write this small never blocks once poll says POLLOUT
MAX_PENDING = 1 << 18  # stop reading a stream while this much output waits for its reader
ECHO_MAX = 4096  # typed bytes remembered until the pty's next read (a paste may be longer; its end counts)


class Stream:
    """One output stream of the child, read into a reused buffer and masked on its way out."""

    def __init__(self, src: int, dest: int, masker: Masker) -> None:
        self.src: int | None = src
        self.dest = dest
        self.masker = masker
        self.buf = bytearray(READ_SIZE)  # the child's raw output only ever lands here; wiped at the end
        # A pty master's stream: what runwrap wrote to the terminal since the last read, whose echo
        # need not wait for the masker (see read). None for pipes.
        self.echo: bytearray | None = None
        self.out = bytearray()  # masked output waiting for runwrap's fd
        self.sent = 0
        self.out_fd, self.chunk = _writer(dest)
        self.writable = select.poll()
        self.writable.register(dest, select.POLLOUT)
        self.error: int | None = None  # the errno of the write to `dest` that failed, if one did
        os.set_blocking(src, False)

    def wants_input(self) -> bool:
        return self.src is not None and len(self.out) - self.sent < MAX_PENDING

    def wants_output(self) -> bool:
        return self.sent < len(self.out)

    def read(self) -> None:
        """Read what is there; at end of stream flush the masker's held tail."""
        if self.src is None:
            return
        try:
            n = os.readv(self.src, [self.buf])
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # a pty master reads EIO once every slave is closed
                raise
            n = 0
        if n == 0:
            self.out += self.masker.flush()
            self._close_src()
            return
        # The read buffer itself, bounded by n: no copy of the raw output is made (a slice would be
        # one more to wipe), and the buffer is wiped when the stream closes.
        self.out += self.masker.feed(self.buf, n)
        if self.echo is not None:
            self._release_echo(n)

    def expect_echo(self, data: bytes | bytearray | memoryview) -> None:
        """Note bytes just written to the child's terminal (what the user typed)."""
        if self.echo is not None:
            self.echo += data
            drop = len(self.echo) - ECHO_MAX
            if drop > 0:
                self.echo[:drop] = bytes(drop)  # zeroed first: del only moves the start past them
                del self.echo[:drop]

    def _release_echo(self, n: int) -> None:
        """A typed key that may begin a value is held by the masker until the next one comes. When
        this read is nothing but the echo of what was just typed, and the held bytes all came in it,
        they are the user's input, not the child's output: release them at once. Anything else in
        the read (the child's output) keeps the held bytes held."""
        held = self.masker.held
        echo = self.echo
        assert echo is not None
        if held and held <= n <= len(echo):
            with memoryview(self.buf) as got, memoryview(echo) as typed:
                if got[:n] == typed[len(echo) - n:]:
                    self.out += self.masker.release()
        wipe_bytes(echo)
        echo.clear()

    def drain(self) -> None:
        """Everything the child wrote before it exited (descendants may keep writing; not waited for)."""
        while self.src is not None:
            before = len(self.out)
            self.read()
            if self.src is not None and len(self.out) == before:
                try:
                    if not select.select([self.src], [], [], 0)[0]:
                        break
                except OSError:
                    break
        if self.src is not None:
            self.out += self.masker.flush()
            self._close_src()

    def write(self, block: bool = False) -> None:
        """Write while runwrap's fd takes it without blocking (or, at the end, everything)."""
        first = True
        while self.sent < len(self.out):
            if not block and not first and not self.writable.poll(0):
                break
            first = False
            size = len(self.out) - self.sent if block else min(self.chunk, len(self.out) - self.sent)
            try:
                with memoryview(self.out) as view:
                    self.sent += os.write(self.dest if block else self.out_fd,
                                          view[self.sent:self.sent + size])
            except BlockingIOError:
                break
            except OSError as exc:
                self._failed(exc.errno or errno.EIO)
                return
        if self.sent == len(self.out):
            self.out.clear()
            self.sent = 0

    def _failed(self, code: int) -> None:
        """runwrap's fd refused the output: let the child find out at its next write, as it would have
        directly (EPIPE, or SIGPIPE), by closing the read end. A reader that left (EPIPE) is normal;
        anything else is said once, and `error` makes runwrap's exit status show it."""
        self.out.clear()
        self.sent = 0
        self._close_src()
        if self.error is None:
            self.error = code
            if code != errno.EPIPE:
                name = {1: "stdout", 2: "stderr"}.get(self.dest, "terminal output")
                say(f"cannot write the child's {name}: {os.strerror(code)}")

    def _close_src(self) -> None:
        if self.src is not None:
            os.close(self.src)
            self.src = None

    def close_writer(self) -> None:
        if self.out_fd != self.dest:
            os.close(self.out_fd)
            self.out_fd = self.dest

    def wipe(self) -> None:
        wipe_bytes(self.buf)
        if self.echo is not None:
            wipe_bytes(self.echo)
        self.masker.wipe()

    def close(self) -> None:
        self._close_src()
        self.close_writer()


def _writer(dest: int) -> tuple[int, int]:
    """An fd and chunk size for writing to runwrap's `dest` without blocking the signal loop.

    `dest` is shared with other processes, so it cannot be made non-blocking. A pipe is opened
    again through /proc as a file description of runwrap's own, which can be; a regular file or
    /dev/null never blocks for long; anything else (a terminal, a socket) gets writes of at most
    PIPE_BUF, which do not block once poll says POLLOUT.
    """
    try:
        info = os.fstat(dest)
    except OSError:
        return dest, WRITE_CHUNK
    if stat.S_ISREG(info.st_mode) or (stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3)):
        return dest, READ_SIZE
    if stat.S_ISFIFO(info.st_mode):
        try:
            return os.open(f"/proc/self/fd/{dest}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC), READ_SIZE
        except OSError:
            pass
    return dest, WRITE_CHUNK


def same_destination(a: int, b: int) -> bool:
    """Whether writes to fds `a` and `b` land in one stream, in the order made (`2>&1`, `>>f 2>>f`).

    The same pipe, socket or terminal; for a regular file, the same open file description (the
    position and flags in /proc/self/fdinfo agree) or both in append mode. Two separate opens of one
    file (`>f 2>f`) are not: each has its own offset.
    """
    try:
        one, two = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    if (one.st_dev, one.st_ino) != (two.st_dev, two.st_ino):
        return False
    if not stat.S_ISREG(one.st_mode):
        return True
    import fcntl  # only for stdout and stderr on one regular file (its import is ~0.3 ms of a launch)

    try:
        append = [fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND for fd in (a, b)]
        return all(append) or _fdinfo(a) == _fdinfo(b)
    except OSError:  # no /proc: keep them apart, as before
        return False


def _fdinfo(fd: int) -> list[bytes]:
    with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
        return [line for line in f if line.startswith((b"pos:", b"flags:"))]


def open_terminal() -> tuple[int, bool] | None:
    """runwrap's terminal, opened anew for its own use (pty mode: see ptyio), and whether it is the controlling one.

    /dev/tty, else the first of stdout, stderr and stdin that is a terminal; None without any.
    """
    paths = [("/dev/tty", True), *((f"/proc/self/fd/{fd}", False) for fd in (1, 2, 0) if os.isatty(fd))]
    for path, controlling in paths:
        try:
            return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC), controlling
        except OSError:  # /dev/tty: ENXIO without a controlling terminal, EIO once it hung up
            continue
    return None


def say(message: str, raw: bool = False) -> None:
    """A line of runwrap's own on stderr (`raw`: the terminal is in raw mode and needs \\r\\n)."""
    line = f"runwrap: {message}" + ("\r\n" if raw else "\n")
    try:
        os.write(2, line.encode("utf-8", "replace"))
    except OSError:
        pass
