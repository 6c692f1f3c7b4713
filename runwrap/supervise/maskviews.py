"""The output as the masker also reads it: which line breaks are seen through, and the pieces of
the JSON view (`mask_json`) that building the patterns needs too.

JSON may spell any character as \\uXXXX (either case); the masker rewrites each \\u escape in the
output as json.dumps(ensure_ascii=False) writes its character (`mask_json.decode_json`, loaded only
when the output holds a backslash) and searches that for the value's one JSON form, which
`append_escape` writes (mask.variants). The other escapes (percent-encoding, JSON's short ones) come
in few standard forms, so they are patterns.

Line breaks: an encoder that wraps its output (`base64 -w N`, `xxd -p`, `od`) puts a newline inside
an encoded value. The masker sees through a line break (\\n or \\r\\n) when the line before it looks
like such output: WRAP_MIN to WRAP_MAX characters, all base64 (`A-Z a-z 0-9 + / = - _`) or all hex
digits and blanks. `line_kinds` tells which of the two a piece of a line is.

Hygiene: a line is judged from a bytearray copy of it, zeroed at once (`zero`, which is cheap enough
to run on every read). No `re` (its import is ~5 ms of a launch): bytes' own find and translate do
the scans.
"""

from __future__ import annotations

WRAP_MIN = 16    # lines shorter than this are text ("done", "42"), not wrapped encoding
WRAP_MAX = 1024  # longer than any encoder's line; also bounds what is examined per line

B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_"
HEX_LINE_CHARS = b"0123456789abcdefABCDEF \t"

# A byte's kind for line_kinds: 1 if it is not a base64 character, plus 2 if it is not a hex digit or blank.
_KINDS = bytes((byte not in B64_CHARS) | (byte not in HEX_LINE_CHARS) << 1 for byte in range(256))
_ZEROS = bytes(1 << 16)
_ZERO_VIEW = memoryview(_ZEROS)

_JSON_SHORT = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r",
               0x09: b"\\t"}
_HEX_LOWER = b"0123456789abcdef"


def bisect_right(items: list[int], x: int) -> int:
    """bisect.bisect_right for a sorted list of ints: called once per match, so not worth importing
    `bisect` (~0.4 ms of every launch)."""
    low, high = 0, len(items)
    while low < high:
        middle = (low + high) // 2
        if x < items[middle]:
            high = middle
        else:
            low = middle + 1
    return low


def line_kinds(data: bytes | bytearray, start: int, end: int) -> tuple[bool, bool]:
    """Whether data[start:end] (0 <= start, at most WRAP_MAX bytes: a line) is all base64 characters,
    and whether it is all hex digits and blanks."""
    with memoryview(data) as view:
        line = bytearray(view[start:end])
    kinds = line.translate(_KINDS)  # no byte of the line in it, only its kind
    zero(line)
    return 1 not in kinds and 3 not in kinds, 2 not in kinds and 3 not in kinds


def zero(buf: bytearray) -> None:
    """Overwrite a bytearray with zeros in place: a copy from a zero buffer, no allocation and no
    ctypes call (wipe_bytes costs microseconds a call, and buffers here are zeroed on every read)."""
    size = len(buf)
    for start in range(0, size, len(_ZEROS)):
        end = min(size, start + len(_ZEROS))
        buf[start:end] = _ZERO_VIEW[:end - start]


def append_escape(out: bytearray, value: bytes | bytearray) -> None:
    """Append `value` as the inside of a JSON string with only the escapes JSON requires, the way
    json.dumps(ensure_ascii=False) writes it (bytes >= 0x80 pass through)."""
    for byte in value:
        short = _JSON_SHORT.get(byte)
        if short is not None:
            out += short
        elif byte < 0x20:
            out += b"\\u00"
            out.append(_HEX_LOWER[byte >> 4])
            out.append(_HEX_LOWER[byte & 15])
        else:
            out.append(byte)
