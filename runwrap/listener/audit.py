"""The listener's audit log: JSON lines, one event a line, never a secret value.

Each event is handed to the kernel with one `write(2)` on an O_APPEND file before the answer it
describes leaves the listener, so a crash of the listener (even `kill -9`) cannot lose an event for
an answer that was sent; the file is fsynced at least once a second against a crash of the machine.

The log is a regular file of ours that only we can read or write (0600), or it is refused: a FIFO, a
socket or a device (`/dev/null` included) in its place is never opened in a way that can block, and
a wrong mode or owner is named, not repaired behind the user's back. A write that fails (or a short
one: a full disk) is cut back, so the file always ends in a whole line. While the log cannot be
written it is *broken*: the listener refuses requests (fails closed), and once a second `check()`
tries again; the first write that succeeds again is an `audit_gap` event that says when the log
broke, why, and how many events were lost. The ends of leases (and revocations) that happen
meanwhile are kept and written just before it, so every lease still ends on the record.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runwrap.credential import FIELDS
from runwrap.errors import RunwrapError
from runwrap.paths import folder_for_files

COLUMNS = ("ts", "event", "peer", "query", "fields", "decision", "claim", "reason")
# Events that record what happened whatever the log's state (a lease ended, a peer was revoked): kept
# while the log is broken and written when it works again. Answers are never kept: one that could not
# be recorded was never sent.
KEPT = ("lease_end", "revoke", "dynamic_renew", "dynamic_revoke")
MAX_KEPT = 10_000
# One encoder for every event: json.dumps with separators builds a new one at each call.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


class AuditError(RunwrapError):
    """The audit log cannot be written, so the listener refuses requests until it can. Free space,
    or fix the file or folder the message names; a running listener serves again once it can write."""


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.broken: str | None = None  # why events cannot be written now; None while they can
        self._broken_since = ""
        self._broken_why = ""  # the first reason, for the audit_gap event
        self._lost = 0  # events not written (and not kept) since the log broke
        self._kept: deque[bytes] = deque()
        self._dirty = False
        try:
            # Only at start: a folder removed while the listener runs stays a failure until recreated.
            folder_for_files(path.parent)
        except RunwrapError as exc:
            raise AuditError(f"cannot keep the audit log in {path.parent}: {exc}") from None
        self._fd = self._open()
        self._close_torn_line()

    # ---- opening: a regular file of ours, 0600, or a one-line refusal ----

    def _open(self) -> int:
        """Open (or create, 0600) the path. Nothing but a regular file is ever opened: lstat refuses a
        FIFO or a device before `open` could block on it, and O_NONBLOCK|O_NOFOLLOW plus fstat cover
        a swap in between."""
        for _attempt in range(2):
            try:
                try:
                    self._refuse_unsafe(os.lstat(self.path))
                except FileNotFoundError:
                    fd = os.open(self.path, OPEN_FLAGS | os.O_CREAT | os.O_EXCL, 0o600)
                    os.fchmod(fd, 0o600)  # ours, just made: exactly 0600 whatever the umask took away
                else:
                    fd = os.open(self.path, OPEN_FLAGS)
            except FileExistsError:
                continue  # created between our lstat and open: look at what it is
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link swapped in after lstat
                    raise _not_regular(self.path, "a symbolic link") from None
                raise AuditError(f"cannot open the audit log {self.path}: {exc.strerror or exc}") from None
            try:
                self._refuse_unsafe(os.fstat(fd))
                os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
            return fd
        raise AuditError(f"cannot open the audit log {self.path}: it keeps being replaced")

    def _refuse_unsafe(self, info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            kind = next((kind for test, kind in KINDS if test(info.st_mode)), "something else")
            raise _not_regular(self.path, kind)
        if info.st_uid != os.geteuid():
            raise AuditError(f"the audit log {self.path} belongs to uid {info.st_uid}, not to you "
                             f"(uid {os.geteuid()}); move it away (a new log is created) or chown it")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise AuditError(f"the audit log {self.path} has mode {mode:o}, so others can read or change it; "
                             f"run `chmod 600 {self.path}`")

    def _close_torn_line(self) -> None:
        """After a crash the last line may be cut short; end it so the next event starts clean."""
        try:
            size = os.fstat(self._fd).st_size
            last = os.pread(self._fd, 1, size - 1) if size else b"\n"
        except OSError as exc:
            raise self._broke(f"cannot read the end of the audit log {self.path}: {exc.strerror}") from None
        if last != b"\n":
            self._append(b"\n")

    # ---- writing: whole lines or nothing ----

    def _append(self, line: bytes) -> None:
        """One write(2). If it fails part-way (a full disk gives a short write), the part that was
        written is cut off again, so the file still ends in a whole line."""
        try:
            written = os.write(self._fd, line)
        except OSError as exc:  # nothing was written
            raise self._broke(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from None
        if written == len(line):
            self._dirty = True
            return
        try:
            end = os.lseek(self._fd, 0, os.SEEK_CUR)  # O_APPEND: just past the bytes this write added
            if os.fstat(self._fd).st_size == end:  # nothing appended after them by anyone else
                os.ftruncate(self._fd, end - written)
        except OSError:
            pass  # the torn line stays; _close_torn_line ends it before the next event
        raise self._broke(f"cannot write the audit log {self.path}: only {written} of {len(line)} bytes "
                          "fitted (disk full?)")

    def _broke(self, why: str) -> AuditError:
        if self.broken is None:
            self._broken_since, self._broken_why = now_rfc3339(), why
        self.broken = why
        return AuditError(why)

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event with one write(2); AuditError if it did not reach the file."""
        record: dict[str, Any] = {"ts": now_rfc3339(), "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        line = (_ENCODE(record) + "\n").encode()
        try:
            if self.broken is not None:  # only check() brings the log back, with an audit_gap first
                raise AuditError(self.broken)
            # A file unlinked from under us (its folder removed, say) would swallow events no reader sees.
            try:
                gone = os.fstat(self._fd).st_nlink == 0
            except OSError as exc:  # closed: the listener is stopping
                raise self._broke(f"cannot write the audit log {self.path}: {exc.strerror}") from None
            if gone:
                raise self._broke(f"the audit log {self.path} was removed while the listener ran")
            self._append(line)
        except AuditError:
            if event in KEPT and len(self._kept) < MAX_KEPT:
                self._kept.append(line)
            else:
                self._lost += 1
            raise
        return record

    # ---- the listener's once-a-second check ----

    def check(self) -> bool:
        """Follow a rotated, removed or replaced file; refuse one that became unsafe; while broken,
        try to write again. True when the log has just come back into service."""
        try:
            try:
                now: os.stat_result | None = os.lstat(self.path)
            except FileNotFoundError:
                now = None
            mine = os.fstat(self._fd)
        except OSError as exc:
            raise self._broke(f"cannot check the audit log {self.path}: {exc.strerror}") from None
        try:
            if now is None or (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
                self._reopen()
            else:
                self._refuse_unsafe(mine)  # chmod-ed or chown-ed while we ran
        except AuditError as exc:
            raise self._broke(str(exc)) from None
        if self.broken is None:
            return False
        self._resume()
        return True

    def _reopen(self) -> None:
        fd = self._open()
        old, self._fd = self._fd, fd
        try:
            os.fsync(old)  # what went to the rotated file reaches its disk
            os.close(old)
        except OSError:
            pass
        self._dirty = True

    def _resume(self) -> None:
        """Back in service once writes succeed: the kept events, then the record of the gap."""
        self._close_torn_line()
        while self._kept:
            self._append(self._kept[0])
            self._kept.popleft()
        gap = {"ts": now_rfc3339(), "event": "audit_gap", "since": self._broken_since, "lost": self._lost,
               "reason": f"the audit log could not be written from {self._broken_since} on ({self._broken_why}); "
                         f"{self._lost} event(s) were lost and requests were refused meanwhile"}
        self._append((_ENCODE(gap) + "\n").encode())
        self.broken = None
        self._lost = 0

    def sync(self) -> None:
        """fsync if anything was written since the last sync (the listener calls it every second)."""
        if not self._dirty:
            return
        self._dirty = False
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._dirty = True
            raise self._broke(f"cannot sync the audit log {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        try:
            self.sync()
        finally:
            os.close(self._fd)
            self._fd = -1


def _not_regular(path: Path, kind: str) -> AuditError:
    fix = ("give --audit-log a regular file (a device loses or refuses events)" if kind.endswith("device") else
           "remove it (a new log is created) or give --audit-log a regular file")
    return AuditError(f"the audit log {path} is {kind}, not a regular file; {fix}")


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


def read_log(path: Path, *, missing_ok: bool = False) -> tuple[list[dict[str, Any]], int]:
    """Every well-formed event so far, oldest first, and the offset just past the last whole line
    (where `follow` goes on). RunwrapError if the log cannot be read, or is missing and not `missing_ok`."""
    events: list[dict[str, Any]] = []
    offset = 0
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                event = parse_line(raw)
                if event is not None:
                    events.append(event)
                if raw.endswith(b"\n"):
                    offset += len(raw)
    except FileNotFoundError:
        if not missing_ok:
            raise RunwrapError(f"no audit log at {path} (has a listener run with this home? "
                               "use --file for a listener started with --audit-log)") from None
    except OSError as exc:
        raise RunwrapError(f"cannot read the audit log {path}: {exc.strerror}") from None
    return events, offset


def follow(path: Path, offset: int = 0, *, interval: float = 0.2,
           until: float | None = None) -> Iterator[dict[str, Any]]:
    """The events appended to the log after `offset`, as they come, like `tail -F`: a rotated,
    recreated or truncated log is read again from its start, a missing one waited for. Goes on
    until `until` (a time.monotonic() deadline), or for ever."""
    identity: tuple[int, int] | None = None
    pending = b""
    while until is None or time.monotonic() < until:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            time.sleep(interval)
            continue
        if identity is not None and (info.st_dev, info.st_ino) != identity:
            offset, pending = 0, b""  # rotated or recreated: the new file from its start
        elif info.st_size < offset:
            offset, pending = 0, b""  # truncated
        identity = (info.st_dev, info.st_ino)
        if info.st_size == offset:
            time.sleep(interval)
            continue
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            continue  # removed between stat and open: wait for the next one
        except OSError as exc:
            raise RunwrapError(f"cannot read the audit log {path}: {exc.strerror}") from None
        offset += len(data)
        *lines, pending = (pending + data).split(b"\n")
        for raw in lines:
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
