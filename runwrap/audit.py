"""The listener's audit log: JSON lines, one event a line, never a secret value.

Each event is handed to the kernel with one `write(2)` on an O_APPEND file before the answer it
describes leaves the listener, and the file is fsynced at least once a second. If a write fails the
listener fails closed (it refuses requests until the log can be written). A torn last line left by a
crash is closed off with a newline on the next start; readers skip lines that are not JSON.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runwrap.errors import RunwrapError
from runwrap.paths import private_dir

EVENTS = ("pair", "pair_failed", "handshake_failed", "request", "lease_end", "revoke")
DECISIONS = ("allowed", "denied", "not_found", "rate_limited", "revoked", "error")
COLUMNS = ("ts", "event", "peer", "query", "fields", "decision", "reason")


class AuditError(RunwrapError):
    """The audit log cannot be written; the listener refuses requests until it can."""


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._dirty = False
        self._last_sync = time.monotonic()
        try:
            if path.parent != Path("/dev"):
                private_dir(path.parent)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._close_torn_line()
        except OSError as exc:
            raise AuditError(f"cannot open the audit log {path}: {exc.strerror}") from None

    def _close_torn_line(self) -> None:
        """After a crash the last line may be cut short; end it so the next event starts clean."""
        try:
            size = os.fstat(self._fd).st_size
        except OSError:
            return
        if size == 0:
            return
        with open(self.path, "rb") as handle:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                os.write(self._fd, b"\n")

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"ts": now_rfc3339(), "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        line = (json.dumps(record, separators=(",", ":"), sort_keys=False) + "\n").encode()
        try:
            written = os.write(self._fd, line)
            if written != len(line):  # a short write on a regular file means the disk is full
                raise OSError(28, "short write (disk full?)")
        except OSError as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from None
        self._dirty = True
        return record

    def sync(self) -> None:
        if self._dirty:
            self._dirty = False
            try:
                os.fsync(self._fd)
            except OSError as exc:
                if exc.errno != 22:  # EINVAL: a character device such as /dev/full cannot sync
                    raise AuditError(f"cannot sync the audit log {self.path}: {exc.strerror}") from None
        self._last_sync = time.monotonic()

    def close(self) -> None:
        try:
            self.sync()
        finally:
            os.close(self._fd)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every well-formed event, oldest first; a torn or foreign line is skipped."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        for raw in handle:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict) and "event" in event:
                yield event


def format_row(event: dict[str, Any]) -> list[str]:
    query = event.get("query") or {}
    what = ", ".join(f"{k}={v}" for k, v in query.items()) if isinstance(query, dict) else str(query)
    fields = ",".join(event.get("fields") or [])
    return [str(event.get("ts", "")), str(event.get("event", "")), str(event.get("peer", "")), what,
            fields, str(event.get("decision", "")), str(event.get("reason", ""))]
