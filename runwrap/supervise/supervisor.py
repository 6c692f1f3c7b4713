"""Run the child with its secrets and supervise it the way dumb-init and tini do.

The child runs as if started directly: its exit status is runwrap's (a death by signal N makes
runwrap die by N), every signal sent to runwrap reaches it once, a terminal keeps working, and no
process it started outlives it. How:

- The command is resolved before forking (`command`) and started with fork + execve; the forked
  child (`child`) is the only place `Secret` values become `NAME=value` bytes, and an exec
  failure comes back to `run` with its errno.
- runwrap is a child subreaper (tini), blocks the signals it forwards plus SIGCHLD and reads them from
  a signalfd (`signals`) in one poll loop, with the child's output, stdin (pty mode), the lease and
  the nearest deadline. Every SIGCHLD reaps with waitpid(-1, WNOHANG), orphans included.
- Output goes through a `Masker` per stream (`streams`), or straight to runwrap's own stdio when
  masking is off. With a terminal (runwrap has a controlling one, or one on its stdio) the child
  gets a pty of runwrap's instead (see `ptyio`): as its controlling terminal, so /dev/tty is
  masked too, and on each stdio fd that is a terminal here; every other stdout/stderr is a pipe,
  one for both when they go to one place (`2>&1`).
- runwrap's death kills the child (PR_SET_PDEATHSIG, in `child`).
- When the child ends: wipe, flush, report the lease's end, then end every remaining descendant
  (`reaper`). A change of the credentials may end it and start it again first: with on_change
  other than none the supervisor has `rotation.Following` too.
"""

from __future__ import annotations

import errno
import os
import select
import time

from runwrap import environment
from runwrap.durations import format_duration
from runwrap.errors import EXIT_TIMEOUT, LeaseRevoked
from runwrap.linux import PR_SET_CHILD_SUBREAPER, prctl
from runwrap.secret import Secret, wipe_bytes
from runwrap.supervise import reaper
from runwrap.supervise.child import Plan, exec_child, exec_error
from runwrap.supervise.launch import Launch as Launch  # what run() takes; it lives with the Lease protocol
from runwrap.supervise.launch import Revoked, Update
from runwrap.supervise.signals import FORWARDED, KEYBOARD, SI_KERNEL, STOPS, SignalFd, die_by, kill, killpg
from runwrap.supervise.streams import Stream, open_terminal, same_destination, say

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal

    from runwrap.supervise.mask import Masker
    from runwrap.supervise.ptyio import RawMode
else:
    import _signal as signal  # not signal.py's enums: see runwrap.supervise.signals

REVOKE_GRACE = 1.0
OUTPUT_FAILED = 1  # the child's output could not be written (as `cat` or `yes` exit when a write fails)
STOP_CHECK = 0.1  # how long a child gets to handle SIGTSTP before pty mode stops it


def run(launch: Launch) -> int:
    """Run and supervise the child; its exit status (or 124 on timeout), or die by its signal."""
    environment.check(launch.env)  # the boundary where execve happens; the messages name the variable
    if launch.on_change.mode == "none":
        return Supervisor(launch).run()
    return _following()(launch).run()


def _following() -> type[Supervisor]:
    """The supervisor with rotation's half, which only a run that follows changes loads (19 KB of .pyc)."""
    from runwrap.supervise.rotation import Following, Rotation

    # Made here: rotation cannot import this module (no import cycles, the import-linter contract).
    class Rotating(Following, Supervisor):
        def __init__(self, launch: Launch) -> None:
            super().__init__(launch)
            self.rotation = Rotation(launch.on_change)

    return Rotating


class Supervisor:
    """One run's child and everything around it; a change of the credentials is wiped unused
    (on_change none; `rotation.Following` overrides the hooks under "following changes")."""

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self.piped: list[tuple[Stream, tuple[int, ...]]] = []  # the pipe streams, with the child fds each serves
        self.pid = 0
        self.status: int | None = None  # the direct child's wait status, once reaped
        self.streams: list[Stream] = []
        self.master: int | None = None  # pty master in pty mode
        self.slave: int | None = None  # its slave, held open by runwrap too
        self.term: int | None = None  # runwrap's terminal, opened anew in pty mode (output goes there)
        self.keys = 0  # the terminal fd typed keys are read from, in raw mode
        self.size_from = 1  # the terminal whose size the pty copies
        self.raw: RawMode | None = None
        self.stdin_open = False  # reading keys to pass to the pty
        self.stdin_buf = bytearray(4096)
        self.to_master = bytearray()
        self.shared_group = False
        self.stopped_with_child = False
        self.stop_asked = False  # a stop signal arrived: when the child stops, runwrap stops too
        self.child_stopped = False
        self.lease_done = False
        self.stop_check: float | None = None  # pty mode: see _stop_if_orphaned
        self.deadline: float | None = None  # timeout
        self.kill_at: float | None = None  # SIGKILL the child's tree if the child still runs then
        self.kill_by: float | None = None  # the earliest KILL deadline set, kept for what outlives the child
        self.termed: set[int] = set()  # descendants already sent TERM by a timeout or revocation
        self.timed_out = False
        self.revoked: str | None = None
        self.started = 0.0

    # -- setting up --

    def run(self) -> int:
        ignored = tuple(s for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
                        if signal.getsignal(s) == signal.SIG_IGN)
        self.plan = plan = Plan(ignored=ignored, inherit=self.launch.files.child_fds())
        child_ends = self._plan_io(plan)
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, (*FORWARDED, signal.SIGCHLD))
        self.sigfd = SignalFd((*FORWARDED, signal.SIGCHLD))
        try:
            self._start(plan, child_ends)
        except BaseException:
            self._close_all()
            self.sigfd.close()
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            self._wipe()
            self.launch.files.remove()
            raise
        # From here the forwarded signals stay blocked: runwrap exits with the child's status, and
        # a signal that arrives after the child is gone must not turn into runwrap's own death.
        try:
            self._supervise()
        except BaseException:
            if self.status is None:  # runwrap itself failed: the child must not outlive it
                kill(self.pid, signal.SIGKILL)
                reaper.end_descendants(0.0)
            raise
        finally:
            if self.raw is not None:
                self.raw.restore()
            self._wipe()
            self.launch.files.remove()  # after _child_ended's reaping: a descendant reads its file until then
        return self._finish()

    def _plan_io(self, plan: Plan) -> list[int]:
        """Open the pipes or pty for the chosen mode; returns the fds the parent closes after fork."""
        launch = self.launch
        if not launch.mask or not launch.secrets:
            stdin_tty = os.isatty(0)
            self.shared_group = stdin_tty
            plan.own_group = not stdin_tty
            return []
        from runwrap.supervise.mask import Masker  # only the masking modes need it

        for fd in (0, 1, 2):  # a closed stdio fd would be reused by the pipes below
            try:
                os.fstat(fd)
            except OSError:
                os.open(os.devnull, os.O_RDWR)

        spare = [Masker(launch.secrets, hex=launch.mask_hex)]
        if spare[0].short_values:
            say(f"{spare[0].short_values} injected value(s) shorter than 4 characters are not masked")

        def masker() -> Masker:  # one per stream
            return spare.pop() if spare else Masker(launch.secrets, hex=launch.mask_hex)

        tty = [os.isatty(fd) for fd in (0, 1, 2)]
        term = open_terminal()
        if term is None:
            plan.own_group = True
            piped = [1, 2]
        else:
            from runwrap.supervise import ptyio  # the terminal path only: pty pairs, raw mode, window sizes

            # The child's terminal is a pty of runwrap's (see ptyio), so it holds no fd of the real
            # one: its controlling terminal, and each of its stdio fds that is a terminal here.
            self.term, controlling = term
            piped = [fd for fd in (1, 2) if not tty[fd]]
            # Keys come from stdin if it is a terminal, else from the controlling terminal (a prompt
            # on /dev/tty must get what is typed), never from a terminal that is neither.
            keys = 0 if tty[0] else self.term if controlling else None
            like = self.term if keys is None else keys
            master, self.slave = ptyio.open_pty(like=like, size_from=like)
            # runwrap holds the slave open: with none of the child's fds on it (a controlling terminal
            # only), the master would otherwise read EIO and hang the child's terminal up.
            self.master, plan.pty_slave, self.size_from = master, self.slave, like
            for fd in (0, 1, 2):
                if tty[fd]:
                    plan.stdio[fd] = self.slave
            if keys is not None:
                self.keys = keys
                self.raw = ptyio.RawMode(keys, keep_output=not tty[1])
            self.streams.append(Stream(master, 1 if tty[1] else self.term, masker()))
            if keys is not None:
                self.streams[0].echo = bytearray()  # what is typed comes back as the pty's echo
        if piped == [1, 2] and same_destination(1, 2):
            # 2>&1: one pipe for both, as the child would have had one file, so what it writes keeps
            # its order (two pipes would be read in whatever order, and one masker's held tail
            # would wait while the other stream's output went ahead).
            return [self._pipe((1, 2), 1, masker())]
        return [self._pipe((fd,), fd, masker()) for fd in piped]

    def _start(self, plan: Plan, child_ends: list[int]) -> None:
        report_r, report_w = os.pipe()
        first = not self.started  # a restart's child: the timeout still counts from the first start
        self.started = self.started or time.monotonic()
        try:
            pid = os.fork()
            if pid == 0:
                exec_child(self.launch.argv, self.launch.env, plan, report_w)
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
            raise exec_error(self.launch.argv[0], int.from_bytes(data[:4].ljust(4, b"\0"), "little"))
        if self.launch.timeout is not None and first:
            self.deadline = self.started + self.launch.timeout
        if self.raw is not None:
            self.raw.enter()
            self.stdin_open = not self.raw.yielded

    # -- the loop --

    def _supervise(self) -> None:
        while True:
            while self.status is None:
                self._poll_once()
            if not self._restarted():
                break
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
            wanted[self.keys] = wanted.get(self.keys, 0) | select.POLLIN
        lease = self.launch.lease
        lease_fd = lease.fileno() if lease is not None else -1
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
        # POLLOUT alone must not count: the keys' terminal may also be the pty output's destination.
        if self.stdin_open and ready.get(self.keys, 0) & (select.POLLIN | select.POLLHUP | select.POLLERR):
            self._read_stdin()
        if lease is not None and lease_fd in ready and self.revoked is None and not self.lease_done:
            event = lease.poll()
            if isinstance(event, Revoked):
                self._revoke(event.reason)
            elif isinstance(event, Update):
                self._changed(event)
            elif ready[lease_fd] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                self.lease_done = True  # a lost listener is not a revocation; stop polling it
        self._deadlines()

    def _poll_timeout(self) -> int:
        soonest = min((t for t in (self.deadline, self.kill_at, self.stop_check, self._restart_at())
                       if t is not None), default=None)
        if soonest is None:
            return -1
        return max(0, int(min((soonest - time.monotonic()) * 1000, 2**31 - 2)) + 1)  # poll's int ms: <= 24.8d

    def _deadlines(self) -> None:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            self.timed_out = True
            self._cancel_restart()
            self._say(f"timed out after {format_duration(self.launch.timeout or 0)}")
            self._terminate(self.launch.kill_grace)
        if self.stop_check is not None and now >= self.stop_check:
            self.stop_check = None
            self._stop_if_orphaned()
        self._begin_restart(now)
        if self.kill_at is not None and now >= self.kill_at and self.status is None:
            self.kill_at = None
            reaper.signal_descendants(signal.SIGKILL)

    def _terminate(self, grace: float) -> None:
        """TERM the child's whole tree now and KILL it after `grace` (stopped ones are continued to see TERM)."""
        self.termed |= reaper.signal_descendants(signal.SIGTERM)
        kill_at = time.monotonic() + grace
        self.kill_at = kill_at if self.kill_at is None else min(self.kill_at, kill_at)
        self.kill_by = self.kill_at

    def _revoke(self, reason: str) -> None:
        self.revoked = reason
        self._cancel_restart()
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
                self._signalled(signo)
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
            from runwrap.supervise import ptyio  # loaded by _plan_io, as there is a pty

            if signo == signal.SIGWINCH:
                # The kernel signals the pty's foreground group when the size changes.
                if not ptyio.set_winsize(self.master, ptyio.get_winsize(self.size_from)) and not from_terminal:
                    kill(self.pid, signo)
                return
            if signo == signal.SIGCONT:
                self._resume()
                return
            if from_terminal and signo in KEYBOARD:
                group = ptyio.foreground_group(self.master)
                if group is not None and group > 0:
                    killpg(group, signo)
            else:
                kill(self.pid, signo)
            if signo in STOPS:
                self.stop_check = time.monotonic() + STOP_CHECK
            return
        if signo == signal.SIGCONT and self.stopped_with_child:
            # `fg`/`bg` continued runwrap's whole job; the child was in it.
            self.stopped_with_child = False
            if self.shared_group:
                return
            killpg(self.pid, signo)
            return
        if self.shared_group and from_terminal:
            return  # the terminal signalled runwrap's group, the child included
        kill(self.pid, signo)

    def _stop_if_orphaned(self) -> None:
        if self.status is None and self.master is not None:
            from runwrap.supervise import ptyio  # loaded by _plan_io, as there is a pty

            ptyio.stop_if_orphaned(self.master, self.pid)

    def _resume(self) -> None:
        """SIGCONT in pty mode: back to raw mode, resend the window size, continue the child's group."""
        if self.raw is not None:
            self.raw.enter()
            self.stdin_open = not self.raw.yielded
        if self.master is not None:
            from runwrap.supervise import ptyio  # loaded by _plan_io, as there is a pty

            ptyio.set_winsize(self.master, ptyio.get_winsize(self.size_from))
        self.stopped_with_child = False
        killpg(self.pid, signal.SIGCONT)

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
            n = os.readv(self.keys, [self.stdin_buf])
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
        assert self.master is not None  # only called in pty mode
        try:
            sent = os.write(self.master, self.to_master)
        except BlockingIOError:
            return
        except OSError:
            sent = len(self.to_master)
        else:
            with memoryview(self.to_master) as typed:
                self.streams[0].expect_echo(typed[:sent])
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
        reaper.end_descendants(grace, self.sigfd, termed=self.termed, kill_by=self.kill_by)

    def exit_status(self) -> int:
        """What a shell would show: the exit code, or 128+N for a death by signal N."""
        status = self.status or 0
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.waitstatus_to_exitcode(status) & 0xFF

    def _wipe(self) -> None:
        launch = self.launch
        for secret in (*launch.secrets, *(v for v in launch.env.values() if isinstance(v, Secret))):
            secret.wipe()
        self._wipe_changes()
        for stream in self.streams:
            stream.wipe()
        wipe_bytes(self.stdin_buf)
        wipe_bytes(self.to_master)

    def _close_all(self) -> None:
        for stream in self.streams:
            stream.close()
        self.master = None  # the stream owned it
        for fd in (self.slave, self.term):
            if fd is not None:
                os.close(fd)
        self.slave = self.term = None

    def _finish(self) -> int:
        self._close_all()
        self.sigfd.close()
        if self.revoked is not None:
            raise LeaseRevoked(f"access revoked by the listener: {self.revoked}")
        self._end_by_change()
        if self.timed_out:
            return EXIT_TIMEOUT
        status = self.status or 0
        if self._output_failed(status):
            return OUTPUT_FAILED
        if os.WIFSIGNALED(status):
            die_by(os.WTERMSIG(status))
        return os.waitstatus_to_exitcode(status) & 0xFF

    def _output_failed(self, status: int) -> bool:
        """Whether a write of the child's output failed (EPIPE aside) and the child did not fail by
        itself: its exit 0, or the SIGPIPE that runwrap's closing its pipe caused, would hide that."""
        if all(stream.error in (None, errno.EPIPE) for stream in self.streams):
            return False
        return status == 0 or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGPIPE)

    def _say(self, message: str) -> None:
        say(message, raw=self.raw is not None and self.raw.active)

    def _pipe(self, fds: tuple[int, ...], dest: int, masker: Masker) -> int:
        """A pipe for the child's `fds`, read into a stream to `dest`; the child's end, to close after fork."""
        read, write = os.pipe()
        for fd in fds:
            self.plan.stdio[fd] = write
        stream = Stream(read, dest, masker)
        self.streams.append(stream)
        self.piped.append((stream, fds))
        return write

    # -- following changes: on_change none (rotation.Following does the rest) --

    def _changed(self, update: Update) -> None:
        """An Update from the lease, while the child runs: the child keeps the values it started with."""
        update.wipe()

    def _restart_at(self) -> float | None:
        """When a waiting restart begins."""
        return None

    def _begin_restart(self, now: float) -> None:
        """Stop the child's tree if a waiting restart is due."""

    def _restarted(self) -> bool:
        """The child ended: whether the command started again, with new values."""
        return False

    def _cancel_restart(self) -> None:
        """The run ends (a timeout, a revocation): no restart after all."""

    def _signalled(self, signo: int) -> None:
        """A signal for the child arrived (before it is forwarded)."""

    def _wipe_changes(self) -> None:
        """Wipe the values changes brought that are still held."""

    def _end_by_change(self) -> None:
        """At the end of the run: raise the error of a change that ended it (exit 125)."""
