"""What the masker must do to a whole stream, written as plainly as possible (and slowly).

The masker hides every byte covered by an occurrence of a pattern (`variants`) in any of three views
of the stream: the stream itself; the stream with its seen-through line breaks removed (the line
before the break is 16 to 1024 bytes of base64 characters only, or of hex digits and blanks only);
the stream with each JSON \\uXXXX escape written as json.dumps(ensure_ascii=False) writes its
character. Each maximal run of hidden bytes becomes one replacement. `held_start` says where a
streaming masker must stop emitting after it has seen `prefix`: the earliest place a match may still
start in any view, never inside an escape.
"""

from __future__ import annotations

import json

from runwrap.supervise.mask import variants

B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")
HEX_LINE = frozenset(b"0123456789abcdefABCDEF \t")
HEX = frozenset(b"0123456789abcdefABCDEF")


def patterns_of(values: list[bytes], *, hex: bool = False) -> list[bytes]:
    return [bytes(p) for v in values for p in (variants(v, hex=True) if hex else variants(v))]


def seen_through(stream: bytes, first: int) -> bool:
    """Whether the line break starting at stream[first] is seen through."""
    line = stream[stream.rfind(b"\n", 0, first) + 1:first]
    return 16 <= len(line) <= 1024 and (set(line) <= B64 or set(line) <= HEX_LINE)


def line_breaks(stream: bytes, *, open_end: bool = False) -> list[tuple[int, int]]:
    """(first, end) of every line break, \\n or \\r\\n; with open_end, a '\\r' ending the stream too."""
    found = [(i - 1 if i and stream[i - 1] == 13 else i, i + 1) for i, c in enumerate(stream) if c == 10]
    if open_end and stream.endswith(b"\r"):
        found.append((len(stream) - 1, len(stream)))
    return found


def joined(stream: bytes) -> tuple[bytes, list[int]]:
    """The stream without its seen-through line breaks, and where each byte of that came from."""
    drop: set[int] = set()
    for first, end in line_breaks(stream):
        if seen_through(stream, first):
            drop.update(range(first, end))
    where = [i for i in range(len(stream)) if i not in drop]
    return bytes(stream[i] for i in where), where


def json_u_decoded(stream: bytes, wanted: set[int], *, final: bool) -> tuple[bytes, list[tuple[int, int]], int | None]:
    """Every JSON \\uXXXX escape rewritten as json.dumps(ensure_ascii=False) writes its character
    (surrogate pairs joined, lone ones as themselves) when each byte of that occurs in `wanted`;
    nothing else changes. The view, each view byte's (start, end) in the stream, and where an escape
    that the end cuts short begins (unless final)."""
    out, spans, i, n = bytearray(), [], 0, len(stream)
    while i < n:
        starts = stream[i] == 0x5C and (i - len(stream[:i].rstrip(b"\\"))) % 2 == 0
        if starts and i + 1 == n and not final:
            return bytes(out), spans, i
        if starts and stream[i + 1:i + 2] == b"u":
            digits = stream[i + 2:i + 6]
            if set(digits) <= HEX and len(digits) < 4 and not final:
                return bytes(out), spans, i
            if len(digits) == 4 and set(digits) <= HEX:
                point, end = int(digits, 16), i + 6
                if 0xD800 <= point < 0xDC00:
                    after = stream[end:end + 6]
                    if not final and (b"\\u".startswith(after) or (after[:2] == b"\\u" and len(after) < 6
                                                                   and set(after[2:]) <= HEX)):
                        return bytes(out), spans, i
                    if len(after) == 6 and after[:2] == b"\\u" and set(after[2:]) <= HEX \
                            and 0xDC00 <= int(after[2:], 16) < 0xE000:
                        point = 0x10000 + ((point - 0xD800) << 10) + int(after[2:], 16) - 0xDC00
                        end += 6
                written = json.dumps(chr(point), ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass")
                if set(written) <= wanted:
                    out += written
                    spans += [(i, end)] * len(written)
                else:  # a character no pattern holds: left as it is
                    out += stream[i:end]
                    spans += [(k, k + 1) for k in range(i, end)]
                i = end
                continue
        out.append(stream[i])
        spans.append((i, i + 1))
        i += 1
    return bytes(out), spans, None


def occurrences(haystack: bytes, needle: bytes) -> list[int]:
    return [i for i in range(len(haystack) - len(needle) + 1) if haystack[i:i + len(needle)] == needle]


def coverage(patterns: list[bytes], stream: bytes) -> list[bool]:
    covered = [False] * len(stream)

    def mark(start: int, end: int) -> None:
        for k in range(start, end):
            covered[k] = True

    flat = [p for p in patterns if b"\n" not in p]
    for pattern in patterns:
        for at in occurrences(stream, pattern):
            mark(at, at + len(pattern))
    view, where = joined(stream)
    for pattern in flat:
        for at in occurrences(view, pattern):
            mark(where[at], where[at + len(pattern) - 1] + 1)
    view, spans, _ = json_u_decoded(stream, set(b"".join(patterns)), final=True)
    for pattern in patterns:
        for at in occurrences(view, pattern):
            mark(spans[at][0], spans[at + len(pattern) - 1][1])
    return covered


def render(data: bytes, covered: list[bool], upto: int, replacement: bytes = b"***") -> bytes:
    """data[:upto] with each maximal covered run as one replacement (a run may continue past upto)."""
    out = bytearray()
    for k in range(upto):
        if not covered[k]:
            out.append(data[k])
        elif k == 0 or not covered[k - 1]:
            out += replacement
    return bytes(out)


def masked_whole(values: list[bytes], stream: bytes, *, hex: bool = False) -> bytes:
    return render(stream, coverage(patterns_of(values, hex=hex), stream), len(stream))


def _tail(seq: bytes, patterns: list[bytes]) -> int:
    """Start of the longest tail of seq that is a proper prefix of some pattern (len(seq) if none)."""
    for k in range(len(seq)):
        rest = seq[k:]
        if any(len(p) > len(rest) and p.startswith(rest) for p in patterns):
            return k
    return len(seq)


def held_start(patterns: list[bytes], prefix: bytes) -> int:
    """Where a streaming masker that has been fed `prefix` (and not flushed) starts holding back."""
    n = len(prefix)
    if not patterns:
        return n  # nothing to mask, nothing to wait for
    cut = _tail(prefix, patterns)
    # Across seen-through breaks: the end of the stream back to the last break that is not.
    start, breaks = n, line_breaks(prefix, open_end=True)
    for first, end in reversed(breaks):
        if not seen_through(prefix, first):
            start = end
            break
        start = prefix.rfind(b"\n", 0, first) + 1  # the line before the break is in the tail too
    keep = [i for i in range(start, n) if not any(f <= i < e for f, e in breaks)]
    if keep:
        k = _tail(bytes(prefix[i] for i in keep), patterns)
        if k < len(keep):
            cut = min(cut, keep[k])
    view, spans, incomplete = json_u_decoded(prefix, set(b"".join(patterns)), final=False)
    k = _tail(view, patterns)
    if k < len(view):
        cut = min(cut, spans[k][0])
    if incomplete is not None:
        cut = min(cut, incomplete)
    for first, end in spans:  # never inside a \\u escape
        if first < cut < end:
            cut = first
    run = len(prefix[:cut]) - len(prefix[:cut].rstrip(b"\\"))
    return cut - 1 if run % 2 else cut  # nor right after the backslash that begins one


def json_inside(value: bytes) -> bytes:
    """The inside of a JSON string of value, as json.dumps writes it (ensure_ascii)."""
    return json.dumps(value.decode("utf-8", "surrogateescape"))[1:-1].encode()
