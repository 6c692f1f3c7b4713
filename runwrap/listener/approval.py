"""`--approve always|first`: the listener's owner says yes or no on its terminal before the vault is read.

Questions are asked one at a time and show what the consumer claims it will run, as a claim, not
proof; an unanswered question is a no, and `first` remembers each answer for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runwrap.durations import format_duration

if TYPE_CHECKING:
    from runwrap.credential import Query
    from runwrap.listener.server import Listener


@dataclass
class Approvals:
    """Approvals asked on the listener's terminal, one at a time; `first` answers, remembered."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    remembered: dict[tuple[str, str], tuple[bool, float]] = field(default_factory=dict)


async def approve(listener: Listener, peer: str, query: Query, fields: list[str],
                  claim: dict[str, str] | None) -> bool:
    """Ask on the listener's terminal (approve always|first) before the provider is asked."""
    mode = listener.options.approve
    if mode == "never":
        return True
    key = (peer, str(query))
    async with listener.approvals.lock:
        if mode == "first":
            remembered = listener.approvals.remembered.get(key)
            if remembered and remembered[1] > time.monotonic():
                return remembered[0]
        prov = claim or {}
        question = (f"\nrunwrap: peer {peer} asks for {query} (fields: {', '.join(fields)})\n"
                    f"  it says it will run {prov.get('argv0') or '?'} with profile {prov.get('profile') or '-'} "
                    f"(pid {prov.get('pid') or '?'}, folder {prov.get('cwd') or '?'}) — its claim, not proof\n"
                    f"  allow{' for ' + format_duration(listener.options.approve_ttl) if mode == 'first' else ''}"
                    "? [y/N] ")
        timeout = listener.options.approve_timeout
        ask: Callable[[str], bool | None] = listener.ask or (lambda text: ask_terminal(text, timeout))
        answer = await asyncio.get_running_loop().run_in_executor(None, ask, question)
        if mode == "first" and answer is not None:
            listener.approvals.remembered[key] = (answer, time.monotonic() + listener.options.approve_ttl)
        return bool(answer)


def ask_terminal(question: str, timeout: float = 120.0) -> bool | None:
    """Ask on the listener's controlling terminal: True, False, or None (no answer in `timeout`).

    No terminal means no. Input typed before the question is discarded, so a stray `y` typed
    earlier cannot approve a request nobody has read yet.
    """
    import select
    import termios

    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        with contextlib.suppress(termios.error):
            termios.tcflush(fd, termios.TCIFLUSH)
        os.write(fd, question.encode())
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                os.write(fd, f"\nrunwrap: no answer in {format_duration(timeout)}: denied\n".encode())
                return None
            chunk = os.read(fd, 256)
            if not chunk:
                return False
            line += chunk
    except OSError:
        return False
    finally:
        os.close(fd)
    return line.decode(errors="replace").strip().lower() in ("y", "yes")
