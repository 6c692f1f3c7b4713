"""A raw consumer that holds a lease with `"watch": true` and reads what the listener pushes.

It speaks the wire through runwrap.consumer.client.Channel (the real Noise session to a real
`runwrap listen`), but supervises nothing: a test asks for credentials, holds, and then reads frames
(CHANGED, REVOKE) with a deadline, answering ROTATED when it chooses to.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from runwrap.consumer.client import Channel, Endpoint
from runwrap.credential import Credential, Query
from runwrap.errors import HandshakeFailed
from runwrap.paths import layout
from runwrap.secret import Secret
from runwrap.wire import messages


class Pushed:
    """One message the listener pushed: its header, and the values of a CHANGED by "index/field"."""

    def __init__(self, header: dict[str, Any], values: dict[str, Secret]) -> None:
        self.header = header
        self.values = {name: value.reveal() for name, value in values.items()}
        for value in values.values():
            value.wipe()

    @property
    def kind(self) -> str:
        return str(self.header["type"])

    def value(self, request: int, field: str) -> str:
        return self.values[f"{request}/{field}"]


class Watching:
    """Requests (query, fields) on one session, then HOLD with watch (or not)."""

    def __init__(self, home: Path, requests: Sequence[tuple[Query, Iterable[str]]], *, watch: bool = True) -> None:
        self.channel: Channel = Endpoint.pick(layout({"RUNWRAP_HOME": str(home)}), None).open()
        self.first: list[Credential] = []
        try:
            for query, fields in requests:
                self.first.append(self.channel.request(query, list(fields)))
            self.channel._send({"type": messages.HOLD, "watch": watch, "provenance": {"argv0": "watching"}})
        except BaseException:
            self.channel.close()
            raise

    def value(self, request: int, field: str) -> str:
        return self.first[request][field].reveal()

    def next(self, timeout: float) -> Pushed | None:
        """The next pushed message within `timeout` seconds, or None."""
        try:
            header, values = self.channel._receive(time.monotonic() + timeout)
        except HandshakeFailed:  # framing's own deadline: nothing came
            return None
        return Pushed(header, values)

    def rotated(self, seq: int) -> None:
        self.channel._send({"type": messages.ROTATED, "seq": seq})

    def end(self, exit_status: int = 0) -> None:
        try:
            self.channel._send({"type": messages.LEASE_END, "exit": exit_status, "duration_ms": 1})
        finally:
            self.channel.close()

    def __enter__(self) -> Watching:
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()
