"""Time-based one-time codes (RFC 6238) from the seed a vault stores.

The listener sends the current code, never the seed: a provider puts what the vault holds into
`Item.totp_secret` (base32 text, an `otpauth://totp/...` URI, or Bitwarden's `steam://` form) and
the listener calls `totp()` on it when a request names the `totp` field. Decoded key bytes are
wiped after use; what `hmac` copies internally cannot be (see the docs on what cannot be wiped).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
from urllib.parse import parse_qs, unquote, urlsplit

from runwrap.errors import ProviderError
from runwrap.secret import Secret, wipe_bytes

ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
# Steam Guard codes: 5 characters from this alphabet instead of decimal digits.
_STEAM_ALPHABET = "23456789BCDFGHJKMNPQRTVWXY"


class InvalidSeed(ProviderError, ValueError):
    """The stored TOTP secret is not base32, an otpauth:// URI or steam://. Fix it in the vault item."""


def totp(
    seed: Secret | bytes | str,
    at: float | None = None,
    *,
    digits: int = 6,
    period: int = 30,
    algorithm: str = "sha1",
) -> str:
    """The code for time `at` (default now).

    `seed` as text (`str` or `Secret`) is base32, an otpauth URI (whose parameters then override
    the keyword arguments) or `steam://BASE32`; `seed` as `bytes` is the raw key.
    """
    steam = False
    owned = True  # a key we decoded ourselves is ours to wipe; the caller's bytes are not
    if isinstance(seed, bytes):
        key, owned = seed, False
    else:
        text = seed.reveal() if isinstance(seed, Secret) else seed
        text = text.strip()
        if text.lower().startswith("otpauth://"):
            key, digits, period, algorithm = parse_otpauth(text)
        elif text.lower().startswith("steam://"):
            key, steam = _b32decode(text[len("steam://") :]), True
        else:
            key = _b32decode(text)
    try:
        return _code(key, time.time() if at is None else at, digits, period, algorithm, steam)
    finally:
        if owned:
            wipe_bytes(key)


def parse_otpauth(uri: str) -> tuple[bytes, int, int, str]:
    """(key, digits, period, algorithm) from `otpauth://totp/LABEL?secret=...&digits=&period=&algorithm=`."""
    parts = urlsplit(uri.strip())
    if parts.scheme.lower() != "otpauth" or parts.netloc.lower() != "totp":
        raise InvalidSeed("the stored TOTP secret is not an otpauth://totp/ URI")
    params = parse_qs(parts.query)

    def param(name: str, default: str) -> str:
        values = params.get(name)
        return unquote(values[0]) if values else default

    secret = param("secret", "")
    if not secret:
        raise InvalidSeed("the stored otpauth:// URI has no secret parameter")
    try:
        digits = int(param("digits", "6"))
        period = int(param("period", "30"))
    except ValueError:
        raise InvalidSeed("the stored otpauth:// URI has a digits or period that is not a number") from None
    algorithm = param("algorithm", "sha1").lower()
    _check(digits, period, algorithm)
    return _b32decode(secret), digits, period, algorithm


def _b32decode(text: str) -> bytes:
    cleaned = "".join(text.split()).replace("-", "").upper().rstrip("=")
    if not cleaned:
        raise InvalidSeed("the stored TOTP secret is empty")
    try:
        return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (ValueError, TypeError):
        # The message never repeats the text: it is the seed.
        raise InvalidSeed("the stored TOTP secret is not valid base32") from None


def _check(digits: int, period: int, algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise InvalidSeed(f"TOTP algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    if not 1 <= digits <= 10:
        raise InvalidSeed(f"TOTP digits must be between 1 and 10, not {digits}")
    if period < 1:
        raise InvalidSeed(f"TOTP period must be a positive number of seconds, not {period}")


def _code(key: bytes, at: float, digits: int, period: int, algorithm: str, steam: bool) -> str:
    _check(digits, period, algorithm)
    counter = struct.pack(">Q", int(at // period))
    mac = hmac.new(key, counter, ALGORITHMS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    if steam:
        chars = []
        for _ in range(5):
            value, index = divmod(value, len(_STEAM_ALPHABET))
            chars.append(_STEAM_ALPHABET[index])
        return "".join(chars)
    return str(value % 10**digits).zfill(digits)
