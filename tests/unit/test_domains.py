"""normalize_domain skips the IDNA codec for ASCII names (its import costs ~1 ms of every launch):
the result must be what the codec would give, for names it accepts and names it refuses."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runwrap.credential import normalize_domain

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def through_the_codec(domain: str) -> str:
    """normalize_domain as it was: every name through the IDNA codec."""
    host = domain.strip().rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"not a domain name: {domain!r}") from exc
    if not host or len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise ValueError(f"not a domain name: {domain!r}")
    return host


def outcome(normalize: object, domain: str) -> str:
    try:
        return str(normalize(domain))  # type: ignore[operator]
    except ValueError:
        return "<refused>"


NAMES = ["github.com", "API.GitHub.com.", " example.com ", "xn--bcher-kva.example", "a..b", ".a", "a" * 63 + ".com",
         "a" * 64 + ".com", ("a" * 63 + ".") * 4 + "com", "-a.com", "a_b.com", "", ".", "münchen.de", "bücher.example"]


@pytest.mark.parametrize("domain", NAMES)
def test_the_same_as_through_the_codec(domain: str) -> None:
    assert outcome(normalize_domain, domain) == outcome(through_the_codec, domain)


@given(st.text(alphabet=st.sampled_from("aZ09_-. é"), max_size=80))
def test_the_same_as_through_the_codec_for_any_name(domain: str) -> None:
    assert outcome(normalize_domain, domain) == outcome(through_the_codec, domain)


def test_an_ascii_name_does_not_load_the_codec() -> None:
    script = ("import sys\nfrom runwrap.credential import Query\nQuery(domain='api.github.com')\n"
              "print('encodings.idna' in sys.modules)\n")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert loaded == "False\n"


def test_a_newline_inside_a_name_is_refused() -> None:
    # The old label regex ended in `$`, which also matches before a final newline: "a\n.com" passed.
    with pytest.raises(ValueError, match="not a domain name"):
        normalize_domain("a\n.com")
