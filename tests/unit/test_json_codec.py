"""runwrap.json_codec gives what the json module gives: the same values, the same text, the same errors."""

from __future__ import annotations

import _json
import ast
import inspect
import json
import json.decoder
import json.encoder
import json.scanner
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runwrap import json_codec

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
SEPARATORS = st.sampled_from([json_codec.COMPACT, json_codec.DEFAULT])
WHITESPACE = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0", max_size=3)  # the last three are not JSON's


def outcome(call: object, *args: object) -> tuple[str, str]:
    """What a call gave: ("value", repr) or (exception type, message); repr tells nan, -0.0 and 1 from 1.0."""
    assert callable(call)
    try:
        return "value", repr(call(*args))
    except Exception as exc:
        return type(exc).__name__, str(exc)


@given(VALUES, SEPARATORS)
def test_dumps_is_json_dumps(value: object, separators: tuple[str, str]) -> None:
    assert json_codec.dumps(value, separators=separators) == json.dumps(value, separators=separators)


@given(VALUES, WHITESPACE, WHITESPACE)
def test_loads_of_a_document_is_json_loads(value: object, before: str, after: str) -> None:
    text = before + json.dumps(value) + after
    assert outcome(json_codec.loads, text) == outcome(json.loads, text)
    data = text.encode("utf-8")
    assert outcome(json_codec.loads, data) == outcome(json.loads, data)


@given(st.binary(max_size=40))
def test_loads_of_any_bytes_is_json_loads(data: bytes) -> None:
    assert outcome(json_codec.loads, data) == outcome(json.loads, data)


@given(st.text(alphabet=st.sampled_from('{}[]",:0123456789.eE+-tfnrulsaINfiyN \t\n\r\\/u\x00\x1f\ufeffé'),
               max_size=30))
def test_loads_of_any_text_is_json_loads(text: str) -> None:
    assert outcome(json_codec.loads, text) == outcome(json.loads, text)
    data = text.encode("utf-8", "surrogatepass")
    assert outcome(json_codec.loads, data) == outcome(json.loads, data)


@given(VALUES, st.sampled_from(["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le",
                                "utf-32-be"]))
def test_loads_detects_the_encoding_as_json_does(value: object, encoding: str) -> None:
    data = json.dumps(value).encode(encoding)
    assert outcome(json_codec.loads, data) == outcome(json.loads, data)


@pytest.mark.parametrize("data", [
    b"", b" ", b"{", b"[1,]", b'{"a" 1}', b"{} x", b"[] []", b"01", b"1.", b"nul", b'"\x00"', b'"\\x"',
    b'"\xff"', b"\xff", b"\x00", b"\x00{", b"{\x00", b'{"a":1,}', b"\xef\xbb\xbf{}", "\ufeff{}", "{\ud800}",
    b'"\xed\xa0\x80"', b"NaN", b"-Infinity", b"Infinity", b"1e400", b"-0", b"[" * 100_000, b"\x0c{}",
])
def test_malformed_and_odd_input_gives_what_json_gives(data: bytes | str) -> None:
    assert outcome(json_codec.loads, data) == outcome(json.loads, data)


@pytest.mark.parametrize("data", [None, 12, memoryview(b"{}"), ["{}"]])
def test_what_is_not_text_gives_json_s_type_error(data: object) -> None:
    expected = outcome(json.loads, data)
    assert expected[0] == "TypeError"
    assert outcome(json_codec.loads, data) == expected


def test_malformed_input_raises_json_s_error_with_its_position() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        json_codec.loads(b'{"type": "request",}')
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(b'{"type": "request",}')
    # json's own words and position (3.13 says "Illegal trailing comma before end of object" at 18)
    assert (caught.value.msg, caught.value.pos) == (expected.value.msg, expected.value.pos)
    assert caught.value.pos in (18, 19)
    with pytest.raises(json.JSONDecodeError, match="Extra data"):
        json_codec.loads(b"{} {}")
    with pytest.raises(UnicodeDecodeError):
        json_codec.loads(b'{"a": "\xff"}')


@pytest.mark.parametrize("value", [
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "neg0": -0.0, "big": 10**30},
    "a string alone", "é\u2028\ud800\x00", [], {}, 0, True, None, (1, 2),
])
def test_dumps_of_odd_values_is_json_dumps(value: object) -> None:
    for separators in (json_codec.COMPACT, json_codec.DEFAULT):
        assert outcome(lambda v, s: json_codec.dumps(v, separators=s), value, separators) == outcome(
            lambda v, s: json.dumps(v, separators=s), value, separators)


def test_what_json_cannot_encode_raises_json_s_error() -> None:
    circular: list[object] = []
    circular.append(circular)
    for value in (circular, {"a": object()}, {(1, 2): "tuple key"}, b"bytes", {1, 2}):
        for separators in (json_codec.COMPACT, json_codec.DEFAULT):
            expected = outcome(lambda v, s: json.dumps(v, separators=s), value, separators)
            assert expected[0] != "value"
            assert outcome(lambda v, s: json_codec.dumps(v, separators=s), value, separators) == expected


# ---- the C accelerator as json_codec calls it: these fail loudly if `_json` or json's use of it changes ----

def test_json_itself_uses_the_same_c_scanner_and_encoder() -> None:
    assert json.scanner.c_make_scanner is _json.make_scanner
    assert json.encoder.c_make_encoder is _json.make_encoder
    assert json.encoder.encode_basestring_ascii is _json.encode_basestring_ascii
    assert json_codec._scan is not None


def test_the_fast_paths_run_without_falling_back() -> None:
    text = ' {"a": [1, 2.5, "é", null, true, NaN], "b": {}} \n'
    assert repr(json_codec._fast_loads(text)) == repr(json.loads(text))
    assert json_codec._fast_dumps({"a": [1, "é"]}, json_codec.COMPACT) == '{"a":[1,"\\u00e9"]}'
    with pytest.raises(ValueError):
        json_codec._fast_loads("{} x")


def test_the_decoder_context_is_json_decoder_s_defaults() -> None:
    decoder = json.decoder.JSONDecoder()
    for name in ("strict", "object_hook", "object_pairs_hook", "parse_float", "parse_int"):
        assert getattr(json_codec._Decoder, name) == getattr(decoder, name), name
    for constant in ("-Infinity", "Infinity", "NaN"):
        assert repr(json_codec._Decoder.parse_constant(constant)) == repr(decoder.parse_constant(constant))


def test_make_encoder_is_called_with_json_encoder_s_arguments() -> None:
    """json.encoder.JSONEncoder.iterencode's one-shot call, whose arguments json_codec passes in order."""
    tree = ast.parse(inspect.getsource(json.encoder.JSONEncoder.iterencode).strip().replace("\n    ", "\n"))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id == "c_make_encoder"]
    assert len(calls) == 1
    # 3.13 passes `indent`, a local holding self.indent as a string (its C encoder indents too)
    assert [ast.unparse(arg).replace("self.indent", "indent") for arg in calls[0].args] == [
        "markers", "self.default", "_encoder", "indent", "self.key_separator", "self.item_separator",
        "self.sort_keys", "self.skipkeys", "self.allow_nan"]
    encode = _json.make_encoder({}, json_codec._unencodable, _json.encode_basestring_ascii, None, ":", ",",
                                False, False, True)
    assert "".join(encode({"k": [1, 2.5, None]}, 0)) == '{"k":[1,2.5,null]}'
