"""`listen --tcp HOST:PORT` as people write it (runwrap.wire.address)."""

from __future__ import annotations

import pytest

from runwrap.wire.address import parse_host_port


@pytest.mark.parametrize(("text", "parsed"), [
    ("127.0.0.1:7777", ("127.0.0.1", 7777)),
    ("localhost:0", ("localhost", 0)),
    (":7777", ("127.0.0.1", 7777)),
    ("[::1]:7777", ("::1", 7777)),
    (" 10.0.0.2:65535 ", ("10.0.0.2", 65535)),
])
def test_accepted(text, parsed):
    assert parse_host_port(text) == parsed


@pytest.mark.parametrize(("text", "says"), [
    ("7777", "not HOST:PORT"),
    ("host:", "not HOST:PORT"),
    ("host:http", "not HOST:PORT"),
    ("host:-1", "not HOST:PORT"),
    ("host:99999", "not a port: 99999"),
    ("host:٣٣", "not HOST:PORT"),  # digits, but not ASCII ones
    ("::1:7777", "[::1]:7777"),
    ("[::1:7777", "brackets"),
    ("[]:7777", "brackets"),
])
def test_refused_with_what_is_accepted(text, says):
    with pytest.raises(ValueError) as info:
        parse_host_port(text)
    assert says in str(info.value)
