"""The streaming masker: every injected value, and its common encodings, written as `***`.

What is masked is `mask_patterns.variants(value)`, looked for in three views of the output
(see maskviews, mask_json): the output itself; the output with the line breaks of wrapped encodings taken
out (base64 -w N, xxd -p, od); and the output with JSON's \\uXXXX escapes rewritten (so any
character may be \\u-escaped, in either case). Values shorter than `MIN_LEN` bytes are only counted
(`Masker.short_values`) for a warning.

`Masker` applies them to a stream. Whatever the split into `feed()` calls, the output equals masking
the whole stream at once: every byte covered by an occurrence of a pattern in any view is hidden,
and each maximal run of hidden bytes becomes one `***`. `feed()` holds back only the tail where a
match may still start (the longest tail that is a proper prefix of a pattern, in any view, and a \\u
escape the read cut short; never half an escape) and returns everything before it at once; nothing
is held because of time. `release()` lets a held tail go early, for bytes known not to be the
child's (a pty's echo).

Hygiene: patterns live only in bytearrays, and held stream bytes in two fixed bytearrays (the hold,
and the scratch buffer where the hold meets the next chunk); `wipe()` zeroes them all and leaves the
masker unusable. The copies one step makes (a decoded view, the output without its line breaks) are
bytearrays zeroed before the step returns. No secret goes into `re.compile` (a compiled regex cannot
be wiped), a `str`, or a `bytes` we keep; the `bytes` that `binascii` returns are zeroed with
`wipe_bytes` once copied. Tables indexed by byte value (first bytes, anchors) are lists that
`wipe()` clears slot by slot. What this cannot reach: the caller's input chunks and the returned
output (`bytes`, theirs).

Speed: one search per pattern over each chunk grows with the pattern count. So each pattern gets an
anchor, the byte of the pattern that is rarest in the stream so far; one `find` per anchor byte
(memchr speed) visits the few places where a pattern could start, and only patterns whose anchors
are common in this stream (random base64, hex) fall back to their own search (memmem, see memfind).
The anchors are chosen again from a sample every `RESAMPLE_EVERY` feeds, and at once when an anchor
turns out to be common. A line break is looked through only where an anchor hit is next to one, or
for the patterns searched on their own; the \\u view is built only when a backslash occurs.
Hex patterns have no rare byte in text with numbers or hex ids in it, so they cost a search each
over every read: that is why hex is off unless asked for (README, Performance).
"""

from __future__ import annotations

from runwrap.linux import address
from runwrap.secret import Secret, wipe_bytes
from runwrap.supervise.mask_lines import FEW_PATTERNS, LineTails
from runwrap.supervise.mask_patterns import MIN_LEN, dedupe, escape_safe, variants
from runwrap.supervise.maskviews import WRAP_MAX, bisect_right, zero
from runwrap.supervise.memfind import Finder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from runwrap.supervise.mask_json import Decoded

# The anchor prefilter: a byte is a useful anchor while it occurs at most once in RARE_EVERY bytes
# (beyond that a pattern's own find, ~0.2 ns a byte, is cheaper than visiting each hit in Python).
RARE_EVERY = 2048
RESAMPLE_EVERY = 256  # feeds (16 MiB of 64 KiB reads); a common anchor is dropped at once anyway
SAMPLE_BYTES = 8192

HEX = False  # whether a Masker also masks each value's hex (see the module docstring)

class Masker(LineTails):
    """Masks a byte stream fed in pieces; see the module docstring for the guarantees."""

    __slots__ = ("_alphabet", "_anchors", "_by_first", "_carry", "_find_alone", "_held", "_hex", "_hold", "_in_run",
                 "_lined", "_maxlen", "_next_sample", "_pairs", "_patterns", "_replacement", "_scratch", "_wanted",
                 "_where", "_wiped", "short_values")

    def __init__(self, values: Iterable[bytes | bytearray | Secret], *,
                 replacement: bytes = b"***", hex: bool = HEX) -> None:
        self.short_values = 0
        found: list[bytearray] = []
        for value in values:
            raw = value.buffer if isinstance(value, Secret) else value
            if 0 < len(raw) < MIN_LEN:
                self.short_values += 1
            found += variants(raw, hex=hex)
        self._hex = hex
        self._replacement = bytes(replacement)
        self._hold = bytearray()
        self._held = 0        # how many bytes of _hold are the stream's held tail
        self._index(found)
        self._scratch = bytearray()  # the held tail and the next chunk, searched together
        self._carry = 0       # how far matches already emitted cover into the held tail
        self._in_run = False  # the last byte emitted was hidden, so a run continuing it adds no ***
        self._wiped = False
        # The line the buffer starts in, as far as it goes before the buffer (kept while it could still
        # decide a line break: up to WRAP_MAX bytes), its length, and whether a '\r' that a '\n'
        # may follow ended it. A fixed bytearray, zeroed by wipe().
        self._lead = bytearray(WRAP_MAX)
        self._lead_len = 0
        self._lead_cr = False
        self._memo: dict[int, bool] = {}  # line breaks already judged in this step

    def add(self, values: Iterable[bytes | bytearray | Secret]) -> None:
        """Mask these values too from now on (a rotation's new ones), the stream going on as it was."""
        if self._wiped:
            raise RuntimeError("this Masker was wiped")
        found = [pattern for value in values
                 for pattern in variants(value.buffer if isinstance(value, Secret) else value, hex=self._hex)]
        for table in (self._pairs, self._alphabet, self._wanted):
            wipe_bytes(table)
        for anchor in self._anchors:
            anchor[1].clear()
            anchor[0] = 0
        self._index(self._patterns + found)

    def _index(self, found: list[bytearray]) -> None:
        """The patterns and every table made from them (a held tail already there is kept)."""
        # Longest first: the held-tail search can then stop at the first pattern too short to matter.
        self._patterns = sorted(dedupe(found), key=len, reverse=True)
        # Patterns that hold a line break (a multi-line value whole) are not searched across breaks,
        # but as they are; so are those that end in '\r': followed by '\n' in the output, that '\r'
        # reads as half a CRLF break, and the copy with the breaks taken out would not hold them.
        self._lined = {id(pattern) for pattern in self._patterns if 0x0A in pattern or pattern.endswith(b"\r")}
        self._where = {id(pattern): address(pattern) for pattern in self._patterns}  # for memmem
        self._maxlen = len(self._patterns[0]) if self._patterns else 0
        # Fixed size (never reallocated, so no stale copies) until add() needs a longer one.
        hold = bytearray(max(self._maxlen - 1, 0, self._held))
        hold[:self._held] = memoryview(self._hold)[:self._held]
        wipe_bytes(self._hold)
        self._hold = hold
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
        # Every byte value that occurs in a pattern: flags by value, and the values once (for the
        # held-tail search and the \\u view). Both zeroed by wipe().
        self._wanted = bytearray(256)
        for pattern in self._patterns:
            for byte in pattern:
                self._wanted[byte] = 1
        self._alphabet = bytearray(byte for byte in range(256) if self._wanted[byte])
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
        try:
            if not self._held:
                return b""
            return self._step(self._hold, self._held, final=True)
        finally:
            self._carry, self._in_run = 0, False
            self._new_line()

    @property
    def held(self) -> int:
        """How many bytes of the stream are held back, waiting to see whether a value follows."""
        return self._held

    def release(self) -> bytes:
        """The held tail now, masked as far as it goes, while the stream goes on: for bytes known not
        to be the child's (a terminal's echo of what the user typed, see streams.Stream)."""
        if self._wiped:
            raise RuntimeError("this Masker was wiped")
        if not self._held:
            return b""
        return self._step(self._hold, self._held, final=True, ending=False)

    def wipe(self) -> None:
        """Zero every pattern, the held stream bytes and the byte-indexed tables; the masker is spent."""
        for pattern in self._patterns:
            wipe_bytes(pattern)
        self._patterns.clear()
        self._lined.clear()
        self._where.clear()
        self._find_alone.clear()
        for anchor in self._anchors:
            anchor[1].clear()
            anchor[0] = 0
        self._anchors.clear()
        for index in range(256):
            self._by_first[index] = None
        wipe_bytes(self._pairs)
        wipe_bytes(self._alphabet)
        wipe_bytes(self._wanted)
        wipe_bytes(self._hold)
        wipe_bytes(self._scratch)
        self._held = self._carry = 0
        self._in_run = False
        wipe_bytes(self._lead)
        self._lead_len, self._lead_cr = 0, False
        self._wiped = True

    # -- one step over a buffer --

    def _step(self, work: bytes | bytearray, size: int, *, final: bool, ending: bool = True) -> bytes:
        """Mask work[:size]: emit up to the held tail (or everything, if final) and keep the tail.
        `ending`: a final step ends the stream (flush) rather than letting it go on (release)."""
        if self._memo:
            self._memo.clear()
        spans = self._search(work, size, wrap=True)
        views: list[Decoded] = []
        if work.find(b"\\", 0, size) >= 0:  # cheap (memchr); in most output there is none
            from runwrap.supervise import mask_json  # so most runs never load it

            view = mask_json.decode_json(work, size, self._wanted, final=final)
            if view is not None:
                views.append(view)
        if final:  # the end of the stream, or a release (which still ends at an escape's start)
            cut = size if ending else escape_safe(work, size)
        if not views:
            if not final:
                cut = escape_safe(work, min(self._tail_start(work, size), self._wrap_tail(work, size)))
            out = self._render(work, size, cut, spans)
        else:
            try:
                for view in views:
                    spans += [(view.start_of(start), view.end_of(end))
                              for start, end in self._search(view.view, len(view.view), wrap=False)]
                if not final:
                    cut = self._cut(work, size, views)
                out = self._render(work, size, cut, spans)
            finally:
                for view in views:
                    view.wipe()
        # Coverage reaching past the cut comes only from matches that start before it; matches that
        # start inside the held tail are found again next time.
        carry = 0
        for start, end in spans:
            if start < cut and end - cut > carry:
                carry = end - cut
        if self._carry > cut:
            carry = max(carry, self._carry - cut)
        self._carry = carry
        if not (final and ending):
            self._advance_lead(work, cut)
        tail = size - cut
        if work is not self._hold:
            self._hold[:tail] = memoryview(work)[cut:size]
        elif tail and cut:  # a release that keeps a backslash: move it to the front (no overlap: cut >= tail)
            self._hold[:tail] = memoryview(work)[cut:size]
        if self._held > tail:  # leave no stale stream bytes behind the new tail
            self._hold[tail:self._held] = bytes(self._held - tail)
        self._held = tail
        return out

    def _cut(self, work: bytes | bytearray, size: int, views: list[Decoded]) -> int:
        """Where the held tail starts: the earliest place a match could still start, in the output
        itself, across line breaks, or in the view with \\u escapes rewritten; never inside an escape."""
        cut = min(self._tail_start(work, size), self._wrap_tail(work, size))
        for view in views:
            cut = min(cut, self._view_tail(view, size))
        for view in views:  # a \\u escape is rewritten whole or not at all: held or emitted whole
            start = view.escape_around(cut)
            if start >= 0:
                cut = start
        return escape_safe(work, cut)

    # -- finding matches --

    def _search(self, work: bytes | bytearray, size: int, *, wrap: bool) -> list[tuple[int, int]]:
        """(start, end) of every occurrence of every pattern in work[:size], overlapping ones included;
        with `wrap`, also those a seen-through line break splits."""
        spans: list[tuple[int, int]] = []
        find = work.find
        self._search_alone(work, size, self._find_alone, spans, wrap=wrap)
        # Anchored patterns: visit each place the (rare) anchor byte occurs.
        budget = max(64, 4 * size // RARE_EVERY)
        startswith = work.startswith
        lined = self._lined
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
                    elif wrap and find(b"\n", max(start, 0), min(start + len(pattern) + 1, size)) >= 0 \
                            and id(pattern) not in lined:
                        span = self._wrapped_at(work, size, pattern, offset, at)
                        if span is not None:
                            found.append(span)
                at = find(byte, at + 1, size)
            if visits > budget:
                common.append(anchor)
            else:
                spans += found
        if common:
            # This anchor is common here after all: search its patterns alone from now on, and
            # pick anchors again at the next feed.
            self._anchors = [anchor for anchor in self._anchors if all(anchor is not c for c in common)]
            moved: list[bytearray] = []
            for anchor in common:
                anchor[0] = 0
                moved += [pattern for pattern, _offset in anchor[1]]
            self._find_alone += moved
            self._search_alone(work, size, moved, spans, wrap=wrap)
            self._next_sample = 0
        return spans

    def _search_alone(self, work: bytes | bytearray, size: int, patterns: list[bytearray],
                      spans: list[tuple[int, int]], *, wrap: bool) -> None:
        """Each pattern's own find over the buffer, or over its copy with the line breaks taken out."""
        if not patterns:
            return
        if wrap and work.find(b"\n", 0, size) >= 0:
            lined = self._lined
            if not lined:  # the usual case: no multi-line value, every pattern may be wrapped
                self._search_joined(work, size, patterns, spans)
                return
            joined = [pattern for pattern in patterns if id(pattern) not in lined]
            if joined:
                self._search_joined(work, size, joined, spans)
                patterns = [pattern for pattern in patterns if id(pattern) in lined]
        if patterns:
            self._find_each(work, size, patterns, spans)

    def _find_each(self, work: bytes | bytearray, size: int, patterns: list[bytearray],
                   spans: list[tuple[int, int]]) -> None:
        finder = Finder(work, size)
        try:
            where = self._where
            for pattern in patterns:
                finder.find_all(pattern, where[id(pattern)], spans)
        finally:
            finder.close()

    def _search_joined(self, work: bytes | bytearray, size: int, patterns: list[bytearray],
                       spans: list[tuple[int, int]]) -> None:
        """Find patterns in work[:size] with every line break (\\n, \\r\\n) removed, and keep the
        matches that cross only seen-through breaks, in the buffer's own positions."""
        if isinstance(work, bytearray) and len(work) == size:
            flat = work  # bytearray.replace always makes a new bytearray, so this stays the caller's
        else:  # a copy of this step only (the buffer may run on past it), ours to zero
            with memoryview(work) as view:
                flat = bytearray(view[:size])
        if flat.find(b"\r") >= 0:
            crlf = flat.replace(b"\r\n", b"\n")
            if flat is not work:
                zero(flat)
            flat = crlf
        joined = flat.replace(b"\n", b"")
        if flat is not work:
            zero(flat)
        found: list[tuple[int, int]] = []
        self._find_each(joined, len(joined), patterns, found)
        zero(joined)
        if not found:
            return
        # Map back: the breaks in order, each with where it sits in the joined copy.
        found.sort()
        at_joined: list[int] = []   # position in the joined copy of the byte after each break
        starts: list[int] = []      # where each break starts in the buffer
        removed: list[int] = [0]    # bytes removed up to and including each break
        scan = 0
        for start, end in found:
            while True:
                newline = work.find(b"\n", scan, size)
                if newline < 0:
                    break
                first = newline - 1 if newline > scan and work[newline - 1] == 0x0D else newline
                if first - removed[-1] > end - 1:
                    break
                at_joined.append(first - removed[-1])
                starts.append(first)
                removed.append(removed[-1] + newline + 1 - first)
                scan = newline + 1
            before = bisect_right(at_joined, start)
            inside = bisect_right(at_joined, end - 1)
            if all(self._transparent(work, starts[k]) for k in range(before, inside)):
                spans.append((start + removed[before], end - 1 + removed[inside] + 1))

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
