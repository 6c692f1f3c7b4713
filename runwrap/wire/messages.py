"""The plaintext inside a Noise transport message.

    u16 header length | header (UTF-8 JSON object with "type") | blob area

Secret values never go into the JSON header: a credential's fields travel in the blob area and the
header ("blobs") names each field's `[offset, length]` there. The receiver copies each field straight from a
memoryview of the decrypted message into a `Secret`'s bytearray and then wipes the message, so no
`str` copy of a secret is ever made on runwrap's side.
"""

from __future__ import annotations

from runwrap import json_codec
from runwrap.errors import ProtocolError
from runwrap.secret import Secret, wipe_bytes

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

_HEADER_LEN = 2  # the header's big-endian length

# Message types. Consumer -> listener: request, hold, lease_end. Listener -> consumer: credential,
# error, revoke. Control connections use plain JSON frames (see runwrap.listener.control).
REQUEST = "request"
HOLD = "hold"
LEASE_END = "lease_end"
CREDENTIAL = "credential"
ERROR = "error"
REVOKE = "revoke"
# A message too large for one Noise transport message (a kubeconfig or a certificate chain of more
# than ~64 KB) goes as `{"type": "parts", "length": L}` and then the L bytes of its plaintext, cut
# into transport messages; the receiver joins them and decodes the whole. At most MAX_ANSWER bytes.
PARTS = "parts"
MAX_ANSWER = 512 * 1024
CHANGED = "changed"    # listener -> consumer, only on a held session
ROTATED = "rotated"    # consumer -> listener: no running child holds the superseded values any more


def encode(header: Mapping[str, Any], blobs: Mapping[str, Secret | bytes | bytearray] | None = None) -> bytes:
    """Serialise a message. The caller wipes the returned bytes (`wipe_bytes`) once encrypted."""
    head = dict(header)
    buf = bytearray()
    if blobs:
        places: dict[str, list[int]] = {}
        for name, value in blobs.items():
            raw = value.buffer if isinstance(value, Secret) else value
            places[name] = [len(buf), len(raw)]
            buf += raw
        head["blobs"] = places
    encoded = json_codec.dumps(head, separators=json_codec.COMPACT).encode()
    if len(encoded) > 0xFFFF:
        raise ProtocolError("message header too large")
    out = bytearray(len(encoded).to_bytes(_HEADER_LEN, "big"))
    out += encoded
    out += buf
    result = bytes(out)
    wipe_bytes(out)
    wipe_bytes(buf)
    return result


def seal(plaintext: bytes, encrypt: Callable[[bytes], bytes], room: int) -> list[bytes]:
    """The transport messages that carry `plaintext` (`room`: the most one may hold); wipes the pieces.

    ProtocolError over MAX_ANSWER: callers check `len(plaintext)` first to say so in their own words.
    """
    if len(plaintext) <= room:
        return [encrypt(plaintext)]
    if len(plaintext) > MAX_ANSWER:
        raise ProtocolError(f"message too large to send ({len(plaintext)} > {MAX_ANSWER} bytes)")
    sealed = [encrypt(encode({"type": PARTS, "length": len(plaintext)}))]
    for start in range(0, len(plaintext), room):
        piece = plaintext[start : start + room]
        try:
            sealed.append(encrypt(piece))
        finally:
            wipe_bytes(piece)
    return sealed


def join(length: Any, receive: Callable[[], bytes]) -> bytes:
    """The whole plaintext announced by a `parts` header of `length`, from `receive`'d pieces."""
    if not isinstance(length, int) or isinstance(length, bool) or not 0 < length <= MAX_ANSWER:
        raise ProtocolError("a message in parts announces a length runwrap does not take")
    whole = bytearray()
    try:
        while len(whole) < length:
            piece = receive()
            try:
                if len(whole) + len(piece) > length:
                    raise ProtocolError("a message in parts runs past its announced length")
                whole += piece
            finally:
                wipe_bytes(piece)
        return bytes(whole)  # decode() wipes this copy
    finally:
        wipe_bytes(whole)


def decode(plaintext: bytes) -> tuple[dict[str, Any], dict[str, Secret]]:
    """Parse a message into its header and its secret fields; wipes `plaintext` afterwards."""
    try:
        if len(plaintext) < _HEADER_LEN:
            raise ProtocolError("message too short")
        head_len = int.from_bytes(plaintext[:_HEADER_LEN], "big")
        start = _HEADER_LEN + head_len
        if start > len(plaintext):
            raise ProtocolError("message header runs past the end")
        try:
            header = json_codec.loads(plaintext[_HEADER_LEN : start])
        except (ValueError, UnicodeDecodeError):
            raise ProtocolError("message header is not JSON") from None
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise ProtocolError("message header has no type")
        fields: dict[str, Secret] = {}
        places = header.pop("blobs", None) or {}
        if not isinstance(places, dict):
            raise ProtocolError("message fields are malformed")
        view = memoryview(plaintext)[start:]
        try:
            for name, place in places.items():
                if (not isinstance(place, list) or len(place) != 2
                        or not all(isinstance(n, int) and n >= 0 for n in place)
                        or place[0] + place[1] > len(view)):
                    raise ProtocolError("message field points outside the message")
                fields[str(name)] = Secret.from_buffer(bytearray(view[place[0] : place[0] + place[1]]))
        finally:
            view.release()
        return header, fields
    finally:
        wipe_bytes(plaintext)
