"""JSON for the exec path, straight from CPython's C accelerator `_json`.

`json` itself is the same C code behind ~7 ms of imports (json.decoder imports `re` for two
whitespace patterns). `loads` and `dumps` call `_json`'s scanner and encoder as `json.loads` and
`json.dumps` do, so the values and the bytes are the same; only the whitespace around a document and
the choice of encoding are done here with str methods. Whatever the fast path does not take (a BOM,
UTF-16/32, malformed input, a value it cannot encode) goes to the `json` module, so every error is
json's own (`json.JSONDecodeError`, a ValueError; TypeError for an unencodable value). Without `_json`
(another Python) everything goes to `json`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: this is on the exec path
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"  # json.decoder.WHITESPACE: the only characters allowed around a document
COMPACT = (",", ":")
DEFAULT = (", ", ": ")


class _Decoder:
    """What `_json.make_scanner` reads off a `json.JSONDecoder()`: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _scanner() -> _json.make_scanner | None:
    """The C scanner, which reads those six attributes (json.decoder passes it a JSONDecoder); None if
    this Python's `_json` wants something else (tests/unit/test_json_codec.py then fails loudly)."""
    try:
        return _json.make_scanner(_Decoder())  # type: ignore[arg-type]
    except (AttributeError, TypeError):  # _json is None, or not the one this was written against
        return None


_scan = _scanner()


def _fast_loads(text: str) -> Any:
    """`json.loads(text)` for a str, through the C scanner; ValueError (any message) if it is not JSON."""
    assert _scan is not None
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError("Expecting value") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError("Extra data")
    return value


def loads(data: bytes | bytearray | str) -> Any:
    """`json.loads(data)`: the same value, or the same exception."""
    if _scan is not None:
        try:
            if isinstance(data, str):
                if not data.startswith("\ufeff"):  # json refuses a BOM in a str
                    return _fast_loads(data)
            # json.detect_encoding says UTF-8 exactly when the first byte is ASCII and not NUL and the
            # second (if any) is not NUL: every BOM and UTF-16/32 text starts otherwise.
            elif isinstance(data, (bytes, bytearray)) and data[:1] and 0 < data[0] < 0x80 and (
                    len(data) < 2 or data[1]):
                return _fast_loads(data.decode("utf-8", "surrogatepass"))
        except (ValueError, RecursionError):
            pass  # json says what is wrong, in its own words (a JSONDecodeError with the position)
    import json

    return json.loads(data)


def _fast_dumps(value: object, separators: tuple[str, str]) -> str:
    """`json.dumps(value, separators=separators)` through the C encoder (json.dumps' own one-shot path)."""
    assert _json is not None
    item_separator, key_separator = separators
    # make_encoder(markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys,
    # allow_nan): json.encoder.JSONEncoder.iterencode's call for the defaults. The markers (circular
    # references) are per call.
    encode = _json.make_encoder({}, _unencodable, _json.encode_basestring_ascii, None, key_separator,
                                item_separator, False, False, True)
    return "".join(encode(value, 0))


def _unencodable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: object, *, separators: tuple[str, str] = DEFAULT) -> str:
    """`json.dumps(value, separators=separators)` (ASCII, keys in their order): the same text or error."""
    if _json is not None:
        try:
            return _fast_dumps(value, separators)
        except (ValueError, TypeError, RecursionError):
            pass  # json raises it again, with its own message
    import json

    return json.dumps(value, separators=separators)
