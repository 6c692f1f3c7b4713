"""maskviews' and mask_json's scans without `re`: `line_kinds` and the search for \\u escapes of ASCII characters
give what the regular expressions they replace gave (`[^base64]`, `[^0-9a-fA-F \\t]`, `\\\\u00[0-7][0-9a-fA-F]`),
at every byte value and every bound."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runwrap.supervise import mask_json
from runwrap.supervise.maskviews import B64_CHARS, WRAP_MAX, line_kinds

NOT_B64 = re.compile(rb"[^" + re.escape(B64_CHARS) + rb"]")
NOT_HEX_LINE = re.compile(rb"[^0-9a-fA-F \t]")
ASCII_U = re.compile(rb"\\u00[0-7][0-9a-fA-F]")


def expected_kinds(data: bytes | bytearray, start: int, end: int) -> tuple[bool, bool]:
    return NOT_B64.search(data, start, end) is None, NOT_HEX_LINE.search(data, start, end) is None


@pytest.mark.parametrize("byte", range(256))
def test_every_byte_value_alone_and_among_others(byte: int) -> None:
    one = bytes((byte,))
    b64 = one in B64_CHARS
    hexes = one in b"0123456789abcdefABCDEF \t"
    assert line_kinds(one, 0, 1) == (b64, hexes)
    for line in (b"ABCDEF0123456789" + one, one + b"0123456789abcdef", b"00 11\t" + one + b"ff"):
        assert line_kinds(line, 0, len(line)) == expected_kinds(line, 0, len(line))
        assert line_kinds(bytearray(line), 0, len(line)) == expected_kinds(line, 0, len(line))


def test_only_the_bytes_between_the_bounds_count() -> None:
    data = b"!!\n" + b"QUJD" * 8 + b"\r\n!!"
    assert line_kinds(data, 3, 35) == (True, False)
    assert line_kinds(data, 2, 35) == (False, False)  # the '\n' before it
    assert line_kinds(data, 3, 36) == (False, False)  # the '\r' after it
    assert line_kinds(data, 5, 5) == (True, True)  # nothing: nothing to rule either out
    hexes = bytearray(b"xx 0a 1B\tff xx")
    assert line_kinds(hexes, 2, 12) == (False, True)
    assert line_kinds(hexes, 3, 5) == (True, True)  # hex digits are base64 characters too


def test_a_longest_line_and_the_data_is_left_as_it_was() -> None:
    data = bytearray(b"a" * WRAP_MAX + b"=")
    assert line_kinds(data, 0, WRAP_MAX + 1) == (True, False)
    assert data == b"a" * WRAP_MAX + b"="  # the copy is zeroed, not the caller's bytes


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80) | st.lists(st.sampled_from(b"Az09+/=-_ \tfF\n!\x00\xff"), max_size=80).map(bytes),
       st.integers(0, 90), st.integers(0, 90))
def test_line_kinds_is_the_regular_expressions(data: bytes, start: int, end: int) -> None:
    start = min(start, end)
    assert line_kinds(data, start, end) == expected_kinds(data, start, end)


def ascii_u(data: bytes, size: int) -> list[int]:
    return list(mask_json._ascii_u_escapes(data, size))


@pytest.mark.parametrize(("data", "found"), [
    (b"\\u0041", [0]), (b"\\u007F", [0]), (b"\\u007f", [0]), (b"\\u0000", [0]),
    (b"\\u0080", []), (b"\\u0008", [0]), (b"\\u008g", []), (b"\\u007g", []), (b"\\U0041", []), (b"\\u0141", []),
    (b"\\u00\\u0041", [4]), (b"\\\\u0041", [1]),  # a backslash run is decode_json's to judge, not the scan's
    (b"x\\u0041\\u0042y\\u00e9\\u0043", [1, 7, 20]), (b"\\u004", []), (b"\\u00", []), (b"\\", []), (b"", []),
])
def test_ascii_escapes(data: bytes, found: list[int]) -> None:
    assert ascii_u(data, len(data)) == found
    assert list(mask_json._ascii_u_escapes(bytearray(data), len(data))) == found


def test_an_escape_counts_only_if_it_ends_by_the_bound() -> None:
    data = b"ab\\u0041cd"
    assert ascii_u(data, 8) == [2]
    assert ascii_u(data, 7) == []
    assert ascii_u(data, 2) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\\", b"u", b"0", b"00", b"7", b"8", b"f", b"F", b"g", b"\\u00", b"x"]),
                max_size=40).map(b"".join), st.integers(0, 80))
def test_the_ascii_escape_scan_is_the_regular_expression(data: bytes, size: int) -> None:
    size = min(size, len(data))
    assert ascii_u(data, size) == [match.start() for match in ASCII_U.finditer(data, 0, size)]


@given(st.lists(st.integers(-50, 50)), st.integers(-60, 60))
def test_bisect_right_is_the_standard_librarys(items: list[int], x: int) -> None:
    import bisect

    from runwrap.supervise.maskviews import bisect_right

    items.sort()
    assert bisect_right(items, x) == bisect.bisect_right(items, x)
