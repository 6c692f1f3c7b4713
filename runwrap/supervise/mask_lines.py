"""The masker's line-break and held-tail logic: where a wrapped encoding continues across a line
break, and how much of a read's end must be held back because a value may still start there.

A base class of `mask.Masker` (which holds the state, in slots); split out so each module reads in
one sitting. The rules are mask's module docstring's.
"""

from __future__ import annotations

from runwrap.supervise.maskviews import WRAP_MAX, WRAP_MIN, line_kinds, zero

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runwrap.supervise.mask_json import Decoded

# Up to this many patterns the held-tail search goes pattern by pattern, beyond it position by position.
FEW_PATTERNS = 16


class LineTails:
    """Methods of Masker that look through line breaks and find the tail to hold."""

    # The line the buffer starts in and the line breaks judged in this step are this part's own state;
    # the rest it reads is Masker's.
    __slots__ = ("_lead", "_lead_cr", "_lead_len", "_memo")
    _lead: bytearray
    _lead_cr: bool
    _lead_len: int
    _memo: dict[int, bool]
    _alphabet: bytearray
    _by_first: list[list[bytearray] | None]
    _maxlen: int
    _pairs: bytearray
    _patterns: list[bytearray]

    def _wrapped_at(self, work: bytes | bytearray, size: int, pattern: bytearray, offset: int,
                    at: int) -> tuple[int, int] | None:
        """The span of `pattern` around its anchor at work[at] across seen-through line breaks, if any."""
        pos = at
        k = offset - 1
        while k >= 0:  # backwards from the anchor
            pos -= 1
            if pos < 0:
                return None
            byte = work[pos]
            if byte == 0x0A:
                first = pos - 1 if pos and work[pos - 1] == 0x0D else pos
                if not self._transparent(work, first):
                    return None
                pos = first
            elif byte != pattern[k]:
                return None
            else:
                k -= 1
        start = pos
        pos, k = at, offset + 1
        while k < len(pattern):  # and forwards
            pos += 1
            if pos >= size:
                return None
            byte = work[pos]
            if byte == 0x0D and pos + 1 < size and work[pos + 1] == 0x0A:
                if not self._transparent(work, pos):
                    return None
                pos += 1
            elif byte == 0x0A:
                if not self._transparent(work, pos):
                    return None
            elif byte != pattern[k]:
                return None
            else:
                k += 1
        return start, pos + 1

    # -- line breaks --

    def _transparent(self, work: bytes | bytearray, first: int) -> bool:
        """Whether the line break starting at work[first] is seen through (see maskviews)."""
        known = self._memo.get(first)
        if known is not None:
            return known
        line = work.rfind(b"\n", 0, first) + 1
        length = first - line
        b64 = hexes = True
        if not line:  # the line began before the buffer
            length += self._lead_len
            if self._lead_cr and (first or work[0] != 0x0A):  # its '\r' was line content, not half a break
                b64 = hexes = False
            elif length <= WRAP_MAX:
                b64, hexes = line_kinds(self._lead, 0, self._lead_len)
        seen = False
        if WRAP_MIN <= length <= WRAP_MAX and (b64 or hexes):
            line_b64, line_hex = line_kinds(work, line, first)
            seen = (b64 and line_b64) or (hexes and line_hex)
        self._memo[first] = seen
        return seen

    def _advance_lead(self, work: bytes | bytearray, cut: int) -> None:
        """Keep the line that the next buffer, starting at `cut`, begins inside of."""
        if not cut:
            return
        line = work.rfind(b"\n", 0, cut) + 1
        end = cut
        cr = end > line and work[end - 1] == 0x0D
        if cr:
            end -= 1
        old = min(self._lead_len, WRAP_MAX)
        if line:
            start, length = 0, end - line
        else:  # the same line goes on
            if self._lead_cr:  # its '\r' was line content after all
                self._lead_len = WRAP_MAX + 1
            start, length = self._lead_len, self._lead_len + end
        if length <= WRAP_MAX:
            with memoryview(work) as view:
                self._lead[start:length] = view[line:end]
        kept = length if length <= WRAP_MAX else 0
        if old > kept:  # leave no stale stream bytes behind
            self._lead[kept:old] = bytes(old - kept)
        self._lead_len, self._lead_cr = length, cr

    def _new_line(self) -> None:
        zero(self._lead)
        self._lead_len, self._lead_cr = 0, False

    # -- the held tail --

    def _wrap_tail(self, work: bytes | bytearray, size: int) -> int:
        """Where the longest tail that is a proper prefix of a pattern starts, when the tail runs
        across seen-through line breaks; `size` when it does not (`_tail_start` covers that)."""
        room = self._maxlen - 1
        if room <= 0 or not size:
            return size
        # The last line break, or a '\r' at the very end that a '\n' may complete.
        last = size - 1 if work[size - 1] == 0x0D else work.rfind(b"\n", max(size - room - 2, 0), size)
        if last < 0:
            return size
        first = last - 1 if last and work[last] == 0x0A and work[last - 1] == 0x0D else last
        if not self._transparent(work, first):
            return size  # the common case (a line of text): nothing to see through
        # The tail's pieces between seen-through breaks, gathered from the end up to `room` bytes.
        pieces = [(last + 1, size)]
        total = size - last - 1
        while total < room:
            newline = work.rfind(b"\n", 0, first)
            start = max(newline + 1, first - (room - total))
            pieces.append((start, first))
            total += first - start
            if total >= room or newline < 0:
                break
            first = newline - 1 if newline and work[newline - 1] == 0x0D else newline
            if not self._transparent(work, first):
                break
        pieces.reverse()
        chars = bytearray()
        with memoryview(work) as view:
            for start, end in pieces:
                chars += view[start:end]
        try:
            at = self._tail_start(chars, len(chars))
            for start, end in pieces:  # back to a position in the buffer
                if at < end - start:
                    return start + at
                at -= end - start
            return size
        finally:
            zero(chars)

    def _view_tail(self, view: Decoded, size: int) -> int:
        """Where the held tail must start for a decoded view: its longest tail that is a proper prefix
        of a pattern, and at the latest an escape the buffer cuts short."""
        decoded = view.view
        start = self._tail_start(decoded, len(decoded)) if decoded else 0
        cut = view.start_of(start) if start < len(decoded) else size
        if view.incomplete >= 0:
            cut = min(cut, view.incomplete)
        return cut

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
        low = max(size - self._maxlen + 1, 0)
        with memoryview(work) as view:
            if size - low > 8:
                # A tail to hold consists of bytes that occur in patterns: it starts after the last
                # byte that occurs in none (in text, usually a few bytes from the end).
                window = bytearray(view[low:size])
                kept = window.rstrip(self._alphabet)
                low += len(kept)
                zero(kept)
                zero(window)
            for at in range(low, size - 1):
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
