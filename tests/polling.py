"""Polling with a deadline, the one way these tests wait for something (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(check: Callable[[], Any], timeout: float = 10.0,
             what: str | Callable[[], str] = "a condition") -> Any:
    """Poll `check` until it returns something true and return that; fail after `timeout` seconds,
    saying `what` (a callable is asked only then, so it can describe the state at the failure)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(0.01)
