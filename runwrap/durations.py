"""Durations as users write them (`30`, `500ms`, `5s`, `10m`, `2h`, `1d`, `1h30m`), and time stamps."""

from __future__ import annotations

import time

# The longest a supervised run waits for anything (`--timeout`, `timeout:`, `kill_grace:`): poll(2)
# takes its timeout in int milliseconds, at most 24.8 days, and a longer wait would overflow it.
LONGEST_WAIT = 24 * 86400.0
LONGEST_WAIT_TEXT = "24d"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _number_end(text: str, start: int) -> int:
    """Where `\\d+(?:\\.\\d+)?` (any Unicode decimal digits, as `re`'s `\\d`) matched at `start` ends;
    `start` if no number starts there. str methods, not `re` (~4 ms of the exec path's imports)."""
    end = start
    while end < len(text) and text[end].isdecimal():
        end += 1
    if end > start and text[end : end + 1] == "." and text[end + 1 : end + 2].isdecimal():
        end += 2
        while end < len(text) and text[end].isdecimal():
            end += 1
    return end


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`; raises ValueError with a message that shows the accepted forms."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 2h)")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError(f"a duration cannot be negative: {text}")
        return float(text)
    value = text.strip().lower()
    if value and _number_end(value, 0) == len(value):
        return float(value)
    pos, total = 0, 0.0
    while pos < len(value):  # NUMBER UNIT, NUMBER UNIT, ...: `1h30m`, `1.5s`
        end = _number_end(value, pos)
        unit = "ms" if value.startswith("ms", end) else value[end : end + 1]
        if end == pos or unit not in _UNITS:
            break
        total += float(value[pos:end]) * _UNITS[unit]
        pos = end + len(unit)
    if pos != len(value) or not value:
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 30s, 5m, 2h, 1h30m)")
    if total - total != 0:  # inf (or nan): math.isfinite without importing math on the exec path
        raise ValueError(f"not a duration: {text!r} is too long to count")
    return total


def check_wait(seconds: float, shown: str, longest: float = LONGEST_WAIT, longest_text: str = LONGEST_WAIT_TEXT,
               why: str = "poll(2) waits at most 24.8 days") -> float:
    """`seconds` if it is at most `longest`; ValueError saying the bound and why otherwise."""
    if seconds > longest:
        raise ValueError(f"{shown} is longer than {longest_text}, the longest runwrap takes here ({why})"
                         f" — use at most {longest_text}")
    return seconds


def format_duration(seconds: float) -> str:
    """`seconds` the way a user would write it: `1h`, `2m`, `90s`, `1.5s`, `500ms`."""
    if seconds >= 60 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


_PERIOD_WORDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
                 "hr": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}


def parse_rate(text: str) -> tuple[int, float]:
    """`N/PERIOD` (`60/1m`, `5/min`, `5/minute`, `100/s`, `100/sec`, `3600/hour`) as (count, seconds)."""
    count, sep, period = text.partition("/")
    if not sep or not count.strip().isdigit() or int(count) <= 0 or not period.strip():
        raise ValueError(f"not a rate: {text!r} (use N/PERIOD, e.g. 60/1m, 5/min, 100/s, 3600/hour)")
    period = period.strip().lower()
    word = period[:-1] if period.endswith("s") and period[:-1] in _PERIOD_WORDS else period
    if word in _PERIOD_WORDS:
        seconds = _PERIOD_WORDS[word]
    else:
        try:
            seconds = parse_duration(period if period[:1].isdigit() else "1" + period)
        except ValueError:
            raise ValueError(f"not a rate: {text!r} (use N/PERIOD, e.g. 60/1m, 5/min, 100/s, 3600/hour)") from None
    if seconds <= 0:
        raise ValueError(f"not a rate: {text!r} (the period must be longer than zero)")
    return int(count), seconds


def rfc3339(epoch: float | None = None) -> str:
    """UTC time as RFC 3339 with a `Z`, to the second (now when `epoch` is None)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
