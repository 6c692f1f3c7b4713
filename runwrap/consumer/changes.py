"""A change the listener pushes while the child runs: CHANGED's items as credentials, by request.

Only a lease that watches (on_change is not none) is sent one, so `HeldLease.poll` imports this
module when one arrives and the common launch never loads it.
"""

from __future__ import annotations

from runwrap.credential import Credential
from runwrap.errors import ProtocolError

TYPE_CHECKING = False  # not typing's: the exec path may import this module
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from runwrap.secret import Secret


class Changed:
    """The listener pushed new values (CHANGED `seq`): request index on this session -> its credential."""

    __slots__ = ("credentials", "seq")

    def __init__(self, seq: int, credentials: dict[int, Credential]) -> None:
        self.seq = seq
        self.credentials = credentials

    def wipe(self) -> None:
        for cred in self.credentials.values():
            cred.wipe()

    def __repr__(self) -> str:
        return f"Changed(seq={self.seq}, requests={sorted(self.credentials)})"


def changed_of(header: Mapping[str, Any], values: dict[str, Secret]) -> Changed:
    """A CHANGED message's items as credentials by request index; ProtocolError (values wiped) if malformed."""
    seq, items = header.get("seq"), header.get("items")
    credentials: dict[int, Credential] = {}
    try:
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(items, list):
            raise ProtocolError("a change from the listener is malformed")
        for item in items:
            index = item.get("request") if isinstance(item, dict) else None
            if not isinstance(index, int) or isinstance(index, bool) or index < 0 or index in credentials:
                raise ProtocolError("a change from the listener names no request")
            prefix = f"{index}/"
            fields = {name[len(prefix):]: value for name, value in values.items() if name.startswith(prefix)}
            available, ttl = item.get("available"), item.get("ttl")
            credentials[index] = Credential(
                fields, available=[str(n) for n in available] if isinstance(available, list) else None,
                ttl=float(ttl) if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) else None)
        taken = {f"{i}/{name}" for i, cred in credentials.items() for name in cred}
        for name in values.keys() - taken:
            values[name].wipe()
    except BaseException:
        for value in values.values():
            value.wipe()
        raise
    return Changed(seq, credentials)
