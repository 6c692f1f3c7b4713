"""What a peer may ask for: scope patterns, a per-peer token bucket, and the decision on one query.

Scope patterns (SPEC): `github.com` (that host only), `*.example.com` (any host below example.com,
not example.com itself), `id:UUID` (one vault item, compared exactly), `*` (anything). A domain query
is normalised (lower case, no trailing dot, IDNA) before it is matched, so `GitHub.COM.` is
`github.com`. A domain pattern never grants an `id:` query, nor an id pattern a domain query: the
scope is checked before the provider is asked, so it can only judge what was asked, not what the
vault would answer.

The rate limit (SPEC "Rate limits") bounds what one peer can take out of the vault, not how often it
asks: `RateState` counts the *different* items a peer received in the last `period`, plus every
denied query, and refuses a new one past `limit`; a repeat of an item received in the window is
free, so a build that runs one profile 200 times is never limited. A generous token bucket (the
flood guard, FLOOD_BURST at once then FLOOD_PER_SECOND) protects the listener itself.

`decide` is the whole policy for one query, a pure function of plain values (the peer's scope and
revocation, the lease, the audit log's health, the rate state, the time), so it is tested without a
socket or a clock and changed in one place; runwrap.listener.sessions gathers its inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from runwrap.credential import Query, normalize_domain
from runwrap.durations import format_duration


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


@dataclass(frozen=True)
class TokenBucket:
    """One peer's rate state: `capacity` requests at once, refilled at capacity/period per second.

    A value, not a timer: `take(now)` returns the next state, so the decision below stays a pure
    function and its tests choose the time.
    """

    capacity: int
    period: float
    tokens: float
    stamp: float  # when `tokens` was counted, on the listener's monotonic clock

    @classmethod
    def full(cls, capacity: int, period: float, now: float) -> TokenBucket:
        return cls(capacity, period, float(capacity), now)

    def take(self, now: float) -> tuple[float, TokenBucket]:
        """(0.0, the bucket less one token) if a request may go now; else (seconds to wait, the bucket)."""
        rate = self.capacity / self.period
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * rate)
        # The constructor, not dataclasses.replace (~5x dearer): this runs at every request.
        if tokens >= 1.0:
            return 0.0, TokenBucket(self.capacity, self.period, tokens - 1.0, now)
        return (1.0 - tokens) / rate, TokenBucket(self.capacity, self.period, tokens, now)


FLOOD_BURST = 200
FLOOD_PER_SECOND = 50.0


@dataclass(frozen=True)
class RateState:
    """One peer's rate state: the items it was counted for in the window (oldest first), and its flood guard.

    A value like the bucket: `check(key, now)` returns the next state. `key` is the normalised query
    of an allowed request ("" for a denied one: each of those counts).
    """

    limit: int
    period: float
    seen: tuple[tuple[str, float], ...]  # (key, when it was counted)
    flood: TokenBucket

    @classmethod
    def fresh(cls, limit: int, period: float, now: float) -> RateState:
        # The guard is never tighter than the rate the owner chose (`--rate 100000/1s` for a load test).
        burst = max(FLOOD_BURST, limit)
        per_second = max(FLOOD_PER_SECOND, limit / period)
        return cls(limit, period, (), TokenBucket.full(burst, burst / per_second, now))

    def check(self, key: str, now: float) -> tuple[float, str, RateState]:
        """(0.0, "", next state) if the query may go; else (seconds to wait, why, next state)."""
        wait, flood = self.flood.take(now)
        since = now - self.period
        seen = tuple(entry for entry in self.seen if entry[1] > since)
        state = RateState(self.limit, self.period, seen, flood)
        if wait > 0:
            return wait, f"more than {self.flood.capacity} requests at once", state
        if key and any(seen_key == key for seen_key, _ in seen):
            return 0.0, "", state  # a repeat of an item it already has: nothing more leaves the vault
        if len(seen) >= self.limit:
            return (seen[0][1] + self.period - now,
                    f"rate limit of {self.limit} different items per {format_duration(self.period)}", state)
        return 0.0, "", RateState(self.limit, self.period, (*seen, (key, now)), flood)


@dataclass(frozen=True)
class Decision:
    """What the listener does with one query before (and again after) the provider is asked."""

    decision: str  # the audit log's word: allowed, denied, revoked, rate_limited or error
    code: str  # the wire's error code; "" when allowed
    reason: str  # what the consumer and the audit log are told; "" when allowed
    retry_after: float | None = None  # rate_limited: seconds until a request may go
    rate: RateState | None = None  # the peer's rate state after this query, when it was counted

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"


ALLOWED = Decision("allowed", "", "")


def decide(query: Query, *, peer: str, scope: Sequence[str], revoked: bool, lease_ended: bool,
           audit_broken: str | None, rate: RateState | None, now: float) -> Decision:
    """The decision for `peer` asking for `query`, from plain values; the first rule that refuses wins.

    1. The audit log cannot be written: refuse everything, since nothing may leave unaudited.
    2. The peer is revoked or gone (`revoked`), or the listener ended this lease: revoked.
    3. The rate limit, when `rate` is given (the first check of a query, not the re-checks after
       approval and lookup): before the scope is answered, and every denied query counts, so a peer
       probing for names it may not have is limited like one that drains the vault.
    4. The scope.
    """
    if audit_broken:
        return Decision("error", "error", f"the listener cannot write its audit log, so it refuses requests "
                        f"until it can ({audit_broken})")
    if revoked:
        return Decision("revoked", "revoked", "this peer was revoked on the listener")
    if lease_ended:
        return Decision("revoked", "revoked", "this lease was ended by the listener")
    in_scope = allows(scope, query)
    if rate is not None:
        wait, why, rate = rate.check(str(query) if in_scope else "", now)
        if wait > 0:
            return Decision("rate_limited", "rate_limited",
                            f"{why} reached for peer {peer}; retry in {max(wait, 0.1):.1f}s", round(wait, 3), rate)
    if not in_scope:
        return Decision("denied", "denied", f"{query} is outside the scope of peer {peer} "
                        f"({' '.join(scope) or 'nothing'}); the listener's owner can change it with "
                        f"`runwrap peers scope {peer} PATTERN...`", None, rate)
    return ALLOWED if rate is None else Decision("allowed", "", "", None, rate)
