"""Where a running listener can be reached: the file it keeps in the runtime folder while it runs.

`runwrap listen --socket PATH` (or `--audit-log PATH`) moves what the owner's commands need away
from the defaults, so the listener writes `listener.json` (0600) naming its control socket, its pid,
its addresses and its audit log, and removes it when it stops. `invite`, `peers` and `audit` read
it when they are given no `--socket` (runwrap.listener.manage). A file left by a listener that was
killed names a process that is gone, and is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from runwrap.errors import ConfigError
from runwrap.paths import Layout, read_private_json, write_private


@dataclass(frozen=True)
class Whereabouts:
    control: Path  # the local control socket every listener has
    pid: int
    addresses: tuple[str, ...]  # what consumers connect to: unix:PATH, and tcp:HOST:PORT with --tcp
    audit_log: Path

    @property
    def running(self) -> bool:
        """The process that wrote the file is alive and is a runwrap (not a pid reused since)."""
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as handle:
                return b"runwrap" in handle.read()
        except OSError:
            return False


def record_path(lay: Layout) -> Path:
    return lay.runtime / "listener.json"


def record(lay: Layout, where: Whereabouts) -> None:
    write_private(record_path(lay), json.dumps({
        "control": str(where.control), "pid": where.pid, "addresses": list(where.addresses),
        "audit_log": str(where.audit_log)}).encode())


def forget(lay: Layout, pid: int) -> None:
    """Remove the file if it is still this listener's (a second listener may have written its own)."""
    found = read(lay)
    if found is not None and found.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(record_path(lay))


def read(lay: Layout) -> Whereabouts | None:
    """The recorded listener, or None when there is no (readable) record."""
    try:
        data = read_private_json(record_path(lay), {})
        if not data:
            return None
        return Whereabouts(control=Path(str(data["control"])), pid=int(data["pid"]),
                           addresses=tuple(str(a) for a in data.get("addresses") or ()),
                           audit_log=Path(str(data["audit_log"])))
    except (ConfigError, KeyError, TypeError, ValueError):
        return None


def running(lay: Layout) -> Whereabouts | None:
    """The recorded listener if it still runs."""
    found = read(lay)
    return found if found is not None and found.running else None
