"""What a peer may ask for: scope patterns and a per-peer token bucket.

Scope patterns (SPEC): `github.com` (that host only), `*.example.com` (any host below example.com,
not example.com itself), `id:UUID` (one vault item, compared exactly), `*` (anything). A domain query
is normalised (lower case, no trailing dot, IDNA) before it is matched, so `GitHub.COM.` is
`github.com`. A domain pattern never grants an `id:` query, nor an id pattern a domain query: the
scope is checked before the provider is asked, so it can only judge what was asked, not what the
vault would answer.

The token bucket limits how fast one peer can drain the vault: `capacity` requests at once, refilled
evenly over `period`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from runwrap.credential import Query, normalize_domain


def check_pattern(pattern: str) -> str:
    """A scope pattern in canonical form; ValueError with the accepted forms otherwise."""
    text = pattern.strip()
    if text == "*":
        return text
    if text.startswith("id:"):
        try:
            Query(id=text[3:])
        except ValueError:
            raise ValueError(f"not a scope pattern: {pattern!r} (an id pattern is id: and a vault item id, "
                             "letters, digits and . _ : -)") from None
        return text
    wildcard = text.startswith("*.")
    try:
        host = normalize_domain(text[2:] if wildcard else text)
    except ValueError:
        raise ValueError(f"not a scope pattern: {pattern!r} (use github.com, *.example.com, "
                         "id:UUID or *)") from None
    return f"*.{host}" if wildcard else host


def allows(scope: Iterable[str], query: Query) -> bool:
    for pattern in scope:
        if pattern == "*":
            return True
        if pattern.startswith("id:"):
            if query.id is not None and pattern[3:] == query.id:
                return True
            continue
        if query.domain is None:
            continue
        if pattern.startswith("*."):
            if query.domain.endswith(pattern[1:]):
                return True
        elif query.domain == pattern:
            return True
    return False


@dataclass
class TokenBucket:
    """`capacity` requests at once, refilled at capacity/period per second."""

    capacity: int
    period: float
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.tokens = float(self.capacity)
        self.stamp = self.clock()

    def take(self) -> float:
        """0.0 if a request may go now; otherwise the seconds until one may."""
        now = self.clock()
        rate = self.capacity / self.period
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate
