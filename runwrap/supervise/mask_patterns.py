"""The byte patterns of one injected value: the value and its common encodings (see mask).

`variants(value)` lists the byte patterns of one value: the value, its standard and
URL-safe base64 at the three alignments it can have inside a larger base64 stream (padded or not),
its percent-encodings as the common encoders write them (upper- and lower-case hex), its JSON string
form with the mandatory escapes (and with '/' escaped too), each line of a multi-line value, and
with `hex=True` its hex (contiguous and one space between bytes, lower and upper case). The masker
looks for them in three views of the output (see maskviews): the output itself; the output with the
line breaks of wrapped encodings taken out (base64 -w N, xxd -p, od); and the output with JSON's
\\uXXXX escapes rewritten (so any character may be \\u-escaped, in either case). Patterns shorter than
`MIN_LEN` bytes are not masked: they would eat ordinary output, and so values that short are only
counted (`Masker.short_values`) for a warning.
"""

from __future__ import annotations

from runwrap.secret import wipe_bytes
from runwrap.supervise.maskviews import append_escape

MIN_LEN = 4

_B64_URLSAFE = bytes.maketrans(b"+/", b"-_")
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_IN_PYTHON = 768  # longer values take binascii: the loop costs ~1 us per 3 bytes, binascii's import ~0.4 ms
_HEX_UPPER = b"0123456789ABCDEF"
_HEX_LOWER = b"0123456789abcdef"
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"  # quote never escapes these
_PERCENT_SAFE = tuple(frozenset(_UNRESERVED + extra) for extra in (b"/", b"", b"!*'()"))


# --- the patterns of one value ------------------------------------------------------------------

def variants(value: bytes | bytearray, *, hex: bool = False) -> list[bytearray]:
    """Every pattern masked for `value`, deduplicated; empty when the value is shorter than MIN_LEN.

    JSON's \\uXXXX escapes are not listed here: the masker rewrites them in the output instead (a
    view, see maskviews), so a pattern holds only the mandatory escapes. `hex` adds the value's hex,
    contiguous and with a space between bytes, in lower and upper case.
    """
    if len(value) < MIN_LEN:
        return []
    found = [bytearray(value)]
    fragments = _base64_fragments(value)
    found += fragments
    found += _percent_forms(value)
    escaped = _json_escape(value)
    found.append(escaped)
    for form in (escaped, *fragments):  # with every '/' escaped, as PHP and some others write JSON
        if 0x2F in form:
            found.append(form.replace(b"/", b"\\/"))
    if hex:
        found += _hex_forms(value)
    if b"\n" in value:
        for line in bytearray(value).split(b"\n"):
            if line.endswith(b"\r"):
                stripped = line[:-1]
                wipe_bytes(line)
                line = stripped
            found.append(line)
    return dedupe(found)


def dedupe(patterns: list[bytearray]) -> list[bytearray]:
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
    neighbours, so it is found wherever the value was encoded at that alignment, padded or not.
    """
    out: list[bytearray] = []
    size = len(value)
    for lead in range(3):
        total = lead + size
        padded = bytearray(lead + size + (-total) % 3)
        padded[lead:total] = value
        encoded = base64(padded)
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


def base64(data: bytearray) -> bytearray:
    """binascii.b2a_base64(data, newline=False), the caller's to wipe. Short values in Python, making
    no int above 255 (those are shared, never freed), so no freed object keeps a piece of the value."""
    if len(data) > _B64_IN_PYTHON:
        import binascii

        encoded = binascii.b2a_base64(data, newline=False)
        out = bytearray(encoded)
        wipe_bytes(encoded)
        return out
    alphabet = _B64_ALPHABET
    out = bytearray()
    append = out.append
    whole = len(data) - len(data) % 3
    for i in range(0, whole, 3):
        one, two, three = data[i], data[i + 1], data[i + 2]
        append(alphabet[one >> 2])
        append(alphabet[(one & 3) << 4 | two >> 4])
        append(alphabet[(two & 15) << 2 | three >> 6])
        append(alphabet[three & 63])
    if whole < len(data):  # one or two bytes left: '=' padding, as binascii writes it
        one = data[whole]
        two = data[whole + 1] if whole + 1 < len(data) else 0
        append(alphabet[one >> 2])
        append(alphabet[(one & 3) << 4 | two >> 4])
        append(alphabet[(two & 15) << 2] if whole + 1 < len(data) else 0x3D)
        append(0x3D)
    return out


def _hex_forms(value: bytes | bytearray) -> list[bytearray]:
    """xxd -p / bytes.hex() and od -An -tx1 / bytes.hex(' '), each in lower and upper case."""
    out: list[bytearray] = []
    for digits in (_HEX_LOWER, _HEX_UPPER):
        for sep in (False, True):
            form = bytearray()
            for byte in value:
                if sep and form:
                    form.append(0x20)
                form.append(digits[byte >> 4])
                form.append(digits[byte & 15])
            out.append(form)
    return out


def _percent_forms(value: bytes | bytearray) -> list[bytearray]:
    """Percent-encodings as the common encoders write them, each with upper- and lower-case hex:
    Python's quote ('/' kept), everything reserved escaped, JavaScript's encodeURIComponent, and
    each of those with '+' for space (forms, quote_plus)."""
    out: list[bytearray] = []
    for safe in _PERCENT_SAFE:
        for plus in (False, True):
            for digits in (_HEX_UPPER, _HEX_LOWER):
                form = bytearray()
                for byte in value:
                    if byte in safe:
                        form.append(byte)
                    elif byte == 0x20 and plus:
                        form.append(0x2B)
                    else:
                        form.append(0x25)
                        form.append(digits[byte >> 4])
                        form.append(digits[byte & 15])
                out.append(form)
    return out


def _json_escape(value: bytes | bytearray) -> bytearray:
    """The inside of a JSON string holding `value` with only the escapes JSON requires, as
    json.dumps(ensure_ascii=False) writes it; bytes >= 0x80 pass through, so any value has one."""
    out = bytearray()
    append_escape(out, value)
    return out


def escape_safe(work: bytes | bytearray, cut: int) -> int:
    """`cut`, or one byte earlier when it would follow a backslash that begins an escape: the next
    read must start where a JSON parse of the whole output would be (after "\\\\", not inside it)."""
    run = 0
    while cut - run > 0 and work[cut - run - 1] == 0x5C:
        run += 1
    return cut - 1 if run & 1 else cut


# --- the streaming masker -----------------------------------------------------------------------
