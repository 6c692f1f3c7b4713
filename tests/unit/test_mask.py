"""The streaming masker: what is masked, how a stream is split, and what wipe() leaves behind."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Sequence
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runwrap.secret import Secret
from runwrap.supervise import mask
from runwrap.supervise.mask import Masker, variants

from .mask_reference import coverage, held_start, masked_whole, patterns_of, render

TOKEN = b"s3cr3t-Token_value.42"


# --- the whole-stream reference is tests/unit/mask_reference.py -----------------------------------

def reference(values: list[bytes], data: bytes) -> bytes:
    return masked_whole(values, data)


def held_tail(patterns: list[bytes], data: bytes) -> int:
    """Length of the longest tail of data that is a proper prefix of some pattern."""
    for size in range(len(data), 0, -1):
        if any(len(p) > size and p[:size] == data[-size:] for p in patterns):
            return size
    return 0


def masked(values: Sequence[bytes | bytearray | Secret], pieces: list[bytes]) -> bytes:
    masker = Masker(values)
    return b"".join(masker.feed(piece) for piece in pieces) + masker.flush()


# --- splitting the stream -----------------------------------------------------------------------

def test_a_secret_split_at_every_offset_is_masked_and_nothing_before_it_waits() -> None:
    stream = b"deploy: using " + TOKEN + b" now\n"
    start = stream.index(TOKEN)
    for cut in range(len(stream) + 1):
        masker = Masker([TOKEN])
        first = masker.feed(stream[:cut])
        rest = masker.feed(stream[cut:]) + masker.flush()
        assert first + rest == b"deploy: using *** now\n", cut
        if cut <= start:  # no partial secret yet: only a tail that could start a pattern may wait
            assert first == stream[:cut - held_tail([bytes(p) for p in variants(TOKEN)], stream[:cut])]
        elif cut < start + len(TOKEN):  # the secret is incomplete: all of it waits, nothing leaks
            assert first == stream[:start]


def test_a_byte_at_a_time_gives_the_same_output() -> None:
    stream = b"a" * 30 + TOKEN + b"\n" + base64.b64encode(b"xy" + TOKEN) + b"\n" + TOKEN[:-1] + b"!"
    whole = masked([TOKEN], [stream])
    assert masked([TOKEN], [stream[k:k + 1] for k in range(len(stream))]) == whole
    assert whole == reference([TOKEN], stream)
    assert TOKEN not in whole and whole.endswith(TOKEN[:-1] + b"!")


def test_feed_returns_at_once_what_cannot_be_a_secret_and_holds_only_a_prefix() -> None:
    masker = Masker([TOKEN])
    assert masker.feed(b"a line with no secret\n") == b"a line with no secret\n"
    assert masker.feed(b"almost: " + TOKEN[:7]) == b"almost: "
    assert masker.feed(b"X") == TOKEN[:7] + b"X"  # it was not the secret after all
    assert masker.feed(TOKEN[:-1]) == b""
    assert masker.feed(TOKEN[-1:] + b"\n") == b"***\n"
    assert masker.flush() == b""


def test_flush_emits_the_held_tail_and_starts_a_new_stream() -> None:
    masker = Masker([TOKEN])
    assert masker.feed(b"x " + TOKEN[:5]) == b"x "
    assert masker.flush() == TOKEN[:5]
    assert masker.feed(TOKEN[5:]) == TOKEN[5:]  # a new stream: the old tail does not complete it


def test_a_run_split_across_feeds_is_one_replacement() -> None:
    # "abcd" is complete before "cdef" is, and "cd" is held because it may start "cdef".
    masker = Masker([b"abcd", b"cdef"])
    assert masker.feed(b"<abcd") == b"<***"
    assert masker.feed(b"ef>") == b">"
    masker = Masker([b"abcd", b"cdef"])
    assert masker.feed(b"<abcd") + masker.feed(b"xx>") + masker.flush() == b"<***xx>"


def test_stale_bytes_in_the_scratch_buffer_are_never_searched() -> None:
    masker = Masker([TOKEN])
    assert masker.feed(TOKEN[:1]) == b""
    assert masker.feed(TOKEN[1:] + b" " + TOKEN[:1]) == b"*** "
    # The scratch buffer still holds the rest of the last step after the two bytes of this one.
    assert masker.feed(TOKEN[1:2]) == b""
    assert TOKEN in masker._scratch
    assert masker.flush() == TOKEN[:2]
    # At the end of the stream the search stops at the held bytes, not at the end of the hold buffer.
    masker = Masker([b"ab\x00\x00", b"a much longer value"])
    assert masker.feed(b"xab") == b"x"
    assert masker.flush() == b"ab"
    masker = Masker([b"Qb\x00\x00", b"a much longer value"])
    assert masker.feed(b"\x00" * 5000 + b"Qb") == b"\x00" * 5000  # long enough to make Q an anchor
    assert any(bytes(pattern) == b"Qb\x00\x00" for _byte, group in masker._anchors for pattern, _ in group)
    assert masker.flush() == b"Qb"


def test_input_types_and_replacement() -> None:
    masker = Masker([bytearray(TOKEN)], replacement=b"[masked]")
    out = masker.feed(memoryview(b"a " + TOKEN)) + masker.feed(bytearray(b" b")) + masker.flush()
    assert out == b"a [masked] b"
    assert isinstance(out, bytes)


# --- what is masked -----------------------------------------------------------------------------

@pytest.mark.parametrize("lead", [0, 1, 2])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_base64_at_each_alignment_inside_a_larger_encoding(lead: int, urlsafe: bool) -> None:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    value = b"\xfb\xff>?" + TOKEN  # bytes that put '+' and '/' (or '-' and '_') into the encoding
    assert set(b"+/" if not urlsafe else b"-_") <= set(encode(value))
    rng = random.Random(lead)
    for trial in range(40):
        before = rng.randbytes(3 * rng.randint(0, 4) + lead)
        after = rng.randbytes(rng.randint(0, 7))
        encoded = encode(before + value + after)
        # Character j carries bits 6j..6j+5 of the bytes: it is the value's alone when those bits
        # all lie inside the value, and exactly those characters are hidden.
        low, high = 8 * len(before), 8 * (len(before) + len(value))
        first = -(-low // 6)
        last = (high - 6) // 6
        expected = encoded[:first] + b"***" + encoded[last + 1:]
        assert masked([value], [encoded[:11], encoded[11:]]) == expected, trial


def test_base64_fragments_depend_only_on_the_value() -> None:
    value = TOKEN + b"\x00\xff"
    rng = random.Random(7)
    for lead in range(3):
        encodings = [base64.b64encode(rng.randbytes(lead) + value + rng.randbytes(2)) for _ in range(64)]
        common = [p for p in variants(value) if all(bytes(p) in e for e in encodings)]
        # the fragment for this alignment is in every encoding, and it is maximal
        best = max(common, key=len)
        position = encodings[0].index(best)
        assert len({e[position - 1:position] for e in encodings}) > 1 or position == 0
        end = position + len(best)
        assert len({e[end:end + 1] for e in encodings}) > 1
        assert len(best) >= len(value) * 4 // 3 - 3


def test_url_and_json_forms() -> None:
    value = 'p@ss w/rd "quoted" \\ tab\t✓ 😀'.encode()
    text = value.decode()
    forms = [quote(text).encode(), quote_plus(text).encode(), json.dumps(text)[1:-1].encode(),
             json.dumps(text, ensure_ascii=False)[1:-1].encode()]
    for form in forms:
        assert masked([value], [b'{"url": "https://x/?q=' + form + b'&z=1"}']) == b'{"url": "https://x/?q=***&z=1"}'


def test_encodings_are_only_added_where_they_differ() -> None:
    value = b"Abcdefghijklmnop0123"  # nothing to escape: the value and its base64 fragments only
    fragments = {base64.b64encode(bytes(lead) + value)[start:].rstrip(b"=")
                 for lead, start in ((0, 0), (1, 2), (2, 3))}
    got = [bytes(p) for p in variants(value)]
    assert len(got) == len(set(got))
    assert value in got
    assert len(got) == 1 + 3  # no percent, JSON or URL-safe duplicates
    for fragment in fragments:
        assert any(fragment.startswith(p) for p in got)


def test_unicode_and_binary_around_the_secret() -> None:
    binary_value = b"\x00\xff\xfe\x80secret\x01"
    stream = "héllo ✓ — ".encode() + TOKEN + b"\xff\xfe\x00" + binary_value + "日本語\n".encode()
    out = masked([TOKEN, binary_value], [stream[k:k + 3] for k in range(0, len(stream), 3)])
    assert out == "héllo ✓ — ".encode() + b"***" + b"\xff\xfe\x00" + b"***" + "日本語\n".encode()


def test_overlapping_nested_and_adjacent_values() -> None:
    values = [b"abcdefgh", b"efghijkl", b"password123", b"word12", b"WXYZ", b"wxyz"]
    assert masked(values, [b"[abcdefghijkl]"]) == b"[***]"        # overlapping
    assert masked(values, [b"[password123]"]) == b"[***]"         # nested
    assert masked(values, [b"[xword12x]"]) == b"[x***x]"          # the inner one alone
    assert masked(values, [b"[WXYZwxyz]"]) == b"[***]"            # adjacent: one run
    assert masked(values, [b"[WXYZ wxyz]"]) == b"[*** ***]"
    # a value that overlaps itself: every occurrence counts, not only every other one
    assert masked([b"abab"], [b"[ababab]"]) == b"[***]"
    assert masked([b"aaaa"], [b"[aaaaaaa", b"a]"]) == b"[***]"


def test_each_line_of_a_multiline_value() -> None:
    value = b"-----BEGIN KEY-----\r\nMIIEvQIBADANBg\nab\n-----END KEY-----\n"
    # a terminal turns \n into \r\n, so the value as a whole never appears; each line still does
    stream = value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert masked([value], [stream]) == b"***\r\n***\r\nab\r\n***\r\n"
    assert b"ab" not in [bytes(p) for p in variants(value)]  # lines under 4 bytes are not patterns


def test_short_values_are_not_masked_and_are_counted() -> None:
    masker = Masker([b"abc", b"", b"xy", Secret("q"), TOKEN])
    assert masker.short_values == 3  # an empty value has nothing to mask and is not counted
    assert masker.feed(b"abc xy q ") + masker.flush() == b"abc xy q "
    assert variants(b"abc") == []
    assert Masker([b"abcd"]).short_values == 0


def test_a_secret_object_is_copied_not_borrowed() -> None:
    secret = Secret(TOKEN)
    masker = Masker([secret])
    secret.wipe()
    assert masker.feed(b"<" + TOKEN + b">") + masker.flush() == b"<***>"


# --- the property: streamed equals whole -------------------------------------------------------

ALPHABET = b"ab\n\r\x00\xff%=/+\"\\u41 "
B64_RUN = b"QUJD" * 5  # a line this long of base64 characters is seen through at its break


@st.composite
def cases(draw: st.DrawFn, long: bool = False) -> tuple[list[bytes], bytes, list[int]]:
    alphabet = st.sampled_from(ALPHABET)
    values = draw(st.lists(st.binary(min_size=1, max_size=10).map(bytes) | st.lists(alphabet, min_size=1,
                           max_size=10).map(bytes), min_size=1, max_size=8))
    parts = draw(st.lists(st.lists(alphabet, max_size=12).map(bytes)
                          | st.sampled_from(values)
                          | st.sampled_from(values).map(lambda v: base64.b64encode(v))
                          | st.tuples(st.sampled_from(values), st.integers(1, 24), st.sampled_from([b"\n", b"\r\n"]))
                          .map(lambda t: wrapped(base64.b64encode(t[0]), t[1], t[2]))
                          | st.sampled_from(values).map(lambda v: quote(v, safe="").encode())
                          | st.sampled_from(values).map(lambda v: json_u(v))
                          | st.just(B64_RUN),
                          max_size=200 if long else 12))
    stream = b"".join(parts)
    if long:  # large enough to sample anchors: a long run of one byte, then the parts
        stream = b"a" * draw(st.integers(1024, 3000)) + stream
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    return values, stream, cuts


def wrapped(encoded: bytes, width: int, end: bytes) -> bytes:
    return b"".join(encoded[i:i + width] + end for i in range(0, len(encoded), width))


def json_u(value: bytes) -> bytes:
    """Every byte as a JSON \\u escape (a latin-1 reading: a stand-in for "escape everything")."""
    return b"".join(b"\\u%04X" % byte if byte & 1 else b"\\u%04x" % byte for byte in value)


def check_streaming(values: list[bytes], stream: bytes, cuts: list[int], *, reused_buffer: bool = False) -> None:
    patterns = patterns_of(values)
    covered = coverage(patterns, stream)
    masker = Masker(values)
    # As the supervisor reads: one buffer, reused, with the previous read's bytes (here: every
    # value, again and again) beyond what this read filled. feed(buf, n) must never look past n.
    stale = b"".join(values) * 4
    buf = bytearray((stale * (len(stream) // max(len(stale), 1) + 2))[: len(stream) + len(stale)])
    out = b""
    previous = 0
    for cut in [*cuts, len(stream)]:
        if reused_buffer:
            buf[: cut - previous] = stream[previous:cut]
            out += masker.feed(buf, cut - previous)
        else:
            out += masker.feed(stream[previous:cut])
        previous = cut
        # Everything before the earliest place a match may still start is out, masked as the whole
        # would be; only that tail waits.
        assert out == render(stream, covered, held_start(patterns, stream[:cut]))
    out += masker.flush()
    assert out == render(stream, covered, len(stream))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_streamed_output_equals_whole_stream_masking(case: tuple[list[bytes], bytes, list[int]]) -> None:
    check_streaming(*case)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(cases(long=True))
def test_streamed_output_equals_whole_stream_masking_with_anchors(
        case: tuple[list[bytes], bytes, list[int]]) -> None:
    check_streaming(*case)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(cases() | cases(long=True))
def test_a_reused_read_buffer_fed_with_its_length_gives_the_same_output(
        case: tuple[list[bytes], bytes, list[int]]) -> None:
    check_streaming(*case, reused_buffer=True)


def test_anchors_that_turn_out_common_fall_back_to_plain_search() -> None:
    # In the first chunk 'Q' is the value's rarest byte, so it becomes the anchor; the second chunk
    # is full of it, past the visit budget, and the value sits at its end.
    value = b"abQab"
    masker = Masker([value])
    first = b"ab" * 2000 + value + b"."
    second = (b"Q" * 5 + b".") * 1000 + value + b"."
    assert masker.feed(first) == b"ab" * 2000 + b"***."
    anchored = {bytes(pattern): byte for byte, group in masker._anchors for pattern, _offset in group}
    assert anchored[value] == ord("Q")
    assert not masker._find_alone
    assert masker.feed(second) == (b"Q" * 5 + b".") * 1000 + b"***."
    assert value in masker._find_alone


def test_both_held_tail_searches_agree() -> None:
    values = [bytes(random.Random(n).choices(b"abcd", k=6)) for n in range(12)]
    assert len(Masker(values[:2])._patterns) <= mask.FEW_PATTERNS < len(Masker(values)._patterns)
    rng = random.Random(3)
    for _ in range(200):
        stream = bytes(rng.choices(b"abcd", k=40))
        few = Masker(values[:2])
        many = Masker(values)
        for masker, used in ((few, values[:2]), (many, values)):
            patterns = [bytes(p) for v in used for p in variants(v)]
            assert masker._tail_start(stream, len(stream)) == len(stream) - held_tail(patterns, stream)


# --- hygiene ------------------------------------------------------------------------------------

def test_wipe_zeroes_patterns_held_bytes_and_tables() -> None:
    masker = Masker([TOKEN, Secret(b"another-secret-value")])
    patterns = list(masker._patterns)
    hold = masker._hold
    assert masker.feed(b"." * 2000 + b"x " + TOKEN[:9]) == b"." * 2000 + b"x "
    assert TOKEN[:9] in hold
    assert masker.feed(TOKEN[9:15]) == b""  # the held tail and the new bytes meet in the scratch buffer
    scratch = masker._scratch
    assert TOKEN[:15] in scratch
    assert masker._anchors or masker._find_alone
    masker.wipe()
    assert patterns and all(p == bytearray(len(p)) for p in patterns)
    assert hold == bytearray(len(hold))
    assert scratch == bytearray(len(scratch))
    assert masker._patterns == [] and masker._anchors == [] and masker._find_alone == []
    assert masker._by_first == [None] * 256
    with pytest.raises(RuntimeError):
        masker.feed(TOKEN)
    with pytest.raises(RuntimeError):
        masker.flush()


def test_wipe_zeroes_the_pair_table_of_many_patterns() -> None:
    masker = Masker([TOKEN + bytes([n]) * 3 for n in range(b"a"[0], b"f"[0])])
    assert len(masker._patterns) > mask.FEW_PATTERNS
    pairs = masker._pairs
    assert pairs[TOKEN[0] << 8 | TOKEN[1]] == 1
    masker.wipe()
    assert pairs == bytearray(len(pairs))


def test_held_bytes_do_not_linger_in_the_hold_buffer() -> None:
    masker = Masker([TOKEN])
    masker.feed(b"x " + TOKEN[:12])
    masker.feed(b"!")  # not the secret: the tail goes out and the hold is cleared
    assert masker._hold == bytearray(len(masker._hold))


def test_variants_are_bytearrays_and_repr_shows_no_value() -> None:
    assert all(type(p) is bytearray for p in variants(TOKEN + b"\n line two"))
    masker = Masker([TOKEN])
    masker.feed(TOKEN[:6])
    text = repr(masker)
    assert "s3cr" not in text and "czNj" not in text and "Masker(" in text


def test_release_lets_the_held_tail_go_while_the_stream_goes_on() -> None:
    masker = Masker([TOKEN])
    assert masker.feed(b"x " + TOKEN[:5]) == b"x "
    assert masker.held == 5
    assert masker.release() == TOKEN[:5]
    assert masker.held == 0
    assert masker.release() == b""
    # What was released is out: the rest of that value alone is no match, a later whole one is.
    assert masker.feed(TOKEN[5:] + b" " + TOKEN + b"\n") == TOKEN[5:] + b" ***\n"
    # A match already complete inside the held tail is still hidden when it is released.
    masker = Masker([b"abcd", b"abcdefgh"])
    assert masker.feed(b"<abcdef") == b"<"
    assert masker.release() == b"***ef"


def test_a_value_ending_in_cr_is_masked_before_a_newline() -> None:
    # `echo "$VALUE"` of a value read from a CRLF file: its '\r' and the echo's '\n' make a CRLF
    # that the search across line breaks takes out; the value must still be found as it is.
    for values, stream, masked in (([b"aaa\r"], b"aaa\r\n", b"***\n"),
                                   ([b"\x00", b"aaa\r"], b"QUJDQUJDaaa\r\n", b"QUJDQUJD***\n"),
                                   ([b"token-1\r"], b"a\ntoken-1\r\nb\n", b"a\n***\nb\n")):
        masker = Masker(values)
        assert masker.feed(stream) + masker.flush() == masked
        check_streaming(values, stream, [1])
        check_streaming(values, stream, [], reused_buffer=True)
