"""The child's side of the fork: set up stdio, process group and signals, then execve.

The child dies with runwrap: PR_SET_PDEATHSIG sends it SIGKILL when the supervisor ends, even by
SIGKILL (SIGKILL, not TERM: a child that ignores or traps TERM would otherwise keep its secrets with
nobody left to follow up, and runwrap itself only ends before the child when something went wrong).

Only the forked child turns `Secret` values into `NAME=value` bytes, so runwrap itself never holds
the environment as a copy it cannot wipe. An exec failure travels back to the parent through a
close-on-exec pipe with its errno, as in ptyprocess, and becomes the shell's 127/126 error there.
"""

from __future__ import annotations

import errno
import os

from runwrap.environment import to_exec_env
from runwrap.errors import CannotExecute, CommandNotFound, RunwrapError
from runwrap.linux import PR_SET_PDEATHSIG, RLIMIT_CORE, prctl, setrlimit
from runwrap.secret import Secret
from runwrap.supervise import hardening

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from typing import NoReturn
else:
    import _signal as signal  # not signal.py's enums: see runwrap.supervise.signals


class Plan:
    """How the child's stdio and process group are set up."""

    def __init__(self, ignored: tuple[int, ...] = (), inherit: tuple[int, ...] = ()) -> None:
        self.stdio: dict[int, int] = {}  # child fd -> fd to dup2 onto it
        self.own_group = False
        self.pty_slave: int | None = None
        self.ignored = ignored
        self.inherit = inherit  # close-on-exec fds the command keeps at their numbers (secret files)
        self.parent = os.getpid()  # the supervisor, which forks; the child must not outlive it


def exec_child(argv: list[str], env: dict[str, str | Secret], plan: Plan, report: int) -> NoReturn:
    """In the forked child: set up stdio, group and signals, convert the environment, execve."""
    code = 0
    try:
        # Bound to the thread that forked (runwrap's only one on this path); cleared by the execve
        # of a set-uid program. If runwrap died before this line, nobody would send the signal.
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != plan.parent:
            os.kill(os.getpid(), signal.SIGKILL)
        if plan.pty_slave is not None:
            os.setsid()
            from runwrap.supervise import ptyio  # pty mode: the supervisor loaded it before forking

            ptyio.make_controlling(plan.pty_slave)
        elif plan.own_group:
            os.setpgid(0, 0)
        for target, source in plan.stdio.items():
            os.dup2(source, target)
        for fd in plan.inherit:
            os.set_inheritable(fd, True)
        for signo in range(1, signal.NSIG):
            if signo in (signal.SIGKILL, signal.SIGSTOP):
                continue
            try:
                signal.signal(signo, signal.SIG_IGN if signo in plan.ignored else signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        if hardening.original_core_limit is not None:
            setrlimit(RLIMIT_CORE, hardening.original_core_limit)
        exec_env = to_exec_env(env)
        try:
            os.execve(argv[0], argv, exec_env)  # noqa: S606 - argv list, no shell
        except OSError as exc:
            if exc.errno != errno.ENOEXEC:
                raise
            # As execvp: a file with no #! line and no binary format is a shell script.
            os.execve("/bin/sh", ["sh", argv[0], *argv[1:]], exec_env)  # noqa: S606
    except OSError as exc:
        code = exc.errno or errno.EINVAL
    except BaseException:
        code = errno.EINVAL
    try:
        os.write(report, code.to_bytes(4, "little"))
    finally:
        os._exit(127)


def exec_error(argv0: str, code: int) -> RunwrapError:
    """The error to raise in the parent for the errno the child reported."""
    if code == errno.E2BIG:
        return RunwrapError(f"{argv0}: the arguments and environment are too large to execute")
    if code == errno.ENOENT and "/" not in argv0:
        return CommandNotFound(f"{argv0}: command not found")
    return CannotExecute(f"{argv0}: {os.strerror(code)}")
