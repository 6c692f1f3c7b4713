"""The listener's audit log: JSON lines, one event a line, never a secret value.

Each event is handed to the kernel with one `write(2)` on an O_APPEND file before the answer it
describes leaves the listener, so a crash of the listener (even `kill -9`) cannot lose an event for
an answer that was sent; the file is fsynced at least once a second against a crash of the machine.
If a write fails, or the file was removed from under the listener, the listener fails closed: it
refuses requests until the log can be written again. A torn last line left by a crash is closed off
with a newline on the next start; readers skip lines that are not JSON.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runwrap.credential import FIELDS
from runwrap.errors import RunwrapError
from runwrap.paths import private_dir

COLUMNS = ("ts", "event", "peer", "query", "fields", "decision", "claim", "reason")


class AuditError(RunwrapError):
    """The audit log cannot be written; the listener refuses requests until it can."""


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._dirty = False
        self._fd = -1
        self._open(create_folder=True)

    def _open(self, *, create_folder: bool = False) -> None:
        try:
            # Only at start: a folder removed while the listener runs stays a failure until recreated.
            if create_folder and self.path.parent != Path("/dev"):
                private_dir(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise AuditError(f"cannot open the audit log {self.path}: {exc.strerror or exc}") from None
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._regular = stat.S_ISREG(os.fstat(fd).st_mode)
        self._close_torn_line()

    def _close_torn_line(self) -> None:
        """After a crash the last line may be cut short; end it so the next event starts clean."""
        if not self._regular:
            return
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as handle:
            handle.seek(size - 1)
            last = handle.read(1)
        if last != b"\n":
            self._write_all(b"\n")

    def _write_all(self, line: bytes) -> None:
        try:
            written = os.write(self._fd, line)
            if written != len(line):  # a short write on a regular file means the disk is full
                raise OSError(28, "short write (disk full?)")
        except OSError as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from None

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event with one write(2); AuditError if it did not reach the file."""
        record: dict[str, Any] = {"ts": now_rfc3339(), "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        # A file unlinked from under us (its folder removed, say) would swallow events no reader sees.
        if self._regular and os.fstat(self._fd).st_nlink == 0:
            raise AuditError(f"the audit log {self.path} was removed while the listener ran")
        self._write_all(line)
        self._dirty = True
        return record

    def check(self) -> None:
        """Reopen the path if the file was rotated or removed and the path can be created again."""
        if not self._regular:
            return
        try:
            now = os.stat(self.path)
            mine = os.fstat(self._fd)
            if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                return
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise AuditError(f"cannot check the audit log {self.path}: {exc.strerror}") from None
        self.sync()
        self._open()

    def sync(self) -> None:
        """fsync if anything was written since the last sync (the listener calls it every second)."""
        if not self._dirty:
            return
        self._dirty = False
        try:
            os.fsync(self._fd)
        except OSError as exc:
            if self._regular:  # a character device such as /dev/null or /dev/full cannot sync
                self._dirty = True
                raise AuditError(f"cannot sync the audit log {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        try:
            self.sync()
        finally:
            os.close(self._fd)
            self._fd = -1


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every well-formed event, oldest first; a torn or foreign line is skipped."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        for raw in handle:
            event = parse_line(raw)
            if event is not None:
                yield event


def parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def format_row(event: dict[str, Any]) -> list[str]:
    """One table row per event, in COLUMNS order. `claim` is what the consumer said it would run."""
    query = event.get("query") or {}
    what = ", ".join(f"{k}={v}" for k, v in query.items()) if isinstance(query, dict) else str(query)
    names = [str(f) for f in event.get("fields") or []]
    fields = "all" if sorted(names) == sorted(FIELDS) else ",".join(names)
    claim = ""
    prov = event.get("provenance")
    if isinstance(prov, dict) and prov.get("argv0"):
        claim = str(prov["argv0"]) + (f" ({prov['profile']})" if prov.get("profile") else "")
    reason = str(event.get("reason") or "")
    if event.get("event") == "lease_end":
        reason = f"exit {event.get('exit', '?')} after {event.get('duration_ms', '?')}ms" + (
            f"; {reason}" if reason else "")
    row = [str(event.get("ts", "")), str(event.get("event", "")), str(event.get("peer") or ""), what,
           fields, str(event.get("decision") or ""), claim, reason]
    # The claim and reasons hold text a consumer chose: never let it drive the reader's terminal.
    return ["".join(c if c.isprintable() else "?" for c in cell) for cell in row]
