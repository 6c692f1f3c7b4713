"""`--approve always|first`: the listener's owner says yes or no on its terminal before the vault is read.

Questions are asked one at a time and show what the consumer claims it will run, as a claim, not
proof; an unanswered question is a no, and `first` remembers each answer for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from runwrap.durations import format_duration

if TYPE_CHECKING:
    from runwrap.credential import Query


class Approver:
    """Asks the listener's owner (approve always|first) before the provider is asked.

    The questions go one at a time; with `first`, each (peer, query) answer is remembered `ttl`
    seconds. `ask` is the terminal by default; tests and embedders pass their own.
    """

    def __init__(self, mode: str, *, ttl: float, timeout: float,
                 ask: Callable[[str], bool | None] | None = None) -> None:
        self.mode = mode  # never, always or first
        self.ttl = ttl
        # On the terminal, a question unanswered in `timeout` seconds is a no.
        self.ask: Callable[[str], bool | None] = ask or (lambda text: ask_terminal(text, timeout))
        self._lock = asyncio.Lock()
        self._remembered: dict[tuple[str, str], tuple[bool, float]] = {}

    async def approve(self, peer: str, query: Query, fields: list[str], claim: dict[str, str] | None) -> bool:
        if self.mode == "never":
            return True
        key = (peer, str(query))
        async with self._lock:
            if self.mode == "first":
                remembered = self._remembered.get(key)
                if remembered and remembered[1] > time.monotonic():
                    return remembered[0]
            prov = claim or {}
            question = (f"\nrunwrap: peer {peer} asks for {query} (fields: {', '.join(fields)})\n"
                        f"  it says it will run {prov.get('argv0') or '?'} with profile {prov.get('profile') or '-'} "
                        f"(pid {prov.get('pid') or '?'}, folder {prov.get('cwd') or '?'}) — its claim, not proof\n"
                        f"  allow{' for ' + format_duration(self.ttl) if self.mode == 'first' else ''}"
                        "? [y/N] ")
            answer = await _in_daemon_thread(self.ask, question)
            if self.mode == "first" and answer is not None:
                self._remembered[key] = (answer, time.monotonic() + self.ttl)
            return bool(answer)


async def _in_daemon_thread(ask: Callable[[str], bool | None], question: str) -> bool | None:
    """`ask(question)` in a thread of its own that nobody waits for: the default executor's threads are
    joined when the loop ends, so a TERM would wait for the owner's answer (or --approve-timeout)."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bool | None] = loop.create_future()

    def settle(result: bool | None, error: BaseException | None) -> None:
        if not answered.done():  # a listener that stopped cancelled the request meanwhile
            answered.set_exception(error) if error is not None else answered.set_result(result)

    def work() -> None:
        try:
            result, error = ask(question), None
        except BaseException as exc:  # delivered to the request, as run_in_executor would
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: the listener has stopped
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="runwrap-approval", daemon=True).start()
    return await answered


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
