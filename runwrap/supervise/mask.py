"""The streaming masker: every injected value, and its common encodings, written as `***`.

`variants(value)` lists the byte patterns masked for one value: the value, its standard and URL-safe
base64 at the three alignments it can have inside a larger base64 stream, its percent encodings
(`quote` and `quote_plus` forms) and JSON string escapings where they differ from the value, and each
line of a multi-line value. Patterns shorter than `MIN_LEN` bytes are not masked: they would eat
ordinary output, and so values that short are only counted (`Masker.short_values`) for a warning.

`Masker` applies them to a stream. Whatever the split into `feed()` calls, the output equals masking
the whole stream at once: every byte covered by any occurrence of any pattern is hidden, and each
maximal run of hidden bytes becomes one `***`. `feed()` holds back only the longest tail that is a
proper prefix of some pattern and returns everything before it at once; nothing is held because of
time, and what is held is shorter than the longest pattern.

Hygiene: patterns live only in bytearrays, and held stream bytes only in two fixed bytearrays (the
hold, and the scratch buffer where the hold meets the next chunk); `wipe()` zeroes them all and
leaves the masker unusable. No secret goes into `re.compile` (a compiled regex cannot be wiped), a
`str`, or a `bytes` we keep; the `bytes` that `binascii` returns are zeroed with `wipe_bytes` once
copied. Tables indexed by byte value (first bytes, anchors) are lists that `wipe()` clears slot by
slot. What this cannot reach: the caller's input chunks and the returned output (`bytes`, theirs).

Speed: one `bytes.find` per pattern over each chunk costs about 0.2 ns a byte (CPython's fastsearch),
which is plenty for a few values but grows with the pattern count. So each pattern gets an anchor,
the byte of the pattern that is rarest in the stream so far; one `find` per anchor byte (memchr speed)
visits the few places where a pattern could start, and only patterns whose anchors are common in
this stream (random base64, say) fall back to their own `find`. The anchors are chosen again from a
sample every `RESAMPLE_EVERY` feeds, and at once when an anchor turns out to be common.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from typing import Any

from runwrap.secret import Secret, wipe_bytes

MIN_LEN = 4

# The anchor prefilter: a byte is a useful anchor while it occurs at most once in RARE_EVERY bytes
# (beyond that a pattern's own find, ~0.2 ns a byte, is cheaper than visiting each hit in Python).
RARE_EVERY = 2048
RESAMPLE_EVERY = 256  # feeds (16 MiB of 64 KiB reads); a common anchor is dropped at once anyway
SAMPLE_BYTES = 8192
# Up to this many patterns the held-tail search goes pattern by pattern, beyond it position by position.
FEW_PATTERNS = 16

_B64_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PERCENT_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_HEX_UPPER = b"0123456789ABCDEF"
_HEX_LOWER = b"0123456789abcdef"
_JSON_SHORT = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r",
               0x09: b"\\t"}


# --- the patterns of one value ------------------------------------------------------------------

def variants(value: bytes | bytearray) -> list[bytearray]:
    """Every pattern masked for `value`, deduplicated; empty when the value is shorter than MIN_LEN."""
    if len(value) < MIN_LEN:
        return []
    found = [bytearray(value)]
    found += _base64_fragments(value)
    found.append(_percent(value, plus=False))
    found.append(_percent(value, plus=True))
    for ascii_only in (False, True):
        escaped = _json_escape(value, ascii_only=ascii_only)
        if escaped is not None:
            found.append(escaped)
    if b"\n" in value:
        for line in bytearray(value).split(b"\n"):
            if line.endswith(b"\r"):
                stripped = line[:-1]
                wipe_bytes(line)
                line = stripped
            found.append(line)
    return _dedupe(found)


def _dedupe(patterns: list[bytearray]) -> list[bytearray]:
    """Drop short patterns and repeats, wiping every dropped copy; sorting needs no bytes copies."""
    keep: list[bytearray] = []
    for pattern in sorted(patterns):
        if len(pattern) < MIN_LEN or (keep and keep[-1] == pattern):
            wipe_bytes(pattern)
        else:
            keep.append(pattern)
    return keep


def _base64_fragments(value: bytes | bytearray) -> list[bytearray]:
    """The base64 characters that depend only on `value`'s bytes, at offset 0, 1 and 2 mod 3.

    Inside a larger encoding the first characters of the value's first group mix in the bytes before
    it, and the last ones the bytes after it (or padding); what is left is the same whatever the
    neighbours, so it is found wherever the value was encoded at that alignment.
    """
    out: list[bytearray] = []
    size = len(value)
    for lead in range(3):
        total = lead + size
        padded = bytearray(lead + size + (-total) % 3)
        padded[lead:total] = value
        encoded = binascii.b2a_base64(padded, newline=False)
        wipe_bytes(padded)
        # Character j of the encoding draws on bytes first_byte(j)..last_byte(j) of `padded`.
        start = (0, 2, 3)[lead]
        end = len(encoded)
        while end > start and 3 * ((end - 1) // 4) + (0, 1, 2, 2)[(end - 1) % 4] >= total:
            end -= 1
        fragment = bytearray(memoryview(encoded)[start:end])
        wipe_bytes(encoded)
        out.append(fragment)
        out.append(fragment.translate(_B64_URLSAFE))
    return out


def _percent(value: bytes | bytearray, *, plus: bool) -> bytearray:
    """`urllib.parse.quote` (plus=False, '/' kept) or `quote_plus` (space as '+'), built in place."""
    out = bytearray()
    for byte in value:
        if byte in _PERCENT_SAFE or (byte == 0x2F and not plus):
            out.append(byte)
        elif byte == 0x20 and plus:
            out.append(0x2B)
        else:
            out += b"%"
            out.append(_HEX_UPPER[byte >> 4])
            out.append(_HEX_UPPER[byte & 15])
    return out


def _json_escape(value: bytes | bytearray, *, ascii_only: bool) -> bytearray | None:
    """The inside of a JSON string holding `value`, as `json.dumps` writes it.

    ascii_only=False is `ensure_ascii=False` (and most other encoders): bytes >= 0x80 pass through,
    so any byte string has this form. ascii_only=True is Python's default, with \\uXXXX for every
    code point outside ' '..'~'; it needs valid UTF-8, and is None otherwise.
    """
    out = bytearray()
    i, size = 0, len(value)
    while i < size:
        byte = value[i]
        if byte in _JSON_SHORT:
            out += _JSON_SHORT[byte]
            i += 1
        elif byte < 0x20 or (ascii_only and byte == 0x7F):
            _append_u_escape(out, byte)
            i += 1
        elif byte < 0x80 or not ascii_only:
            out.append(byte)
            i += 1
        else:
            point, width = _decode_utf8(value, i)
            if point < 0:
                wipe_bytes(out)
                return None
            if point > 0xFFFF:
                point -= 0x10000
                _append_u_escape(out, 0xD800 | (point >> 10))
                _append_u_escape(out, 0xDC00 | (point & 0x3FF))
            else:
                _append_u_escape(out, point)
            i += width
    return out


def _append_u_escape(out: bytearray, point: int) -> None:
    out += b"\\u"
    for shift in (12, 8, 4, 0):
        out.append(_HEX_LOWER[(point >> shift) & 15])


def _decode_utf8(data: bytes | bytearray, i: int) -> tuple[int, int]:
    """The code point starting at data[i] and its length, or (-1, 0) if it is not valid UTF-8."""
    lead = data[i]
    if 0xC2 <= lead <= 0xDF:
        width, point, least = 2, lead & 0x1F, 0x80
    elif 0xE0 <= lead <= 0xEF:
        width, point, least = 3, lead & 0x0F, 0x800
    elif 0xF0 <= lead <= 0xF4:
        width, point, least = 4, lead & 0x07, 0x10000
    else:
        return -1, 0
    if i + width > len(data):
        return -1, 0
    for k in range(1, width):
        byte = data[i + k]
        if byte & 0xC0 != 0x80:
            return -1, 0
        point = (point << 6) | (byte & 0x3F)
    if point < least or point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
        return -1, 0
    return point, width


# --- the streaming masker -----------------------------------------------------------------------

class Masker:
    """Masks a byte stream fed in pieces; see the module docstring for the guarantees."""

    __slots__ = ("_anchors", "_by_first", "_carry", "_find_alone", "_held", "_hold", "_in_run", "_maxlen",
                 "_next_sample", "_pairs", "_patterns", "_replacement", "_scratch", "_wiped", "short_values")

    def __init__(self, values: Iterable[bytes | bytearray | Secret], *,
                 replacement: bytes = b"***") -> None:
        self.short_values = 0
        found: list[bytearray] = []
        for value in values:
            raw = value.buffer if isinstance(value, Secret) else value
            if 0 < len(raw) < MIN_LEN:
                self.short_values += 1
            found += variants(raw)
        # Longest first: the held-tail search can then stop at the first pattern too short to matter.
        self._patterns = sorted(_dedupe(found), key=len, reverse=True)
        self._replacement = bytes(replacement)
        self._maxlen = len(self._patterns[0]) if self._patterns else 0
        self._hold = bytearray(max(self._maxlen - 1, 0))  # fixed size: never reallocated, so no stale copies
        self._scratch = bytearray()  # the held tail and the next chunk, searched together
        self._held = 0        # how many bytes of _hold are the stream's held tail
        self._carry = 0       # how far matches already emitted cover into the held tail
        self._in_run = False  # the last byte emitted was hidden, so a run continuing it adds no ***
        self._wiped = False
        self._next_sample = 0  # feeds until the anchors are chosen again
        # Patterns by first byte (index = byte value), for the held-tail search over many patterns.
        self._by_first: list[list[bytearray] | None] = [None] * 256
        for pattern in self._patterns:
            group = self._by_first[pattern[0]]
            if group is None:
                group = self._by_first[pattern[0]] = []
            group.append(pattern)
        # With many patterns, a flag for each (first byte, second byte) that starts one: the held-tail
        # search then compares only where a pattern could start. A bytearray, zeroed by wipe().
        self._pairs = bytearray(65536 if len(self._patterns) > FEW_PATTERNS else 0)
        if self._pairs:
            for pattern in self._patterns:
                self._pairs[pattern[0] << 8 | pattern[1]] = 1
        # The prefilter: (anchor byte, [(pattern, offset of the anchor in it)]) and the patterns
        # searched on their own. Until the first sample every pattern is searched on its own.
        # Each anchor is a list [byte, group] so that wipe() can overwrite the byte in place.
        self._anchors: list[list[Any]] = []
        self._find_alone: list[bytearray] = list(self._patterns)

    def __repr__(self) -> str:
        return f"Masker(patterns={len(self._patterns)}, held={self._held}, short_values={self.short_values})"

    # -- the public interface --

    def feed(self, data: bytes | bytearray | memoryview, size: int | None = None) -> bytes:
        """Take the next piece of the stream, data[:size]; return what can be emitted now, masked.

        `size` lets a caller hand over the buffer it reads into without slicing a copy of it.
        """
        if self._wiped:
            raise RuntimeError("this Masker was wiped")
        if size is not None and size < 0:
            raise ValueError("size must not be negative")
        length = len(data) if size is None else min(size, len(data))
        if not self._patterns:
            return bytes(memoryview(data)[:length])
        if not length:
            return b""
        held = self._held
        if held or not isinstance(data, (bytes, bytearray)):
            # Search the held tail and the new data as one buffer: the scratch buffer, reused so that
            # no feed allocates (fresh 64 KiB buffers cost page faults) and zeroed by wipe(). It may
            # be longer than this step, so everything below is bounded by `size`. A memoryview
            # (a slice of the caller's read buffer, say) is copied here too, having no find().
            size = held + length
            if len(self._scratch) < size:
                wipe_bytes(self._scratch)
                self._scratch = bytearray(max(size, 2 * len(self._scratch)))
            self._scratch[:held] = memoryview(self._hold)[:held]
            self._scratch[held:size] = memoryview(data)[:length]
            work: bytes | bytearray = self._scratch
        else:
            work = data  # searched in place, up to `size`
            size = length
        if self._next_sample <= 0:
            if self._choose_anchors(work, size):
                self._next_sample = RESAMPLE_EVERY
        else:
            self._next_sample -= 1
        return self._step(work, size, final=False)

    def flush(self) -> bytes:
        """At the end of the stream: the held tail, masked. The masker can then take a new stream."""
        if self._wiped:
            raise RuntimeError("this Masker was wiped")
        if not self._held:
            self._carry, self._in_run = 0, False
            return b""
        try:
            return self._step(self._hold, self._held, final=True)
        finally:
            self._carry, self._in_run = 0, False

    def wipe(self) -> None:
        """Zero every pattern, the held stream bytes and the byte-indexed tables; the masker is spent."""
        for pattern in self._patterns:
            wipe_bytes(pattern)
        self._patterns.clear()
        self._find_alone.clear()
        for anchor in self._anchors:
            anchor[1].clear()
            anchor[0] = 0
        self._anchors.clear()
        for index in range(256):
            self._by_first[index] = None
        wipe_bytes(self._pairs)
        wipe_bytes(self._hold)
        wipe_bytes(self._scratch)
        self._held = self._carry = 0
        self._in_run = False
        self._wiped = True

    # -- one step over a buffer --

    def _step(self, work: bytes | bytearray, size: int, *, final: bool) -> bytes:
        """Mask work[:size]: emit up to the held tail (or everything, if final) and keep the tail."""
        spans = self._matches(work, size)
        cut = size if final else self._tail_start(work, size)
        out = self._render(work, size, cut, spans)
        # Coverage reaching past the cut comes only from matches that start before it; matches that
        # start inside the held tail are found again next time.
        carry = 0
        for start, end in spans:
            if start < cut and end - cut > carry:
                carry = end - cut
        if self._carry > cut:
            carry = max(carry, self._carry - cut)
        self._carry = carry
        tail = size - cut
        if work is not self._hold:
            self._hold[:tail] = memoryview(work)[cut:size]
        if self._held > tail:  # leave no stale stream bytes behind the new tail
            self._hold[tail:self._held] = bytes(self._held - tail)
        self._held = tail
        return out

    def _matches(self, work: bytes | bytearray, size: int) -> list[tuple[int, int]]:
        """(start, end) of every occurrence of every pattern in work[:size], overlapping ones included."""
        spans: list[tuple[int, int]] = []
        find = work.find
        for pattern in self._find_alone:
            at = find(pattern, 0, size)
            while at >= 0:
                spans.append((at, at + len(pattern)))
                at = find(pattern, at + 1, size)
        # Anchored patterns: visit each place the (rare) anchor byte occurs.
        budget = max(64, 4 * size // RARE_EVERY)
        startswith = work.startswith
        common: list[list[Any]] = []
        for anchor in self._anchors:
            byte, group = anchor
            found: list[tuple[int, int]] = []
            visits = 0
            at = find(byte, 0, size)
            while at >= 0:
                visits += 1
                if visits > budget:
                    break
                for pattern, offset in group:
                    start = at - offset
                    if start >= 0 and startswith(pattern, start, size):
                        found.append((start, start + len(pattern)))
                at = find(byte, at + 1, size)
            if visits > budget:
                common.append(anchor)
            else:
                spans += found
        if common:
            # This anchor is common here after all: search its patterns alone from now on, and
            # pick anchors again at the next feed.
            self._anchors = [anchor for anchor in self._anchors if all(anchor is not c for c in common)]
            for anchor in common:
                anchor[0] = 0
                for pattern, _offset in anchor[1]:
                    self._find_alone.append(pattern)
                    at = find(pattern, 0, size)
                    while at >= 0:
                        spans.append((at, at + len(pattern)))
                        at = find(pattern, at + 1, size)
            self._next_sample = 0
        return spans

    def _tail_start(self, work: bytes | bytearray, size: int) -> int:
        """Where the longest tail of work[:size] that is a proper prefix of some pattern starts."""
        if len(self._patterns) <= FEW_PATTERNS:
            return self._tail_start_by_pattern(work, size)
        return self._tail_start_by_position(work, size)

    def _tail_start_by_pattern(self, work: bytes | bytearray, size: int) -> int:
        """For a few patterns: look for each one's first byte in the window it could start in."""
        best = size
        find = work.find
        with memoryview(work) as view:
            for pattern in self._patterns:  # longest first, so the window below only shrinks
                low = max(size - len(pattern) + 1, 0)
                if low >= best:
                    break
                first, second = pattern[0], pattern[1]
                at = find(first, low, best)
                while at >= 0:
                    # The second byte rules out nearly every candidate without slicing a view.
                    if at + 1 == size or work[at + 1] == second:
                        with view[at:size] as rest:
                            if pattern.startswith(rest):
                                best = at
                                break
                    at = find(first, at + 1, best)
        return best

    def _tail_start_by_position(self, work: bytes | bytearray, size: int) -> int:
        """For many patterns: walk the last maxlen-1 positions, trying the patterns that start there.

        One table lookup a position (its byte and the next) rules out nearly every place; every
        pattern is at least MIN_LEN long, so a one-byte tail is held whenever a pattern starts with it.
        """
        by_first, pairs = self._by_first, self._pairs
        with memoryview(work) as view:
            for at in range(max(size - self._maxlen + 1, 0), size - 1):
                first, second = work[at], work[at + 1]
                if not pairs[first << 8 | second]:
                    continue
                for pattern in by_first[first] or ():  # longest first
                    if len(pattern) <= size - at:
                        break
                    if pattern[1] != second:
                        continue
                    with view[at:size] as rest:
                        if pattern.startswith(rest):
                            return at
        if size and by_first[work[size - 1]] is not None:
            return size - 1
        return size

    def _render(self, work: bytes | bytearray, size: int, cut: int, spans: list[tuple[int, int]]) -> bytes:
        """work[:cut] with every covered run written as one replacement."""
        if self._carry:
            spans.append((0, self._carry))
        if not spans:
            if cut:
                self._in_run = False
            if cut == size == len(work) and isinstance(work, bytes):
                return work
            return bytes(memoryview(work)[:cut])
        spans.sort()
        pieces: list[bytes] = []
        emitted = 0        # work[:emitted] is written (or hidden)
        run_end = -1       # end of the covered run being built
        last_hidden = self._in_run
        view = memoryview(work)
        for start, end in spans:
            if start >= cut:
                break
            if start > run_end:  # a new run: first the clear bytes before it
                if start > emitted:
                    pieces.append(view[emitted:start].tobytes())
                    last_hidden = False
                if not last_hidden:  # hidden only at the very start, when a run goes on from the last feed
                    pieces.append(self._replacement)
                last_hidden = True
                run_end = end
            elif end > run_end:
                run_end = end
            emitted = max(emitted, min(run_end, cut))
        if emitted < cut:
            pieces.append(view[emitted:cut].tobytes())
            last_hidden = False
        view.release()
        if cut:
            self._in_run = last_hidden
        return b"".join(pieces)

    # -- the anchor prefilter --

    def _choose_anchors(self, work: bytes | bytearray, size: int) -> bool:
        """Give each pattern the byte of it that is rarest in a sample of the stream, or none.

        Returns False (and changes nothing) when `work` is too short to judge.
        """
        size = min(size, SAMPLE_BYTES)
        if size < 1024:
            return False
        counts: list[int | None] = [None] * 256
        limit = size // RARE_EVERY
        alone: list[bytearray] = []
        groups: list[list[tuple[bytearray, int]] | None] = [None] * 256
        order: list[int] = []
        for pattern in self._patterns:
            best, best_count = -1, limit + 1
            for byte in pattern:
                count = counts[byte]
                if count is None:
                    count = counts[byte] = work.count(byte, 0, size)
                if count < best_count or (count == best_count and groups[byte] is not None):
                    best, best_count = byte, count
            if best < 0:
                alone.append(pattern)
                continue
            group = groups[best]
            if group is None:
                group = groups[best] = []
                order.append(best)
            group.append((pattern, pattern.index(best)))
        for anchor in self._anchors:
            anchor[0] = 0
        self._find_alone = alone
        self._anchors = [[byte, groups[byte]] for byte in order]
        for index in order:
            groups[index] = None
        return True
