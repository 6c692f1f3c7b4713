"""One exception tree for everything a user can be told, and the one reporter that tells it.

Every error is a `RunwrapError` subclass whose message says what happened and what to do; its class
docstring says the same in general, as magic-wormhole's errors do. `STATUSES` maps each class to
its exit status per command family:

- the exec forms (`runwrap PROFILE -- cmd`, `exec`, `run`), which otherwise exit with the child's
  status, use the statuses of env(1) and timeout(1): 124 timed out, 125 runwrap's own error,
  126 the command cannot be executed, 127 the command was not found;
- `connect` follows Bitwarden's aac: 0 ok, 1 error, 2 connection failed, 3 handshake,
  authentication or timeout, 4 not found or denied, 5 fingerprint mismatch;
- every other command: 0 ok, 1 error, 2 usage; `doctor` also 3 when a listener it checks does not
  answer (DOCTOR_NO_LISTENER).

`report(exc, family)` is the only place that turns an exception into stderr text and an exit
status: one line `runwrap: MESSAGE`, the traceback before it only with --debug, and for an
exception that is not a `RunwrapError` (a bug) only its type name, since its message could hold
anything. The exec path imports this module, so it imports nothing at the top but `sys`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's
if TYPE_CHECKING:
    from typing import TextIO

# Exit statuses of the exec forms, as timeout(1), env(1) and friends use them.
EXIT_TIMEOUT = 124
EXIT_RUNWRAP = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
# `runwrap doctor`, beside 0 (all well): a file with a wrong mode; a listener it checks does not answer.
DOCTOR_PROBLEM = 1
DOCTOR_NO_LISTENER = 3

# The command families, each with its own exit statuses (STATUSES' columns, in this order).
EXEC = "exec"
CONNECT = "connect"
OTHER = "other"
_COLUMN = {EXEC: 0, CONNECT: 1, OTHER: 2}


class RunwrapError(Exception):
    """runwrap could not do what was asked. The message says what went wrong and what to do."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def exit_status(self) -> int:
        """What the exec forms (`runwrap PROFILE -- cmd`, `run`) exit with for this error."""
        return status(self, EXEC)

    @property
    def connect_status(self) -> int:
        """What `runwrap connect` exits with for this error (aac's statuses)."""
        return status(self, CONNECT)


class UsageError(RunwrapError):
    """The command line (or a library call) asks for something runwrap does not take. Fix the
    argument the message names; `runwrap help COMMAND` lists them all."""

    code = "usage"


class ProfileError(RunwrapError):
    """A profile is missing or invalid. Fix it at the file and line the message names; `runwrap
    profiles check NAME` checks it again without asking the listener for anything."""

    code = "profile"


class ConfigError(RunwrapError):
    """runwrap's own files (keys, connections, peers) are missing, unreadable or unsafe, or this
    consumer is not paired. Fix or remove the file the message names, or pair again."""

    code = "config"


class ConnectionFailed(RunwrapError):
    """The listener could not be reached. Start `runwrap listen` where the vault is, or check the
    connection's address with `runwrap connections list`."""

    code = "connection_failed"


class HandshakeFailed(RunwrapError):
    """The listener did not accept this consumer (its key is unknown or revoked), or the session
    broke or timed out. Ask the listener's owner for a fresh `runwrap invite`, then pair again."""

    code = "handshake_failed"


class FingerprintMismatch(RunwrapError):
    """The listener's key is not the one pinned at pairing: something else answers at that address.
    Send it nothing; if the listener was really reinstalled, remove the connection and pair again."""

    code = "fingerprint_mismatch"


class PairingFailed(RunwrapError):
    """The pairing code was wrong, already used or expired, or the other side is not the listener
    that made it. Ask the listener for a fresh `runwrap invite` and use it before it expires."""

    code = "pairing_failed"


class NotFound(RunwrapError):
    """The vault has no item for that query. Check the domain or id, or look the item up in the
    vault itself."""

    code = "not_found"


class Denied(RunwrapError):
    """The listener refused the request: it is outside this peer's scope, was not approved, or the
    peer is revoked. Ask the listener's owner to widen the scope (`runwrap peers scope`)."""

    code = "denied"


class RateLimited(RunwrapError):
    """This peer reached the listener's rate limit. Wait as long as the message says, or ask the
    listener's owner for a wider `--rate`."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds, when the listener said


class ProviderError(RunwrapError):
    """The vault backend failed (locked, logged out, a tool missing). Fix it where the listener runs,
    as the message says; `runwrap doctor` there shows which providers work."""

    code = "provider"


class LeaseExhausted(ProviderError):
    """The secrets engine will not extend a dynamic secret's lease any further (its max TTL was reached,
    or it is not renewable): the credential dies in `remaining` seconds (None: when its read said).
    Run the command again for a fresh credential, or raise the role's max_ttl on the server."""

    def __init__(self, message: str, remaining: float | None = None) -> None:
        super().__init__(message)
        self.remaining = remaining


class ProtocolError(RunwrapError):
    """The other side sent something that is not runwrap's protocol, so the session was torn down.
    Check that the address is a runwrap listener, and that both sides run the same version."""

    code = "protocol"


class CredentialsChanged(RunwrapError):
    """The credentials changed while the child ran and runwrap stopped it: the profile says
    on_change: exit, the new values cannot be used, or restarts came faster than on_change: restart
    allows (docs/rotation.md). Run again for the new values, or find out why they change so often."""


class LeaseRevoked(RunwrapError):
    """The listener ended this lease (the peer was revoked, or the maximum lease length passed) and
    the child was stopped. Ask the listener's owner why, or run again for a new lease."""

    code = "revoked"


class CommandNotFound(RunwrapError):
    """The command to run is not on the child's PATH. Check its spelling, give its path, or let the
    profile inherit the PATH that holds it."""

    code = "command_not_found"


class CannotExecute(RunwrapError):
    """The command exists but cannot be executed (permissions, format, a shebang loop). Make it
    executable (`chmod +x`) or fix its `#!` line."""

    code = "cannot_execute"


# Each error's exit status per family: (exec forms, connect, every other command). A class not
# listed here (a provider's own, say) exits as its nearest listed base class.
STATUSES: dict[type, tuple[int, int, int]] = {
    RunwrapError: (EXIT_RUNWRAP, 1, 1),
    # A usage error of `connect` is 1, not 2: 2 would tell a script the listener is down.
    UsageError: (EXIT_RUNWRAP, 1, 2),
    ProfileError: (EXIT_RUNWRAP, 1, 1),
    ConfigError: (EXIT_RUNWRAP, 1, 1),
    ConnectionFailed: (EXIT_RUNWRAP, 2, 1),
    HandshakeFailed: (EXIT_RUNWRAP, 3, 1),
    PairingFailed: (EXIT_RUNWRAP, 3, 1),
    ProtocolError: (EXIT_RUNWRAP, 3, 1),
    NotFound: (EXIT_RUNWRAP, 4, 1),
    Denied: (EXIT_RUNWRAP, 4, 1),
    RateLimited: (EXIT_RUNWRAP, 4, 1),
    FingerprintMismatch: (EXIT_RUNWRAP, 5, 1),
    ProviderError: (EXIT_RUNWRAP, 1, 1),
    LeaseExhausted: (EXIT_RUNWRAP, 1, 1),
    LeaseRevoked: (EXIT_RUNWRAP, 1, 1),
    CredentialsChanged: (EXIT_RUNWRAP, 1, 1),
    CannotExecute: (EXIT_CANNOT_EXECUTE, 1, 1),
    CommandNotFound: (EXIT_NOT_FOUND, 1, 1),
}
# An exception that is not a RunwrapError is a bug in runwrap.
INTERNAL: tuple[int, int, int] = (EXIT_RUNWRAP, 1, 1)


def status(exc: BaseException, family: str) -> int:
    """The exit status for `exc` in a command of `family` (EXEC, CONNECT or OTHER)."""
    column = _COLUMN[family]
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    for cls in type(exc).__mro__:
        row = STATUSES.get(cls)
        if row is not None:
            return row[column]
    return INTERNAL[column]


def describe(exc: BaseException, *, debug: bool = False) -> str:
    """What the user reads about `exc`: a RunwrapError's message; for a bug only its type's name."""
    if isinstance(exc, RunwrapError):
        return exc.message
    if debug:
        return f"internal error ({type(exc).__name__}); the traceback above shows where"
    return f"internal error ({type(exc).__name__}); run again with --debug"


def report(exc: BaseException, family: str, *, debug: bool = False, json_output: bool = False,
           stream: TextIO | None = None) -> int:
    """Tell the user about `exc` and return the exit status for it in a command of `family`.

    One line `runwrap: MESSAGE` on stderr; with `debug` the traceback comes first. With
    `json_output` (`connect --output json`) the line is aac's JSON answer on stdout instead:
    `{"success": false, "error": {"message", "code"}}`. Ctrl-C is reported by its status alone.
    """
    if isinstance(exc, KeyboardInterrupt) and not debug:
        return EXIT_INTERRUPTED
    err = sys.stderr if stream is None else stream
    if debug and err is not None:
        import traceback

        _write(err, "".join(traceback.format_exception(exc)))
    text = describe(exc, debug=debug)
    if json_output:
        import json

        code = exc.code if isinstance(exc, RunwrapError) else "internal"
        _write(sys.stdout, json.dumps({"success": False, "error": {"message": text, "code": code}}) + "\n")
    elif not isinstance(exc, KeyboardInterrupt):
        _write(err, f"runwrap: {text}\n")
    return status(exc, family)


def _write(stream: TextIO | None, text: str) -> None:
    """Best effort: a closed stderr must not turn an error into a traceback or change the status."""
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


# Wire error codes (what the listener sends) back to exception types on the consumer side.
BY_CODE: dict[str, type[RunwrapError]] = {
    cls.code: cls
    for cls in (NotFound, Denied, RateLimited, ProviderError, ProtocolError, LeaseRevoked, RunwrapError)
}


def from_code(code: str, message: str) -> RunwrapError:
    return BY_CODE.get(code, RunwrapError)(message)
