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

import ctypes

_ONE = ctypes.c_char * 1  # any buffer's address, whatever its length: one cached type


def _load_memmem() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        memmem = ctypes.CDLL(None).memmem
    except (AttributeError, OSError):
        return None
    memmem.restype = ctypes.c_void_p
    memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
    return memmem


_MEMMEM = _load_memmem()


def address(buf: bytearray) -> int:
    """Where a non-empty bytearray's bytes are; valid while it is neither resized nor freed."""
    return ctypes.addressof(_ONE.from_buffer(buf))


class Finder:
    """Finds needles (bytearrays, with their `address`) in buffer[:size]."""

    __slots__ = ("_base", "_buffer", "_keep", "_size")

    def __init__(self, buffer: bytes | bytearray, size: int) -> None:
        self._buffer = buffer
        self._size = size
        self._keep: object = None
        self._base = 0
        if _MEMMEM is not None and size:
            if isinstance(buffer, bytearray):
                self._keep = _ONE.from_buffer(buffer)
                self._base = ctypes.addressof(self._keep)
            else:
                self._keep = ctypes.c_char_p(buffer)  # points into the bytes object, no copy
                self._base = ctypes.cast(self._keep, ctypes.c_void_p).value or 0

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
