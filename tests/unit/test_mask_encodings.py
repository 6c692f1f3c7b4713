"""Every encoding the README claims, as the real encoders write it, across any split into reads.

Each property builds `before + encoding + after` where `before`/`after` is unrelated text, feeds it in
random pieces, and checks that exactly the bytes that depend on the value are hidden (as one `***`)
and everything else comes out byte for byte. Encodings come from the stdlib and, for some cases, from
the real tools (`base64 -w N`, `xxd -p`, `od`, `hexdump`) run as subprocesses.
"""

from __future__ import annotations

import base64
import json
import string
import subprocess
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runwrap.supervise import mask_json
from runwrap.supervise.mask import Masker

from .mask_reference import coverage, masked_whole, patterns_of

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALNUM = (string.ascii_letters + string.digits).encode()
# Unrelated text: no base64 or hex character, no escape character, so nothing in it can be masked.
TEXT = b" .,;:!?()[]{}<>|#*&@\n\t"

secrets = st.binary(min_size=8, max_size=40) | st.lists(st.sampled_from(ALNUM + b"!@#$%^&*()/+ -_.~"),
                                                        min_size=8, max_size=40).map(bytes)
texts = st.lists(st.sampled_from(TEXT), max_size=40).map(bytes)
padding = st.binary(max_size=40)  # bytes encoded together with the value, before and after it


def feed_in_pieces(masker: Masker, stream: bytes, cuts: list[int]) -> bytes:
    out, previous = b"", 0
    for cut in sorted(c % (len(stream) + 1) for c in cuts):
        out += masker.feed(stream[previous:cut])
        previous = cut
    return out + masker.feed(stream[previous:]) + masker.flush()


def hide(stream: bytes, start: int, end: int) -> bytes:
    return stream[:start] + b"***" + stream[end:]


def tool(argv: list[str], data: bytes) -> bytes:
    return subprocess.run(argv, input=data, capture_output=True, check=True, timeout=10).stdout


def wrap(encoded: bytes, width: int, end: bytes) -> bytes:
    return b"".join(encoded[i:i + width] + end for i in range(0, len(encoded), width)) if width else encoded


def char_span(wrapped_text: bytes, first: int, last: int) -> tuple[int, int]:
    """Where characters first..last (counting only non-line-break bytes) lie in wrapped text."""
    where = [i for i, byte in enumerate(wrapped_text) if byte not in b"\r\n"]
    return where[first], where[last] + 1


# --- base64 ---------------------------------------------------------------------------------------

@SETTINGS
@given(secret=secrets, before=padding, after=padding, width=st.sampled_from([0, 16, 19, 20, 60, 64, 76, 100]),
       crlf=st.booleans(), urlsafe=st.booleans(), text=st.tuples(texts, texts), cuts=st.lists(st.integers(0, 10**6)))
def test_base64_in_a_larger_encoding_wrapped_at_any_width(secret: bytes, before: bytes, after: bytes, width: int,
                                                          crlf: bool, urlsafe: bool, text: tuple[bytes, bytes],
                                                          cuts: list[int]) -> None:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    encoded = encode(before + secret + after)
    if urlsafe and width == 0:
        encoded = encoded.rstrip(b"=")  # unpadded, as in JWTs
    block = wrap(encoded, width, b"\r\n" if crlf else b"\n")
    stream = text[0] + block + text[1]
    # Character j carries bits 6j..6j+5: those lying wholly inside the value are hidden, with the
    # line breaks between them; every other byte comes out as it went in.
    first = -(-8 * len(before) // 6)
    last = (8 * (len(before) + len(secret)) - 6) // 6
    start, end = char_span(block, first, last)
    expected = text[0] + hide(block, start, end) + text[1]
    assume(masked_whole([secret], stream) == expected)  # the value's bytes may happen to recur in the padding
    assert feed_in_pieces(Masker([secret]), stream, cuts) == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=secrets, before=padding, width=st.sampled_from([16, 20, 76, 90]), cuts=st.lists(st.integers(0, 10**6)))
def test_gnu_base64_output(secret: bytes, before: bytes, width: int, cuts: list[int]) -> None:
    block = tool(["base64", "-w", str(width)], before + secret)
    stream = b"output:\n" + block + b"done\n"
    first = -(-8 * len(before) // 6)
    last = (8 * (len(before) + len(secret)) - 6) // 6
    start, end = char_span(block, first, last)
    expected = b"output:\n" + hide(block, start, end) + b"done\n"
    assume(masked_whole([secret], stream) == expected)
    assert feed_in_pieces(Masker([secret]), stream, cuts) == expected


def test_the_default_width_76_when_the_value_is_not_at_the_start() -> None:
    secret = b"correct-horse-battery-staple"
    for offset in range(0, 80):
        block = tool(["base64"], b"x" * offset + secret + b"\n")
        for cut in range(0, len(block), 7):
            masker = Masker([secret])
            out = masker.feed(block[:cut]) + masker.feed(block[cut:]) + masker.flush()
            assert out.count(b"***") == 1, (offset, cut)
            assert out == masked_whole([secret], block)


def test_short_lines_are_not_seen_through() -> None:
    # Documented limit: lines under 16 characters are text ("done", "42"), not wrapped base64.
    secret = b"correct-horse-battery-staple"
    block = wrap(base64.b64encode(secret), 8, b"\n")
    masker = Masker([secret])
    assert masker.feed(block) + masker.flush() == block


def test_a_line_of_text_is_not_held_for_what_the_next_line_may_bring() -> None:
    secret = b"correct-horse-battery-staple"
    fragment_start = base64.b64encode(secret)[:6]
    masker = Masker([secret])
    # A line that could start a wrapped encoding of the value is held only when it is
    # encoding-like: all base64 characters and at least 16 long.
    line = b"request done id=" + fragment_start + b"\n"
    assert masker.feed(line) == line
    masker = Masker([secret])
    line = b"A" * 20 + fragment_start + b"\n"
    assert masker.feed(line) == b"A" * 20
    assert masker.feed(b"x\n") + masker.flush() == fragment_start + b"\nx\n"


# --- percent-encoding -----------------------------------------------------------------------------

ENCODERS = {
    "quote": lambda v: quote(v).encode(),                          # Python's default: '/' kept
    "encodeURIComponent": lambda v: quote(v, safe="-_.!~*'()").encode(),
    "every reserved": lambda v: quote(v, safe="").encode(),
    "form": lambda v: quote_plus(v).encode(),                      # '+' for space
    "lower-case hex": lambda v: _lower_escapes(quote(v, safe="")),
    "lower-case form": lambda v: _lower_escapes(quote_plus(v, safe="-_.!~*'()")),
}


def _lower_escapes(text: str) -> bytes:
    out, i = [], 0
    while i < len(text):
        if text[i] == "%":
            out.append(text[i:i + 3].lower())
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out).encode()


@SETTINGS
@given(secret=secrets, encoder=st.sampled_from(sorted(ENCODERS)), text=st.tuples(texts, texts),
       cuts=st.lists(st.integers(0, 10**6)))
def test_percent_encoding_in_every_common_form(secret: bytes, encoder: str, text: tuple[bytes, bytes],
                                               cuts: list[int]) -> None:
    encoded = ENCODERS[encoder](secret)
    stream = text[0] + b"https://x.test/?q=" + encoded + b"&z=1" + text[1]
    expected = text[0] + b"https://x.test/?q=***&z=1" + text[1]
    assert feed_in_pieces(Masker([secret]), stream, cuts) == expected


# --- JSON -----------------------------------------------------------------------------------------

def _u_everything(value: str, upper: bool) -> bytes:
    units = value.encode("utf-16-be", "surrogatepass")
    return b"".join((b"\\u%04X" if upper else b"\\u%04x") % int.from_bytes(units[i:i + 2], "big")
                    for i in range(0, len(units), 2))


JSON_ENCODERS = {
    "ensure_ascii": lambda s: json.dumps(s)[1:-1].encode(),
    "utf-8": lambda s: json.dumps(s, ensure_ascii=False)[1:-1].encode(),
    "slash escaped": lambda s: json.dumps(s)[1:-1].replace("/", "\\/").encode(),
    "\\u everything": lambda s: _u_everything(s, upper=False),
    "\\U everything": lambda s: _u_everything(s, upper=True),
}

text_secrets = st.text(st.characters(blacklist_categories=("Cs",)), min_size=8, max_size=30) \
    | st.text(string.printable + "é✓😀/\\\"", min_size=8, max_size=30)


@SETTINGS
@given(secret=text_secrets, encoder=st.sampled_from(sorted(JSON_ENCODERS)), text=st.tuples(texts, texts),
       cuts=st.lists(st.integers(0, 10**6)))
def test_json_string_escaping_with_its_optional_escapes(secret: str, encoder: str, text: tuple[bytes, bytes],
                                                        cuts: list[int]) -> None:
    value = secret.encode()
    assume(len(value) >= 8)
    stream = text[0] + b'{"token": "' + JSON_ENCODERS[encoder](secret) + b'"}' + text[1]
    expected = text[0] + b'{"token": "***"}' + text[1]
    assert feed_in_pieces(Masker([value]), stream, cuts) == expected


# --- hex ------------------------------------------------------------------------------------------

HEX_TOOLS = {
    "xxd -p": (["xxd", "-p"], False),
    "xxd -p -u": (["xxd", "-p", "-u"], False),
    "xxd -p -c 8": (["xxd", "-p", "-c", "8"], False),
    "od -An -tx1 -v": (["od", "-An", "-tx1", "-v"], True),
    "hexdump -v -e": (["hexdump", "-v", "-e", '16/1 "%02x " "\\n"'], True),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=secrets, before=padding, after=padding, name=st.sampled_from(sorted(HEX_TOOLS)),
       cuts=st.lists(st.integers(0, 10**6)))
def test_hex_dumps_as_the_tools_print_them(secret: bytes, before: bytes, after: bytes, name: str,
                                          cuts: list[int]) -> None:
    argv, _spaced = HEX_TOOLS[name]
    block = tool(argv, before + secret + after)
    stream = b"dump:\n" + block + b"end\n"
    digits = [i for i, byte in enumerate(block) if chr(byte) in string.hexdigits]
    start, end = digits[2 * len(before)], digits[2 * (len(before) + len(secret)) - 1] + 1
    expected = b"dump:\n" + hide(block, start, end) + b"end\n"
    assume(masked_whole([secret], stream, hex=True) == expected)
    assert feed_in_pieces(Masker([secret], hex=True), stream, cuts) == expected


@SETTINGS
@given(secret=secrets, upper=st.booleans(), sep=st.sampled_from(["", " "]), text=st.tuples(texts, texts),
       cuts=st.lists(st.integers(0, 10**6)))
def test_hex_in_text(secret: bytes, upper: bool, sep: str, text: tuple[bytes, bytes], cuts: list[int]) -> None:
    encoded = secret.hex(sep) if sep else secret.hex()
    encoded_bytes = (encoded.upper() if upper else encoded).encode()
    stream = text[0] + b"key=" + encoded_bytes + b";" + text[1]
    assert feed_in_pieces(Masker([secret], hex=True), stream, cuts) == text[0] + b"key=***;" + text[1]


def test_hex_is_only_masked_when_asked_for() -> None:
    secret = b"correct-horse-battery-staple"
    assert Masker([secret]).feed(secret.hex().encode() + b"\n") == secret.hex().encode() + b"\n"


# --- nothing else changes ---------------------------------------------------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=secrets, stream=st.binary(max_size=400) | st.lists(st.sampled_from(b"%\\u0041aB+/=\n\r 9f"),
                                                                 max_size=400).map(bytes),
       cuts=st.lists(st.integers(0, 10**6)), hex=st.booleans())
def test_unrelated_output_passes_through_byte_for_byte(secret: bytes, stream: bytes, cuts: list[int],
                                                       hex: bool) -> None:
    assume(not any(coverage(patterns_of([secret], hex=hex), stream)))
    assert feed_in_pieces(Masker([secret], hex=hex), stream, cuts) == stream


# --- escapes cut short, held and released ------------------------------------------------------------

def test_an_escape_cut_short_by_a_read_waits_for_the_next() -> None:
    secret = b"p@ss+word/x"
    masker = Masker([secret])
    assert masker.feed(b"q=p%4") == b"q="  # "p%4" may begin "p%40ss%2Bword%2Fx"
    assert masker.feed(b"0ss%2Bword%2Fx&") == b"***&"
    masker = Masker([secret])
    assert masker.feed(b'"p\\u004') == b'"'
    assert masker.feed(b'0ss+word\\/x"') == b'***"'
    # Not the value after all: what waited comes out unchanged; a lone backslash at the end of the
    # stream is just a character, and a '%' that begins no form of the value does not wait.
    masker = Masker([secret])
    assert masker.feed(b"100%") == b"100%"
    assert masker.feed(b" C:\\") == b" C:"
    assert masker.feed(b"dir") == b"\\dir"
    assert masker.feed(b" \\") == b" "
    assert masker.flush() == b"\\"


def test_a_surrogate_pair_split_between_reads() -> None:
    secret = "key-😀-value".encode()
    escaped = json.dumps(secret.decode())[1:-1].encode()
    for cut in range(len(escaped) + 1):
        masker = Masker([secret])
        assert masker.feed(escaped[:cut]) + masker.feed(escaped[cut:]) + masker.flush() == b"***", cut


def test_a_read_never_ends_inside_an_escape() -> None:
    # "\\\\" is one escape (a backslash): had the first read emitted "x\\" and held the second
    # backslash, the next would parse "\\u0041bc-secret-1" as the value, which this stream does not hold.
    secret, stream = b"Abc-secret-1", b'"x\\\\u0041bc-secret-1"'
    whole = masked_whole([secret], stream)
    assert whole == stream
    for cut in range(len(stream) + 1):
        masker = Masker([secret])
        assert masker.feed(stream[:cut]) + masker.feed(stream[cut:]) + masker.flush() == whole, cut


# --- hygiene ----------------------------------------------------------------------------------------

def test_decoded_views_are_zeroed_after_each_read(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = b"correct-horse-battery-staple"
    made: list[mask_json.Decoded] = []
    real = mask_json.decode_json

    def keep(*args: object, **kwargs: object) -> mask_json.Decoded | None:
        view = real(*args, **kwargs)  # type: ignore[arg-type]
        if view is not None:
            made.append(view)
        return view

    monkeypatch.setattr("runwrap.supervise.mask_json.decode_json", keep)
    masker = Masker([secret])
    escaped = b"".join(b"\\u%04x" % byte for byte in secret)
    assert masker.feed(b'{"t": "' + escaped + b'"} {"u": "\\u00e9"}\n') == b'{"t": "***"} {"u": "\\u00e9"}\n'
    assert len(made) == 1
    assert not made[0].view  # zeroed (then emptied) before feed returned


@settings(max_examples=400)
@given(st.binary(max_size=900))
def test_the_patterns_base64_is_binascii_s(data: bytes) -> None:
    import binascii

    from runwrap.supervise.mask_patterns import base64 as patterns_base64

    assert patterns_base64(bytearray(data)) == binascii.b2a_base64(data, newline=False)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 766, 767, 768, 769, 770, 4096])
def test_the_patterns_base64_on_both_sides_of_its_python_limit(size: int) -> None:
    import binascii
    import os

    from runwrap.supervise.mask_patterns import base64 as patterns_base64

    data = os.urandom(size)
    assert patterns_base64(bytearray(data)) == binascii.b2a_base64(data, newline=False)
