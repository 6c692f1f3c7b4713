"""What the supervisor is given: `Launch` (what to run and how) and the `Lease` it polls.

The exec path (runwrap.run) builds a Launch from plain values, so the supervisor needs nothing of
the wire, the listener or profiles: a lease is anything with these three methods (the consumer's
held Noise session, or the tests' FIFO).
"""

from __future__ import annotations

from typing import Protocol

from runwrap.record import Record
from runwrap.secret import Secret
from runwrap.supervise.memfile import FileSet


class Lease(Protocol):
    def fileno(self) -> int: ...

    def poll_revoked(self) -> str | None: ...

    def end(self, exit_status: int, duration_ms: int) -> None: ...


class Launch(Record):
    """What to run and how: the one argument of `run`."""

    __slots__ = ("argv", "env", "files", "kill_grace", "lease", "mask", "mask_hex", "secrets", "timeout")

    def __init__(self, argv: list[str], env: dict[str, str | Secret], secrets: tuple[Secret, ...] = (),
                 mask: bool = True, timeout: float | None = None, kill_grace: float = 5.0,
                 lease: Lease | None = None, files: FileSet | None = None, mask_hex: bool = False) -> None:
        self.argv = argv  # argv[0] already resolved by command.resolve_command
        self.env = env  # the child's exact environment
        self.secrets = secrets  # the values to mask, once; they and every Secret in env are zeroed at the end
        self.mask = mask
        self.mask_hex = mask_hex  # also each value's hex (mask.variants): off, it costs a search per value
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.lease = lease
        self.files = FileSet() if files is None else files  # inherited by the child, removed after its tree
