"""The output as the masker also reads it: escapes decoded, and which line breaks are seen through.

A value can reach the output percent-encoded or JSON-escaped in more ways than patterns could list:
any character may be escaped or not, with upper- or lower-case hex, and JSON may spell any character
as \\uXXXX. So the masker does not list them: it decodes the output and searches the decoded text for
the plain value and its other forms. `decode_percent` and `decode_json` build such a decoded view of
a buffer (`Decoded`), which maps every match in it back to the bytes it came from. A view is built
only when the buffer holds its escape character ('%', '\\'); without it the view would be the buffer
itself, which the masker searches anyway.

Line breaks: an encoder that wraps its output (`base64 -w N`, `xxd -p`, `od`) puts a newline inside
an encoded value. The masker sees through a line break (\\n or \\r\\n) when the line before it looks
like such output: WRAP_MIN to WRAP_MAX characters, all base64 (`A-Z a-z 0-9 + / = - _`) or all hex
digits and blanks. `line_kinds` tells which of the two a piece of a line is.

Hygiene: a view holds decoded output, so it lives in a bytearray that `Decoded.wipe()` zeroes (with
`zero`, which is cheap enough to run on every read); the positions it keeps are offsets, not data.
Lines are judged in place, without copies.
"""

from __future__ import annotations

import re
from bisect import bisect_right

WRAP_MIN = 16    # lines shorter than this are text ("done", "42"), not wrapped encoding
WRAP_MAX = 1024  # longer than any encoder's line; also bounds what is examined per line

B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_"
HEX_LINE_CHARS = b"0123456789abcdefABCDEF \t"

# Hex digit values by byte, -1 for anything else.
_HEXVAL = [-1] * 256
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEXVAL[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEXVAL[_c] = 10 + _i
del _i, _c

# Searched with bounds, so a line is judged where it lies, without copying it; no value is in them.
_NOT_B64 = re.compile(rb"[^" + re.escape(B64_CHARS) + rb"]")
_NOT_HEX_LINE = re.compile(rb"[^0-9a-fA-F \t]")
_ZEROS = bytes(1 << 16)
_ZERO_VIEW = memoryview(_ZEROS)

_JSON_SIMPLE = {0x22: 0x22, 0x5C: 0x5C, 0x2F: 0x2F, 0x62: 0x08, 0x66: 0x0C, 0x6E: 0x0A, 0x72: 0x0D, 0x74: 0x09}


def line_kinds(data: bytes | bytearray, start: int, end: int) -> tuple[bool, bool]:
    """Whether data[start:end] is all base64 characters, and whether it is all hex digits and blanks."""
    return _NOT_B64.search(data, start, end) is None, _NOT_HEX_LINE.search(data, start, end) is None


def zero(buf: bytearray) -> None:
    """Overwrite a bytearray with zeros in place: a copy from a zero buffer, no allocation and no
    ctypes call (wipe_bytes costs microseconds a call, and buffers here are zeroed on every read)."""
    size = len(buf)
    for start in range(0, size, len(_ZEROS)):
        end = min(size, start + len(_ZEROS))
        buf[start:end] = _ZERO_VIEW[:end - start]


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

    def _escape(self, o_start: int, o_end: int, point: int, *, utf8: bool) -> None:
        """Record an escape decoded to one byte (utf8=False) or to a code point's UTF-8."""
        self.o_starts.append(o_start)
        self.o_ends.append(o_end)
        self.v_starts.append(len(self.view))
        if utf8:
            _append_utf8(self.view, point)
        else:
            self.view.append(point)
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


def decode_percent(work: bytes | bytearray, size: int, *, final: bool = False) -> Decoded | None:
    """work[:size] with every %XX (either case) decoded; None if it has no '%'. Unless `final` (the
    end of the stream), an escape cut short by the end is left out and marked `incomplete`."""
    find = work.find
    at = find(b"%", 0, size)
    if at < 0:
        return None
    dec = Decoded()
    copied = 0
    with memoryview(work) as view:
        while at >= 0:
            if at + 2 < size:
                high, low = _HEXVAL[work[at + 1]], _HEXVAL[work[at + 2]]
                if high >= 0 and low >= 0:
                    dec.view += view[copied:at]
                    dec._escape(at, at + 3, high << 4 | low, utf8=False)
                    copied = at + 3
                    at = find(b"%", copied, size)
                    continue
            elif not final and (at + 1 == size or _HEXVAL[work[at + 1]] >= 0):
                dec.incomplete = at  # '%' or '%X' at the very end: the next read may complete it
                break
            at = find(b"%", at + 1, size)
        dec.view += view[copied:size if dec.incomplete < 0 else dec.incomplete]
    return dec


def decode_json(work: bytes | bytearray, size: int, *, final: bool = False) -> Decoded | None:
    """work[:size] with JSON string escapes decoded (\\uXXXX to UTF-8, surrogate pairs joined);
    None if it has no backslash. A backslash that starts no valid escape is kept as it is; one cut
    short by the end is left out and marked `incomplete`, unless `final` (the end of the stream)."""
    find = work.find
    at = find(b"\\", 0, size)
    if at < 0:
        return None
    dec = Decoded()
    copied = 0
    with memoryview(work) as view:
        while at >= 0:
            if at + 1 >= size:
                if not final:
                    dec.incomplete = at
                break
            kind = work[at + 1]
            simple = _JSON_SIMPLE.get(kind)
            if simple is not None:
                dec.view += view[copied:at]
                dec._escape(at, at + 2, simple, utf8=False)
                copied = at + 2
                at = find(b"\\", copied, size)
                continue
            if kind == 0x75:  # 'u'
                point, end = _u_escape(work, at, size, final)
                if point == -2:
                    dec.incomplete = at
                    break
                if point >= 0:
                    dec.view += view[copied:at]
                    dec._escape(at, end, point, utf8=True)
                    copied = end
                    at = find(b"\\", copied, size)
                    continue
            at = find(b"\\", at + 1, size)
        dec.view += view[copied:size if dec.incomplete < 0 else dec.incomplete]
    return dec


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


def _append_utf8(out: bytearray, point: int) -> None:
    """UTF-8 of a code point (lone surrogates too, as WTF-8 does), written straight into `out`."""
    if point < 0x80:
        out.append(point)
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
