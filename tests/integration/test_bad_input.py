"""Bad input gets one clear line before anything happens (issue 13, section 5): an invite's lifetime
is bounded, and an IPv6 listener names its address the way a user types it."""

from __future__ import annotations

import pytest

from runwrap.testing.listener import RunningListener


@pytest.mark.parametrize("ttl", ["0s", "500ms", "99999999999d", "8d"])
def test_an_invite_ttl_out_of_bounds_is_refused(listener: RunningListener, ttl: str) -> None:
    result = listener.run("invite", "--scope", "*", "--ttl", ttl, check=False)
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("runwrap: --ttl must be")


def test_an_ipv6_listener_prints_its_address_in_brackets() -> None:
    with RunningListener(args=["--tcp", "[::1]:0"]) as running:
        line = next(x for x in running.output().splitlines() if "listening on" in x)
        assert line.startswith("runwrap: listening on tcp:[::1]:"), line
        invite = running.invite(scope=["*"])
        assert invite["address"].startswith("tcp:[::1]:")
        running.run("pair", invite["code"], "--address", invite["address"])
        assert running.run("connect", "--domain", "github.com").stdout.count("alligator5") == 1
