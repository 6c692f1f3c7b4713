"""Run the child with its secrets and supervise it the way dumb-init and tini do.

The child runs as if started directly: its exit status is runwrap's (a death by signal N makes
runwrap die by N), every signal sent to runwrap reaches it once, a terminal keeps working, and no
process it started outlives it. How:

- The command is resolved on the child's PATH before forking (as execvp would) and started with
  fork + execve; an exec failure comes back through a close-on-exec pipe with its errno, as in
  ptyprocess. Only the forked child turns `Secret` values into `NAME=value` bytes.
- runwrap is a child subreaper (tini), blocks the signals it forwards plus SIGCHLD and reads them
  from a signalfd in one poll loop, together with the child's output, stdin (pty mode), the lease
  and the nearest deadline. Every SIGCHLD reaps with waitpid(-1, WNOHANG), orphans included.
- Output goes through a `Masker` per stream: pipes when runwrap's stdout is not a terminal, a pty
  (see `ptyio`) when it is, or runwrap's own stdio when masking is off.
- When the child ends: wipe, flush, report the lease's end, then TERM every remaining descendant
  (found by walking /proc), KILL them after the grace period, reap them all.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import select
import signal
import stat
import struct
import sys
import time
from collections.abc import Iterator
from typing import NoReturn, Protocol

from runwrap import hardening, ptyio
from runwrap.environment import to_exec_env
from runwrap.errors import (
    EXIT_TIMEOUT,
    CannotExecute,
    CommandNotFound,
    LeaseRevoked,
    RunwrapError,
)
from runwrap.record import Record
from runwrap.secret import Secret

# What SPEC says reaches the child, plus the job-control stops.
FORWARDED = (
    signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGWINCH, signal.SIGCONT, signal.SIGALRM, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
)
STOPS = (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
KEYBOARD = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP)  # what a terminal's keys generate
SI_KERNEL = 0x80  # ssi_code of a signal the kernel sent (a terminal key, a resize), not kill()
REVOKE_GRACE = 1.0
STOP_CHECK = 0.1  # how long a child gets to handle SIGTSTP before pty mode stops it
STUCK_AFTER_KILL = 30.0  # give up on processes that survive SIGKILL this long (D state)
READ_SIZE = 65536
WRITE_CHUNK = select.PIPE_BUF  # a write this small never blocks once poll says POLLOUT
MAX_PENDING = 1 << 18  # stop reading a stream while this much output waits for its reader
MAX_ARG_STRLEN = 131072  # the kernel's limit for one NAME=value string


class Lease(Protocol):
    def fileno(self) -> int: ...

    def poll_revoked(self) -> str | None: ...

    def end(self, exit_status: int, duration_ms: int) -> None: ...


class Launch(Record):
    """What to run and how: the one argument of `run`."""

    __slots__ = ("argv", "env", "kill_grace", "lease", "mask", "mask_values", "timeout", "wipe")

    def __init__(self, argv: list[str], env: dict[str, str | Secret], mask_values: list[Secret] | None = None,
                 mask: bool = True, timeout: float | None = None, kill_grace: float = 5.0,
                 lease: Lease | None = None, wipe: list[Secret] | None = None) -> None:
        self.argv = argv  # argv[0] already resolved by resolve_command
        self.env = env  # the child's exact environment
        self.mask_values = [] if mask_values is None else mask_values
        self.mask = mask
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.lease = lease
        self.wipe = [] if wipe is None else wipe  # zeroed when the child ends


# ---- resolving the command, before forking ----

def resolve_command(cmd: str, path: str | None) -> str:
    """The file execvp would run for `cmd` on the child's PATH; 127/126 errors as a shell gives them."""
    if not cmd:
        raise CommandNotFound(": command not found")
    if "/" in cmd:
        candidates = [cmd]
    else:
        search = path if path is not None else (os.confstr("CS_PATH") or os.defpath)
        candidates = [os.path.join(folder or ".", cmd) for folder in search.split(":")]
    refused: str | None = None
    for candidate in candidates:
        try:
            info = os.stat(candidate)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.ELOOP) or ("/" in cmd and exc.errno != errno.ENOENT):
                refused = refused or f"{candidate}: {os.strerror(exc.errno or 0)}"
            continue
        if stat.S_ISDIR(info.st_mode):
            refused = refused or f"{candidate}: Is a directory"
        elif not stat.S_ISREG(info.st_mode) or not os.access(candidate, os.X_OK):
            refused = refused or f"{candidate}: Permission denied"
        else:
            _refuse_shebang_loop(candidate)
            return candidate
    if refused:
        raise CannotExecute(refused)
    raise CommandNotFound(f"{cmd}: command not found")


def _refuse_shebang_loop(path: str) -> None:
    """Refuse a script whose `#!` line would make runwrap run this same script again, forever.

    `#!/usr/bin/env -S runwrap deploy -- bash` runs bash on the script; `#!/usr/bin/env -S runwrap
    deploy --` runs the script itself under runwrap, which reads the same line again.
    """
    try:
        with open(path, "rb") as script:
            head = script.read(512)
    except OSError:
        return
    if not head.startswith(b"#!"):
        return
    words = head[2:].split(b"\n", 1)[0].split()
    if words and os.path.basename(words[0]) == b"env":
        words = _env_operands(words[1:])
    if not words or os.path.basename(words[0]) != b"runwrap":
        return
    rest = words[1:]
    command = rest[rest.index(b"--") + 1:] if b"--" in rest else []
    if not command:
        raise CannotExecute(f"refusing to run {path}: its shebang runs runwrap on itself")


def _env_operands(args: list[bytes]) -> list[bytes]:
    """What env(1) runs: its arguments after options (`-S`, `-i`, `-u NAME`) and NAME=value pairs."""
    i = 0
    while i < len(args):
        word = args[i]
        if word in (b"-u", b"-C", b"--unset", b"--chdir"):
            i += 2
        elif word.startswith(b"-S") and len(word) > 2:
            return [word[2:], *args[i + 1:]]
        elif word.startswith(b"-") or b"=" in word:
            i += 1
        else:
            break
    return args[i:]


def _check_env(env: dict[str, str | Secret]) -> None:
    """Refuse what execve cannot carry, before the child starts (without copying secret values)."""
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            raise RunwrapError(f"cannot pass the variable {name!r}: a name must be non-empty, "
                               "without '=' or NUL")
        size = len(value) if isinstance(value, Secret) else len(os.fsencode(value))
        has_nul = 0 in value.buffer if isinstance(value, Secret) else "\0" in value
        if has_nul:
            raise RunwrapError(f"the value of {name} contains a NUL byte, which no environment can carry")
        if len(os.fsencode(name)) + 2 + size > MAX_ARG_STRLEN:
            raise RunwrapError(f"the value of {name} is {size} bytes; one environment entry can "
                               f"hold at most {MAX_ARG_STRLEN - 2 - len(name)}")


# ---- signalfd and prctl, through ctypes ----

PR_SET_CHILD_SUBREAPER = 36
SFD_CLOEXEC = os.O_CLOEXEC
SFD_NONBLOCK = os.O_NONBLOCK
_SIGINFO = struct.Struct("IiiI")  # ssi_signo, ssi_errno, ssi_code, ssi_pid of signalfd_siginfo
_SIGINFO_SIZE = 128


class _SigSet(ctypes.Structure):
    _fields_ = [("val", ctypes.c_ulong * (1024 // (8 * ctypes.sizeof(ctypes.c_ulong))))]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.signalfd.argtypes = [ctypes.c_int, ctypes.POINTER(_SigSet), ctypes.c_int]
_libc.sigaddset.argtypes = [ctypes.POINTER(_SigSet), ctypes.c_int]


class SignalFd:
    """The blocked signals, readable as (signo, code, pid) records from one fd."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        mask = _SigSet()
        for signo in signals:
            _libc.sigaddset(ctypes.byref(mask), signo)
        self.fd = _libc.signalfd(-1, ctypes.byref(mask), SFD_CLOEXEC | SFD_NONBLOCK)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"signalfd: {os.strerror(err)}")

    def read(self) -> Iterator[tuple[int, int, int]]:
        while True:
            try:
                data = os.read(self.fd, _SIGINFO_SIZE * 16)
            except BlockingIOError:
                return
            for off in range(0, len(data), _SIGINFO_SIZE):
                signo, _err, code, pid = _SIGINFO.unpack_from(data, off)
                yield signo, code, pid

    def close(self) -> None:
        os.close(self.fd)


# ---- the child side of the fork ----

class _Plan:
    """How the child's stdio and process group are set up."""

    def __init__(self, ignored: tuple[int, ...] = ()) -> None:
        self.stdio: dict[int, int] = {}  # child fd -> fd to dup2 onto it
        self.own_group = False
        self.pty_slave: int | None = None
        self.ignored = ignored


def _exec_child(launch: Launch, plan: _Plan, report: int) -> NoReturn:
    """In the forked child: set up stdio, group and signals, convert the environment, execve."""
    code = 0
    try:
        if plan.pty_slave is not None:
            os.setsid()
            ptyio.make_controlling(plan.pty_slave)
        elif plan.own_group:
            os.setpgid(0, 0)
        for target, source in plan.stdio.items():
            os.dup2(source, target)
        for signo in range(1, signal.NSIG):
            if signo in (signal.SIGKILL, signal.SIGSTOP):
                continue
            try:
                signal.signal(signo, signal.SIG_IGN if signo in plan.ignored else signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        if hardening.original_core_limit is not None:
            resource.setrlimit(resource.RLIMIT_CORE, hardening.original_core_limit)
        env = to_exec_env(launch.env)
        try:
            os.execve(launch.argv[0], launch.argv, env)  # noqa: S606 - argv list, no shell
        except OSError as exc:
            if exc.errno != errno.ENOEXEC:
                raise
            # As execvp: a file with no #! line and no binary format is a shell script.
            os.execve("/bin/sh", ["sh", launch.argv[0], *launch.argv[1:]], env)  # noqa: S606
    except OSError as exc:
        code = exc.errno or errno.EINVAL
    except BaseException:
        code = errno.EINVAL
    try:
        os.write(report, code.to_bytes(4, "little"))
    finally:
        os._exit(127)


def _exec_error(argv0: str, code: int) -> RunwrapError:
    if code == errno.E2BIG:
        return RunwrapError(f"{argv0}: the arguments and environment are too large to execute")
    if code == errno.ENOENT and "/" not in argv0:
        return CommandNotFound(f"{argv0}: command not found")
    return CannotExecute(f"{argv0}: {os.strerror(code)}")


# ---- output: child fd -> Masker -> runwrap's fd ----

class _Stream:
    """One output stream of the child, read into a reused buffer and masked on its way out."""

    def __init__(self, src: int, dest: int, masker: object) -> None:
        self.src: int | None = src
        self.dest = dest
        self.masker = masker
        self.buf = bytearray(READ_SIZE)  # the child's raw output only ever lands here; wiped at the end
        self.out = bytearray()  # masked output waiting for runwrap's fd
        self.sent = 0
        self.out_fd, self.chunk = _writer(dest)
        self.writable = select.poll()
        self.writable.register(dest, select.POLLOUT)
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
            self.out += self.masker.flush()  # type: ignore[attr-defined]
            self._close_src()
            return
        # A bytearray, not a memoryview: the Masker would turn a view into bytes nobody can wipe.
        chunk = self.buf[:n]
        try:
            self.out += self.masker.feed(chunk)  # type: ignore[attr-defined]
        finally:
            chunk[:] = bytes(n)

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
            self.out += self.masker.flush()  # type: ignore[attr-defined]
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
            except BrokenPipeError:
                # Nobody reads runwrap's output: let the child find out as it would have directly.
                self.out.clear()
                self.sent = 0
                self._close_src()
                return
            except OSError:
                self.out.clear()
                self.sent = 0
                return
        if self.sent == len(self.out):
            self.out.clear()
            self.sent = 0

    def _close_src(self) -> None:
        if self.src is not None:
            os.close(self.src)
            self.src = None

    def close_writer(self) -> None:
        if self.out_fd != self.dest:
            os.close(self.out_fd)
            self.out_fd = self.dest

    def wipe(self) -> None:
        self.buf[:] = bytes(len(self.buf))
        self.masker.wipe()  # type: ignore[attr-defined]

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


# ---- the supervisor ----

def run(launch: Launch) -> int:
    """Run and supervise the child; its exit status (or 124 on timeout), or die by its signal."""
    _check_env(launch.env)
    return _Supervisor(launch).run()


class _Supervisor:
    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self.pid = 0
        self.status: int | None = None  # the direct child's wait status, once reaped
        self.streams: list[_Stream] = []
        self.master: int | None = None  # pty master in pty mode
        self.raw: ptyio.RawMode | None = None
        self.stdin_open = False
        self.stdin_buf = bytearray(4096)
        self.to_master = bytearray()
        self.shared_group = False
        self.stopped_with_child = False
        self.stop_asked = False  # a stop signal arrived: when the child stops, runwrap stops too
        self.child_stopped = False
        self.lease_done = False
        self.stop_check: float | None = None  # pty mode: see _stop_if_orphaned
        self.deadline: float | None = None  # timeout
        self.kill_at: float | None = None  # SIGKILL the child if it still runs then
        self.timed_out = False
        self.revoked: str | None = None
        self.started = 0.0

    # -- setting up --

    def run(self) -> int:
        ignored = tuple(s for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
                        if signal.getsignal(s) == signal.SIG_IGN)
        plan = _Plan(ignored=ignored)
        child_ends = self._plan_io(plan)
        hardening.prctl(PR_SET_CHILD_SUBREAPER, 1)
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, (*FORWARDED, signal.SIGCHLD))
        self.sigfd = SignalFd((*FORWARDED, signal.SIGCHLD))
        try:
            self._start(plan, child_ends)
        except BaseException:
            self._close_all()
            self.sigfd.close()
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            self._wipe()
            raise
        # From here the forwarded signals stay blocked: runwrap exits with the child's status, and
        # a signal that arrives after the child is gone must not turn into runwrap's own death.
        try:
            self._supervise()
        except BaseException:
            if self.status is None:  # runwrap itself failed: the child must not outlive it
                _kill(self.pid, signal.SIGKILL)
                end_descendants(0.0)
            raise
        finally:
            if self.raw is not None:
                self.raw.restore()
            self._wipe()
        return self._finish()

    def _plan_io(self, plan: _Plan) -> list[int]:
        """Open the pipes or pty for the chosen mode; returns the fds the parent closes after fork."""
        launch = self.launch
        stdin_tty = os.isatty(0)
        if not launch.mask or not launch.mask_values:
            self.shared_group = stdin_tty
            plan.own_group = not stdin_tty
            return []
        from runwrap.mask import Masker  # only the masking modes need it

        for fd in (0, 1, 2):  # a closed stdio fd would be reused by the pipes below
            try:
                os.fstat(fd)
            except OSError:
                os.open(os.devnull, os.O_RDWR)

        def masker() -> Masker:
            return Masker(launch.mask_values)

        first = masker()
        if first.short_values:
            _say(f"{first.short_values} injected value(s) shorter than 4 characters are not masked")
        ends: list[int] = []
        if os.isatty(1):
            master, slave = ptyio.open_pty(like=0 if stdin_tty else 1, size_from=1)
            self.master, plan.pty_slave = master, slave
            ends.append(slave)
            plan.stdio[1] = slave
            if stdin_tty:
                plan.stdio[0] = slave
                self.raw = ptyio.RawMode(0)
            self.streams.append(_Stream(master, 1, first))
            if os.isatty(2):
                plan.stdio[2] = slave
            else:
                read, write = os.pipe()
                ends.append(write)
                plan.stdio[2] = write
                self.streams.append(_Stream(read, 2, masker()))
            return ends
        self.shared_group = stdin_tty
        plan.own_group = not stdin_tty
        for fd, mk in ((1, first), (2, masker())):
            read, write = os.pipe()
            ends.append(write)
            plan.stdio[fd] = write
            self.streams.append(_Stream(read, fd, mk))
        return ends

    def _start(self, plan: _Plan, child_ends: list[int]) -> None:
        report_r, report_w = os.pipe()
        self.started = time.monotonic()
        try:
            pid = os.fork()
            if pid == 0:
                _exec_child(self.launch, plan, report_w)
            self.pid = pid
        finally:
            os.close(report_w)
            for fd in child_ends:
                os.close(fd)
        if plan.own_group:
            try:  # also here, so no signal can find the child between fork and its own setpgid
                os.setpgid(pid, pid)
            except OSError:
                pass
        data = b""
        try:
            while chunk := os.read(report_r, 4):
                data += chunk
        finally:
            os.close(report_r)
        if data:
            os.waitpid(pid, 0)
            raise _exec_error(self.launch.argv[0], int.from_bytes(data[:4].ljust(4, b"\0"), "little"))
        if self.launch.timeout is not None:
            self.deadline = self.started + self.launch.timeout
        if self.raw is not None:
            self.raw.enter()
            self.stdin_open = True

    # -- the loop --

    def _supervise(self) -> None:
        while self.status is None:
            self._poll_once()
        self._child_ended()

    def _poll_once(self) -> None:
        poller = select.poll()
        poller.register(self.sigfd.fd, select.POLLIN)
        wanted: dict[int, int] = {}
        for stream in self.streams:
            if stream.src is not None and stream.wants_input():
                wanted[stream.src] = wanted.get(stream.src, 0) | select.POLLIN
            if stream.wants_output():
                wanted[stream.dest] = wanted.get(stream.dest, 0) | select.POLLOUT
        if self.master is not None and self.to_master:
            wanted[self.master] = wanted.get(self.master, 0) | select.POLLOUT
        if self.stdin_open and not self.to_master:
            wanted[0] = wanted.get(0, 0) | select.POLLIN
        lease_fd = self.launch.lease.fileno() if self.launch.lease is not None else -1
        if lease_fd >= 0 and self.revoked is None and not self.lease_done:
            wanted[lease_fd] = wanted.get(lease_fd, 0) | select.POLLIN
        for fd, events in wanted.items():
            poller.register(fd, events)
        ready = dict(poller.poll(self._poll_timeout()))
        if self.sigfd.fd in ready:
            self._signals()
        for stream in self.streams:
            if stream.src is not None and ready.get(stream.src, 0) & (select.POLLIN | select.POLLHUP):
                stream.read()
            if stream.wants_output() and ready.get(stream.dest, 0) & (select.POLLOUT | select.POLLERR):
                stream.write()
        if self.master is not None and self.to_master and ready.get(self.master, 0) & select.POLLOUT:
            self._write_master()
        if self.stdin_open and ready.get(0, 0):
            self._read_stdin()
        if lease_fd >= 0 and lease_fd in ready and self.revoked is None and not self.lease_done:
            reason = self.launch.lease.poll_revoked()  # type: ignore[union-attr]
            if reason is not None:
                self._revoke(reason)
            elif ready[lease_fd] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                self.lease_done = True  # a lost listener is not a revocation; stop polling it
        self._deadlines()

    def _poll_timeout(self) -> int:
        soonest = min((t for t in (self.deadline, self.kill_at, self.stop_check) if t is not None),
                      default=None)
        if soonest is None:
            return -1
        return max(0, int((soonest - time.monotonic()) * 1000) + 1)

    def _deadlines(self) -> None:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            self.timed_out = True
            self._say(f"timed out after {format_duration(self.launch.timeout or 0)}")
            self._terminate(self.launch.kill_grace)
        if self.stop_check is not None and now >= self.stop_check:
            self.stop_check = None
            self._stop_if_orphaned()
        if self.kill_at is not None and now >= self.kill_at and self.status is None:
            self.kill_at = None
            _kill(self.pid, signal.SIGKILL)
            _kill(self.pid, signal.SIGCONT)

    def _terminate(self, grace: float) -> None:
        """TERM the child now and KILL it after `grace` (a stopped child is continued to see TERM)."""
        _kill(self.pid, signal.SIGTERM)
        _kill(self.pid, signal.SIGCONT)
        kill_at = time.monotonic() + grace
        self.kill_at = kill_at if self.kill_at is None else min(self.kill_at, kill_at)

    def _revoke(self, reason: str) -> None:
        self.revoked = reason
        self.deadline = None
        self._terminate(min(self.launch.kill_grace, REVOKE_GRACE))

    # -- signals --

    def _signals(self) -> None:
        # signalfd hands out SIGCHLD (17) before SIGTSTP (20): forward first, then reap, so a
        # Ctrl-Z that stopped runwrap's group is known when the child's stop is seen.
        reap = False
        for signo, code, _pid in list(self.sigfd.read()):
            if signo == signal.SIGCHLD:
                reap = True
            elif self.status is None:
                self._forward(signo, code)
        if reap:
            self._reap()

    def _forward(self, signo: int, code: int) -> None:
        from_terminal = code == SI_KERNEL
        if signo in STOPS:
            self.stop_asked = True
            if self.child_stopped and self.master is None:
                self._child_stopped()  # its stop was seen before this signal was read
                return
        if self.master is not None:
            if signo == signal.SIGWINCH:
                # The kernel signals the pty's foreground group when the size changes.
                if not ptyio.set_winsize(self.master, ptyio.get_winsize(1)) and not from_terminal:
                    _kill(self.pid, signo)
                return
            if signo == signal.SIGCONT:
                self._resume()
                return
            if from_terminal and signo in KEYBOARD:
                group = ptyio.foreground_group(self.master)
                if group is not None and group > 0:
                    _killpg(group, signo)
            else:
                _kill(self.pid, signo)
            if signo in STOPS:
                self.stop_check = time.monotonic() + STOP_CHECK
            return
        if signo == signal.SIGCONT and self.stopped_with_child:
            # `fg`/`bg` continued runwrap's whole job; the child was in it.
            self.stopped_with_child = False
            if self.shared_group:
                return
            _killpg(self.pid, signo)
            return
        if self.shared_group and from_terminal:
            return  # the terminal signalled runwrap's group, the child included
        _kill(self.pid, signo)

    def _stop_if_orphaned(self) -> None:
        """Ctrl-Z in pty mode, once the child had its chance to handle SIGTSTP: stop it for real.

        The child leads its own session, so its process group is orphaned, and the kernel discards
        a SIGTSTP whose default action would stop it (POSIX, to protect orphans nobody could
        continue). runwrap is there to continue it, so it sends SIGSTOP unless the child ignores
        SIGTSTP or has already stopped. A job of a shell inside the pty is not orphaned and stops
        by itself; runwrap then leaves it to that shell.
        """
        if self.status is not None:
            return
        group = ptyio.foreground_group(self.master) if self.master is not None else None
        if group != self.pid or _state(self.pid) in (b"T", b"t") or _ignores(self.pid, signal.SIGTSTP):
            return
        _killpg(self.pid, signal.SIGSTOP)

    def _resume(self) -> None:
        """SIGCONT in pty mode: back to raw mode, resend the window size, continue the child's group."""
        if self.raw is not None:
            self.raw.enter()
            self.stdin_open = True
        if self.master is not None:
            ptyio.set_winsize(self.master, ptyio.get_winsize(1))
        self.stopped_with_child = False
        _killpg(self.pid, signal.SIGCONT)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED | os.WCONTINUED)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid != self.pid or self.status is not None:
                continue
            if os.WIFSTOPPED(status):
                self.child_stopped = True
                self._child_stopped()
            elif os.WIFCONTINUED(status):
                self.child_stopped = False
            else:
                self.status = status

    def _child_stopped(self) -> None:
        """The child stopped (Ctrl-Z, SIGSTOP): stop runwrap too, so its shell gets the terminal back."""
        if self.master is None and not self.stop_asked:
            return  # stopped by someone else, who will continue it; runwrap keeps supervising
        self.stop_asked = False
        if self.raw is not None:
            self.raw.restore()
        self.stopped_with_child = True
        os.kill(os.getpid(), signal.SIGSTOP)

    # -- the terminal --

    def _read_stdin(self) -> None:
        try:
            n = os.readv(0, [self.stdin_buf])
        except BlockingIOError:
            return
        except OSError:
            n = 0  # EIO: runwrap is in the background or the terminal hung up; SIGCONT re-enables
        if n == 0:
            self.stdin_open = False
            return
        self.to_master += memoryview(self.stdin_buf)[:n]
        self._write_master()

    def _write_master(self) -> None:
        try:
            sent = os.write(self.master, self.to_master)  # type: ignore[arg-type]
        except BlockingIOError:
            return
        except OSError:
            sent = len(self.to_master)
        del self.to_master[:sent]

    # -- the end --

    def _child_ended(self) -> None:
        """Wipe, flush, report the lease's end, then make sure no descendant is left."""
        for stream in self.streams:
            stream.drain()
            stream.write(block=True)
        self._wipe()
        if self.raw is not None:
            self.raw.restore()
            self.stdin_open = False
        lease = self.launch.lease
        if lease is not None:
            try:
                lease.end(self.exit_status(), int((time.monotonic() - self.started) * 1000))
            except Exception:  # noqa: S110 - best effort, and the interface promises no raise
                pass
        grace = self.launch.kill_grace
        if self.revoked is not None:
            grace = min(grace, REVOKE_GRACE)
        end_descendants(grace, self.sigfd)

    def exit_status(self) -> int:
        """What a shell would show: the exit code, or 128+N for a death by signal N."""
        status = self.status or 0
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.waitstatus_to_exitcode(status) & 0xFF

    def _wipe(self) -> None:
        launch = self.launch
        for secret in (*launch.wipe, *launch.mask_values,
                       *(v for v in launch.env.values() if isinstance(v, Secret))):
            secret.wipe()
        for stream in self.streams:
            stream.wipe()
        self.stdin_buf[:] = bytes(len(self.stdin_buf))
        self.to_master[:] = bytes(len(self.to_master))

    def _close_all(self) -> None:
        for stream in self.streams:
            stream.close()
        if self.master is not None:
            self.master = None

    def _finish(self) -> int:
        self._close_all()
        self.sigfd.close()
        if self.revoked is not None:
            raise LeaseRevoked(f"access revoked by the listener: {self.revoked}")
        if self.timed_out:
            return EXIT_TIMEOUT
        status = self.status or 0
        if os.WIFSIGNALED(status):
            die_by(os.WTERMSIG(status))
        return os.waitstatus_to_exitcode(status) & 0xFF

    def _say(self, message: str) -> None:
        _say(message, raw=self.raw is not None and self.raw.active)


# ---- ending descendants ----

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


def end_descendants(grace: float, sigfd: SignalFd | None = None) -> None:
    """TERM every descendant, KILL those left after `grace`, until none is left and all are reaped.

    As a subreaper, runwrap is the ancestor of everything the child started, so an empty wait
    list means nothing is left and /proc need not be read.
    """
    termed: set[int] = set()
    kill_at: float | None = None
    killed_at: float | None = None
    while _has_children():
        alive = descendants(os.getpid())
        now = time.monotonic()
        for pid in alive.keys() - termed:
            _kill(pid, signal.SIGTERM)
            _kill(pid, signal.SIGCONT)
            termed.add(pid)
        if kill_at is None:
            kill_at = now + grace
        if now >= kill_at:
            for pid in alive:
                _kill(pid, signal.SIGKILL)
            killed_at = killed_at or now
            kill_at = now + 0.5
            if alive and now - killed_at > STUCK_AFTER_KILL:
                _say(f"{len(alive)} process(es) survived SIGKILL; leaving them: "
                     + " ".join(map(str, sorted(alive))))
                return
        wait = min(0.05, max(0.0, kill_at - now))
        if sigfd is None:
            time.sleep(wait)
            continue
        if select.select([sigfd.fd], [], [], wait)[0]:
            for _ in sigfd.read():
                pass  # the child is gone: signals now only hurry nothing; SIGCHLD just wakes us


# ---- small helpers ----

def _kill(pid: int, signo: int) -> None:
    try:
        os.kill(pid, signo)
    except (ProcessLookupError, PermissionError):
        pass


def _killpg(pgid: int, signo: int) -> None:
    try:
        os.killpg(pgid, signo)
    except (ProcessLookupError, PermissionError):
        pass


def _state(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
    except OSError:
        return None
    return line[line.rindex(b")") + 2:].split()[0]


def _ignores(pid: int, signo: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (signo - 1) & 1)
    except OSError:
        pass
    return False


def _say(message: str, raw: bool = False) -> None:
    line = f"runwrap: {message}" + ("\r\n" if raw else "\n")
    try:
        os.write(2, line.encode("utf-8", "replace"))
    except OSError:
        pass


def die_by(signo: int) -> NoReturn:
    """End this process by signal `signo`, as the child did, so the caller's shell sees 128+N."""
    sys.stdout.flush()
    sys.stderr.flush()
    if signo != signal.SIGKILL:
        try:
            signal.signal(signo, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, (signo,))
        except (OSError, ValueError):
            pass
    os.kill(os.getpid(), signo)
    # Only a signal whose default action does not terminate gets here.
    os._exit(128 + signo)


def format_duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"
