"""TOTP codes against RFC 6238's own test vectors, and the forms a vault stores a seed in."""

from __future__ import annotations

import base64

import pytest

from runwrap.errors import ProviderError
from runwrap.secret import Secret
from runwrap.totp import _STEAM_ALPHABET, InvalidSeed, parse_otpauth, totp

# RFC 6238, appendix B: the keys are ASCII digits of length 20, 32 and 64.
KEYS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("at", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc6238_vectors_from_raw_keys(at: int, sha1: str, sha256: str, sha512: str) -> None:
    for algorithm, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        assert totp(KEYS[algorithm], at, digits=8, algorithm=algorithm) == expected


@pytest.mark.parametrize(("at", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc6238_vectors_through_otpauth_uris(at: int, sha1: str, sha256: str, sha512: str) -> None:
    for algorithm, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        seed = base64.b32encode(KEYS[algorithm]).decode().rstrip("=")
        uri = f"otpauth://totp/ACME:alice@example.com?secret={seed}&digits=8&algorithm={algorithm.upper()}"
        assert totp(uri, at) == expected


def test_example_seed_gives_known_codes() -> None:
    # Cross-checked with pyotp 2.12 when the test was written.
    assert totp("JBSWY3DPEHPK3PXP", 1700000000) == "324550"
    assert totp("JBSWY3DPEHPK3PXP", 0) == "282760"
    assert totp("JBSWY3DPEHPK3PXP", 1111111109) == "071271"


def test_secret_and_sloppy_base32_are_accepted() -> None:
    assert totp(Secret("JBSWY3DPEHPK3PXP"), 1700000000) == "324550"
    assert totp(" jbsw y3dp ehpk 3pxp ", 1700000000) == "324550"
    assert totp("JBSWY3DPEHPK3PXP====", 1700000000) == "324550"


def test_code_changes_at_period_boundaries_only() -> None:
    assert totp("JBSWY3DPEHPK3PXP", 1700000010) == totp("JBSWY3DPEHPK3PXP", 1700000039)
    assert totp("JBSWY3DPEHPK3PXP", 1700000039) != totp("JBSWY3DPEHPK3PXP", 1700000040)


def test_default_time_is_now() -> None:
    import time

    before = totp("JBSWY3DPEHPK3PXP", time.time())
    now = totp("JBSWY3DPEHPK3PXP")
    after = totp("JBSWY3DPEHPK3PXP", time.time())
    assert now in (before, after)
    assert len(now) == 6 and now.isdigit()


def test_parse_otpauth_reads_every_parameter() -> None:
    key, digits, period, algorithm = parse_otpauth(
        "otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXP&issuer=Example&digits=8&period=60&algorithm=SHA256"
    )
    assert key == base64.b32decode("JBSWY3DPEHPK3PXP")
    assert (digits, period, algorithm) == (8, 60, "sha256")
    assert parse_otpauth("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP")[1:] == (6, 30, "sha1")


def test_otpauth_parameters_override_keywords() -> None:
    uri = "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=8&period=60&algorithm=SHA256"
    assert totp(uri, 1700000000) == "71205722"  # pyotp agrees
    assert totp(uri, 1700000000, digits=6) == "71205722"


def test_steam_codes_are_five_letters_from_steams_alphabet() -> None:
    code = totp("steam://JBSWY3DPEHPK3PXP", 1700000000)
    assert len(code) == 5 and set(code) <= set(_STEAM_ALPHABET)
    assert code != totp("steam://JBSWY3DPEHPK3PXP", 1700000030)


@pytest.mark.parametrize(
    "bad",
    [
        "not base32 at all!",
        "",
        "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP",
        "otpauth://totp/x?issuer=nosecret",
        "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm=md5",
        "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=many",
        "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period=0",
    ],
)
def test_bad_seeds_raise_an_error_that_does_not_repeat_them(bad: str) -> None:
    with pytest.raises(InvalidSeed) as caught:
        totp(bad, 0)
    assert isinstance(caught.value, ProviderError) and isinstance(caught.value, ValueError)
    if "secret=" in bad:
        assert "JBSWY3DPEHPK3PXP" not in str(caught.value)
    elif bad:
        assert bad not in str(caught.value)


def test_callers_raw_key_is_not_wiped() -> None:
    key = bytes(KEYS["sha1"])
    totp(key, 59, digits=8)
    assert key == KEYS["sha1"]
