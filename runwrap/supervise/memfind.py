"""The masker's hot loop, every occurrence of a long needle in a buffer, through the C library's memmem.

Where no byte of a pattern is rare in the output (random base64, hex ids, a hex dump), the masker
searches each pattern over the whole read. CPython's `find` does that at ~0.2 ns a byte for a 20-50
byte needle in such text; glibc's memmem, which skips on pairs of bytes, is 2-4 times faster (about
1 us a call of overhead included). Without a memmem in the process (another C library, say) `Finder`
uses `find`, with the same results.

Only addresses cross into C: the needles stay in the masker's bytearrays (wiped there), the buffer in
its owner's. A `Finder` pins its buffer (a bytearray cannot be resized while exported), so it lives
for one search and is dropped at once.
"""

from __future__ import annotations

import sys

from runwrap.linux import ULong, VoidP, address, function, pin

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_BYTES_HEADER = sys.getsizeof(b"") - 1  # offset of ob_sval inside a PyBytesObject (as runwrap.secret)


def _load_memmem() -> Callable[[int, int, int, int], int | None] | None:
    try:
        return function("memmem", VoidP, VoidP, ULong, VoidP, ULong)
    except AttributeError:
        return None


_MEMMEM = _load_memmem()


class Finder:
    """Finds needles (bytearrays, with their `runwrap.linux.address`) in buffer[:size]."""

    __slots__ = ("_base", "_buffer", "_keep", "_size")

    def __init__(self, buffer: bytes | bytearray, size: int) -> None:
        self._buffer = buffer
        self._size = size
        self._keep: object = None
        self._base = 0
        if _MEMMEM is not None and size:
            if isinstance(buffer, bytearray):
                self._keep = pin(buffer)
                self._base = address(buffer)
            else:  # the bytes object's own payload, no copy (self._buffer keeps it alive)
                self._base = id(buffer) + _BYTES_HEADER

    def find_all(self, needle: bytearray, where: int, spans: list[tuple[int, int]]) -> None:
        """Append (start, end) of every occurrence of `needle` (whose address is `where`)."""
        length = len(needle)
        size = self._size
        if not self._base:
            find = self._buffer.find
            at = find(needle, 0, size)
            while at >= 0:
                spans.append((at, at + length))
                at = find(needle, at + 1, size)
            return
        base, memmem = self._base, _MEMMEM
        assert memmem is not None
        at = 0
        while size - at >= length:
            hit = memmem(base + at, size - at, where, length)
            if not hit:
                return
            at = hit - base
            spans.append((at, at + length))
            at += 1

    def close(self) -> None:
        """Release the buffer (its owner may resize it again)."""
        self._keep = None
        self._base = 0
