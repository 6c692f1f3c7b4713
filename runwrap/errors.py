"""One exception tree for everything a user can be told.

Every error carries the one-line message a user should read and the exit status it maps to.
The exec forms (`runwrap PROFILE -- cmd`, `run`) exit with `exit_status`; `connect` exits with
`connect_status`, which follows Bitwarden's aac (0 ok, 1 error, 2 connection failed,
3 authentication/handshake/timeout, 4 not found or denied, 5 fingerprint mismatch).
One place (`runwrap.errors.report`) turns them into stderr text; tracebacks only with --debug.
"""

from __future__ import annotations

# Exit statuses of the exec forms, as timeout(1), env(1) and friends use them.
EXIT_TIMEOUT = 124
EXIT_RUNWRAP = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


class RunwrapError(Exception):
    """Something went wrong in runwrap itself; the message says what and what to do."""

    exit_status = EXIT_RUNWRAP
    connect_status = 1
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(RunwrapError):
    """The command line is wrong: see `runwrap --help`."""

    code = "usage"


class ProfileError(RunwrapError):
    """A profile is missing or invalid; the message names the file, the line and the fix."""

    code = "profile"


class ConfigError(RunwrapError):
    """runwrap's own files (keys, connections, peers) are missing, unreadable or unsafe."""

    code = "config"


class ConnectionFailed(RunwrapError):
    """The listener could not be reached: is `runwrap listen` running, and is the address right?"""

    connect_status = 2
    code = "connection_failed"


class HandshakeFailed(RunwrapError):
    """The listener did not accept our key, or the session broke or timed out: pair again."""

    connect_status = 3
    code = "handshake_failed"


class FingerprintMismatch(RunwrapError):
    """The listener's key is not the one pinned at pairing: something else answers at that address."""

    connect_status = 5
    code = "fingerprint_mismatch"


class PairingFailed(RunwrapError):
    """The pairing code was wrong, used or expired: ask the listener for a fresh `runwrap invite`."""

    connect_status = 3
    code = "pairing_failed"


class NotFound(RunwrapError):
    """The vault has no item for that query."""

    connect_status = 4
    code = "not_found"


class Denied(RunwrapError):
    """The listener refused the request (scope, approval, revocation)."""

    connect_status = 4
    code = "denied"


class RateLimited(RunwrapError):
    """The listener's rate limit for this peer was reached; the message says when to retry."""

    connect_status = 4
    code = "rate_limited"


class ProviderError(RunwrapError):
    """The vault backend failed (locked, logged out, a tool missing); the message says how to fix it."""

    code = "provider"


class LeaseExhausted(ProviderError):
    """The secrets engine will not extend a dynamic secret's lease any further (its max TTL was reached,
    or it is not renewable): the credential dies in `remaining` seconds (None: when its read said)."""

    def __init__(self, message: str, remaining: float | None = None) -> None:
        super().__init__(message)
        self.remaining = remaining


class ProtocolError(RunwrapError):
    """The other side sent something that is not runwrap's protocol; the session was torn down."""

    connect_status = 3
    code = "protocol"


class LeaseRevoked(RunwrapError):
    """The listener ended this lease (revocation or maximum lease length); the child was stopped."""

    code = "revoked"


class CommandNotFound(RunwrapError):
    """The command to run does not exist on the child's PATH."""

    exit_status = EXIT_NOT_FOUND
    code = "command_not_found"


class CannotExecute(RunwrapError):
    """The command exists but cannot be executed (permissions, format, a shebang loop)."""

    exit_status = EXIT_CANNOT_EXECUTE
    code = "cannot_execute"


# Wire error codes (what the listener sends) back to exception types on the consumer side.
BY_CODE: dict[str, type[RunwrapError]] = {
    cls.code: cls
    for cls in (NotFound, Denied, RateLimited, ProviderError, ProtocolError, LeaseRevoked, RunwrapError)
}


def from_code(code: str, message: str) -> RunwrapError:
    return BY_CODE.get(code, RunwrapError)(message)
