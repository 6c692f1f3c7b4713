"""The JSON view of the output: its \\u escapes rewritten, for the masker to search (see maskviews).

JSON may spell any character as \\uXXXX (either case), and encoders differ in which ones they spell
so: ensure_ascii escapes everything outside ASCII, Go escapes < > &, some escape everything. Rather
than list every mix as patterns, the masker rewrites each \\u escape in the output as
json.dumps(ensure_ascii=False) writes its character, and searches that for the value's one JSON form
(mask.variants). `decode_json` builds such a view of a buffer (`Decoded`), which maps every match in
it back to the bytes it came from; it is built only when the buffer holds a backslash, and this
module is loaded then (most output has none).

Hygiene: a view holds decoded output, so it lives in a bytearray that `Decoded.wipe()` zeroes (with
maskviews.zero); the positions it keeps are offsets, not data.
"""

from __future__ import annotations

from runwrap.supervise.maskviews import append_escape, bisect_right, zero

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

# Hex digit values by byte, -1 for anything else.
_HEXVAL = [-1] * 256
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEXVAL[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEXVAL[_c] = 10 + _i
del _i, _c

_FEW_BACKSLASHES = 32  # backslashes looked at one by one before a two-byte search takes over


class Decoded:
    """A buffer with its escapes decoded, and where each decoded byte came from.

    Escape i turned original bytes [o_starts[i], o_ends[i]) into view bytes [v_starts[i], v_ends[i]);
    everything between escapes was copied as it was. `incomplete` is where an escape that the buffer
    cuts short begins (it is not in the view), or -1.
    """

    __slots__ = ("incomplete", "o_ends", "o_starts", "v_ends", "v_starts", "view")

    def __init__(self) -> None:
        self.view = bytearray()
        self.o_starts: list[int] = []
        self.o_ends: list[int] = []
        self.v_starts: list[int] = []
        self.v_ends: list[int] = []
        self.incomplete = -1

    def _escape(self, o_start: int, o_end: int, point: int) -> None:
        """Record a \\u escape rewritten as the character (or short escape) it stands for."""
        self.o_starts.append(o_start)
        self.o_ends.append(o_end)
        self.v_starts.append(len(self.view))
        _append_point(self.view, point)
        self.v_ends.append(len(self.view))

    def _shift(self, k: int) -> int:
        """How far original positions are ahead of view positions after escape k-1."""
        return self.o_ends[k - 1] - self.v_ends[k - 1] if k else 0

    def start_of(self, v: int) -> int:
        """The original position view byte v comes from (an escape's first byte if it is decoded)."""
        k = bisect_right(self.v_starts, v)
        if k and v < self.v_ends[k - 1]:
            return self.o_starts[k - 1]
        return v + self._shift(k)

    def end_of(self, v_end: int) -> int:
        """The original position just past view bytes [.., v_end)."""
        v = v_end - 1
        k = bisect_right(self.v_starts, v)
        if k and v < self.v_ends[k - 1]:
            return self.o_ends[k - 1]
        return v + self._shift(k) + 1

    def escape_around(self, o: int) -> int:
        """The start of an escape that position o falls strictly inside, or -1."""
        k = bisect_right(self.o_starts, o) - 1
        if k >= 0 and self.o_starts[k] < o < self.o_ends[k]:
            return self.o_starts[k]
        return -1

    def wipe(self) -> None:
        zero(self.view)
        self.view.clear()


def decode_json(work: bytes | bytearray, size: int, wanted: bytearray, *, final: bool = False) -> Decoded | None:
    """work[:size] with JSON \\uXXXX escapes (either case, surrogate pairs joined) rewritten as
    json.dumps(ensure_ascii=False) would write their character: the character itself, or the short
    escape JSON requires (\\" \\\\ \\n ...). Every other byte, other escapes included, stays as it is,
    so the masker finds a value there by its one JSON form (mask.variants). A backslash that an odd
    run of backslashes precedes begins no escape. Unless `final` (the end of the stream), an escape
    that the end cuts short is left out and marked `incomplete`. None if nothing is rewritten.

    Only escapes of characters whose every byte occurs in some pattern (`wanted`, flags by byte value)
    are rewritten: no match can hold any other. When every pattern is ASCII (the usual case) those
    are \\u0000-\\u007f, found by one scan, so JSON full of other escapes costs no work per escape.
    """
    incomplete = -1 if final else _cut_short(work, size)
    end_of_view = size if incomplete < 0 else incomplete
    if any(wanted[0x80:]):
        starts: Iterable[int] = _u_escapes(work, end_of_view)
    else:
        starts = _ascii_u_escapes(work, end_of_view)
    dec = Decoded()
    dec.incomplete = incomplete
    copied = passed = 0
    with memoryview(work) as view:
        for at in starts:
            if at < passed:
                continue  # inside the escape just read (the low half of a pair)
            run = 0
            while at - run > 0 and work[at - run - 1] == 0x5C:
                run += 1
            if run & 1:  # an escaped backslash, then a plain 'u'
                continue
            point, end = _u_escape(work, at, end_of_view, True)
            if point < 0:
                continue
            passed = end
            if _wanted(point, wanted):
                dec.view += view[copied:at]
                dec._escape(at, end, point)
                copied = end
        if not dec.o_starts and incomplete < 0:
            return None  # nothing rewritten: the view would be the buffer
        dec.view += view[copied:end_of_view]
    return dec


def _u_escapes(work: bytes | bytearray, size: int) -> Iterator[int]:
    """Where each backslash followed by 'u' is, in order."""
    at = _next_u(work, 0, size)
    while at >= 0:
        if at + 1 < size:
            yield at
        at = _next_u(work, at + 1, size)


def _ascii_u_escapes(work: bytes | bytearray, size: int) -> Iterator[int]:
    """Where each \\u escape of an ASCII character (\\u0000 to \\u007f, either case) that ends by `size`
    is, in order."""
    find = work.find
    at = find(b"\\u00", 0, size)
    while at >= 0:
        if at + 5 < size and 0x30 <= work[at + 4] <= 0x37 and _HEXVAL[work[at + 5]] >= 0:
            yield at
        at = find(b"\\u00", at + 4, size)  # the next backslash is past "\\u00"


def _cut_short(work: bytes | bytearray, size: int) -> int:
    """Where an escape that the end of work[:size] cuts short begins (a last backslash, \\u with fewer
    than 4 digits, or a high surrogate whose low half may still come), or -1."""
    at = work.find(b"\\", max(size - 12, 0), size)
    while at >= 0:
        run = 0
        while at - run > 0 and work[at - run - 1] == 0x5C:
            run += 1
        if not run & 1:
            if at + 1 == size:
                return at
            if work[at + 1] == 0x75 and _u_escape(work, at, size, False)[0] == -2:
                return at
        at = work.find(b"\\", at + 1, size)
    return -1


def _wanted(point: int, wanted: bytearray) -> bool:
    """Whether every byte of the code point as _append_point writes it occurs in some pattern."""
    if point >= 0x80:
        lead = 0xC0 | point >> 6 if point < 0x800 else 0xE0 | point >> 12 if point < 0x10000 else 0xF0 | point >> 18
        if not wanted[lead]:
            return False
    written = bytearray()
    _append_point(written, point)
    return all(wanted[byte] for byte in written)


def _next_u(work: bytes | bytearray, start: int, size: int) -> int:
    """Where the next backslash followed by 'u' (or ending the buffer) is, from `start`; -1 if none.

    One memchr per backslash while backslashes are few; in output full of them (JSON logs, Windows
    paths) one two-byte search instead, which costs a pass but no Python per backslash.
    """
    find = work.find
    at = find(b"\\", start, size)
    for _ in range(_FEW_BACKSLASHES):
        if at < 0 or at + 1 == size or work[at + 1] == 0x75:
            return at
        at = find(b"\\", at + 1, size)
    if at < 0:
        return at
    found = find(b"\\u", at, size)
    if found < 0 and work[size - 1] == 0x5C:
        return size - 1
    return found


def _hex4(work: bytes | bytearray, at: int, size: int) -> int:
    """The value of 4 hex digits at work[at:], -1 if they are not hex, -2 if the buffer ends first."""
    value = 0
    for k in range(at, at + 4):
        if k >= size:
            return -2
        digit = _HEXVAL[work[k]]
        if digit < 0:
            return -1
        value = value << 4 | digit
    return value


def _u_escape(work: bytes | bytearray, at: int, size: int, final: bool) -> tuple[int, int]:
    """(code point, end) of the \\u escape at work[at]; (-1, 0) if it is none, (-2, 0) if cut short.

    A high surrogate followed by \\u and a low one is one escape; a lone surrogate stands as itself.
    At the end of the stream (`final`) nothing is cut short: what is there is all there is.
    """
    point = _hex4(work, at + 2, size)
    if point < 0:
        return (-1 if final else point), 0
    end = at + 6
    if 0xD800 <= point < 0xDC00:
        if end + 1 >= size:
            if not final and (end == size or work[end] == 0x5C):
                return -2, 0  # the low half may follow in the next read
        elif work[end] == 0x5C and work[end + 1] == 0x75:
            low = _hex4(work, end + 2, size)
            if low == -2 and not final:
                return -2, 0
            if 0xDC00 <= low < 0xE000:
                return 0x10000 + ((point - 0xD800) << 10) + (low - 0xDC00), end + 6
    return point, end


def _append_point(out: bytearray, point: int) -> None:
    """A code point as append_escape writes it: a required escape, or its UTF-8 (lone surrogates too,
    as WTF-8 does), written straight into `out` without making a str."""
    if point < 0x80:
        append_escape(out, bytes((point,)))
        return
    if point < 0x800:
        out.append(0xC0 | point >> 6)
    else:
        if point < 0x10000:
            out.append(0xE0 | point >> 12)
        else:
            out.append(0xF0 | point >> 18)
            out.append(0x80 | point >> 12 & 0x3F)
        out.append(0x80 | point >> 6 & 0x3F)
    out.append(0x80 | point & 0x3F)
