"""What the supervisor is given: `Launch` (what to run and how), the `Lease` it polls, and what a
poll may bring: `Revoked`, or an `Update` (a change of the credentials, with the child's next values).

The exec path (runwrap.run) builds a Launch from plain values, so the supervisor needs nothing of
the wire, the listener or profiles: a lease is anything with these four methods (the consumer's
held Noise session as run.py adapts it, or the tests' FIFO).
"""

from __future__ import annotations

from runwrap.record import Record
from runwrap.secret import Secret
from runwrap.supervise.fileset import FileSet

TYPE_CHECKING = False


class Revoked(Record):
    """The listener ended the lease; the child is stopped and runwrap exits 125."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Update(Record):
    """A change pushed by the listener, made into what the child is to have from now on: the complete
    environment and values to mask (fresh copies, the unchanged ones too, so the previous ones can all
    be wiped), the new contents of the files that changed (by variable), and which variables of the
    environment now differ. `error`: the change cannot be applied (the item lost a field), and no values."""

    __slots__ = ("env", "env_changed", "error", "files", "secrets", "seq")

    def __init__(self, seq: int, env: dict[str, str | Secret] | None = None, secrets: tuple[Secret, ...] = (),
                 files: dict[str, Secret] | None = None, env_changed: tuple[str, ...] = (),
                 error: str | None = None) -> None:
        self.seq = seq
        self.env = {} if env is None else env
        self.secrets = secrets
        self.files = {} if files is None else files
        self.env_changed = env_changed
        self.error = error

    def wipe(self) -> None:
        for value in (*self.secrets, *self.files.values(), *self.env.values()):
            if isinstance(value, Secret):
                value.wipe()


if TYPE_CHECKING:  # a protocol for mypy only: nothing checks a lease at run time, and typing is not loaded
    from typing import Protocol

    class Lease(Protocol):
        def fileno(self) -> int: ...

        def poll(self) -> Revoked | Update | None: ...

        def rotated(self, seq: int) -> None: ...

        def end(self, exit_status: int, duration_ms: int) -> None: ...


class OnChange(Record):
    """What to do with an Update (docs/rotation.md): `mode` none, restart, signal (send `signo`) or exit;
    for restart, at most `limit` restarts in any `window` seconds, the n-th within it waiting
    `first` * 2**(n-1) seconds after the one before (at most `cap`)."""

    __slots__ = ("cap", "first", "limit", "mode", "signo", "window")

    def __init__(self, mode: str = "none", signo: int | None = None, *, limit: int = 5, window: float = 60.0,
                 first: float = 1.0, cap: float = 15.0) -> None:
        if mode not in ("none", "restart", "signal", "exit") or (mode == "signal") != (signo is not None):
            raise ValueError(f"on_change {mode!r} {signo!r}")
        self.mode = mode
        self.signo = signo
        self.limit = limit
        self.window = window
        self.first = first
        self.cap = cap


class Launch(Record):
    """What to run and how: the one argument of `run`."""

    __slots__ = ("argv", "env", "files", "kill_grace", "lease", "mask", "mask_hex", "on_change", "secrets",
                 "timeout")

    def __init__(self, argv: list[str], env: dict[str, str | Secret], secrets: tuple[Secret, ...] = (),
                 mask: bool = True, timeout: float | None = None, kill_grace: float = 5.0,
                 lease: Lease | None = None, files: FileSet | None = None, mask_hex: bool = False,
                 on_change: OnChange | None = None) -> None:
        self.argv = argv  # argv[0] already resolved by command.resolve_command
        self.env = env  # the child's exact environment (after a change: the next child's)
        self.secrets = secrets  # the values to mask, once; they and every Secret in env are zeroed at the end
        self.mask = mask
        self.mask_hex = mask_hex  # also each value's hex (mask.variants): off, it costs a search per value
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.lease = lease
        self.files = FileSet() if files is None else files  # inherited by the child, removed after its tree
        self.on_change = OnChange() if on_change is None else on_change
