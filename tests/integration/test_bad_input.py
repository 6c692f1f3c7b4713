"""Bad input gets one clear line before anything happens (issue 13, section 5): an invite's lifetime
is bounded, an IPv6 listener names its address the way a user types it, a duration the supervisor
cannot wait and an `env.set` value execve cannot carry are refused before anything is fetched, and a
TCP port that cannot be had is one line."""

from __future__ import annotations

import re
import socket
from pathlib import Path

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


def _requests(running: RunningListener) -> int:
    return sum(1 for e in running.audit_events() if e["event"] == "request")


def _profile(folder: Path, extra: str) -> Path:
    path = folder / "p.yaml"
    path.write_text(f"credentials:\n  - domain: github.com\n    env: {{PW: password}}\n{extra}")
    return path


@pytest.mark.parametrize("extra", ["timeout: 30d\n", "kill_grace: 25d\n", "timeout: 99999999999999d\n"])
def test_a_profile_duration_past_what_runwrap_can_wait_is_refused_before_any_fetch(
        listener: RunningListener, tmp_path: Path, extra: str) -> None:
    profile = _profile(tmp_path, extra)
    before = _requests(listener)
    check = listener.run("profiles", "check", str(profile), check=False)
    assert check.returncode == 1 and check.stderr.count("\n") == 1, check.stderr
    assert re.fullmatch(rf"runwrap: {re.escape(str(profile))}:4: \w+ \d+d is longer than 24d, the longest runwrap "
                        r"waits \(poll\(2\) takes at most 24.8 days\) — write at most 24d\n", check.stderr)
    ran = listener.run(str(profile), "--", "true", check=False)
    assert ran.returncode == 125 and ran.stderr == check.stderr
    assert _requests(listener) == before


@pytest.mark.parametrize("form", [["PROFILE"], ["run", "--domain", "github.com", "--env", "PW=password"]])
@pytest.mark.parametrize("option", [["--timeout", "25d"], ["--rate-wait", "51s"], ["--rate-wait", "soon"]])
def test_a_flag_duration_out_of_bounds_is_refused_at_parse_time(
        listener: RunningListener, tmp_path: Path, form: list[str], option: list[str]) -> None:
    argv = [str(_profile(tmp_path, "")) if word == "PROFILE" else word for word in form]
    before = _requests(listener)
    result = listener.run(*argv, *option, "--", "true", check=False)
    assert result.returncode == 125 and result.stderr.startswith(f"runwrap: {option[0]}: "), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert _requests(listener) == before


def test_a_bad_runwrap_rate_wait_is_refused_before_any_fetch(listener: RunningListener, tmp_path: Path) -> None:
    before = _requests(listener)
    result = listener.run(str(_profile(tmp_path, "")), "--", "true", check=False,
                          env={**listener.env, "RUNWRAP_RATE_WAIT": "2m"})
    assert result.returncode == 125, result.stderr
    assert result.stderr == ("runwrap: RUNWRAP_RATE_WAIT: 2m is longer than 50s, the longest runwrap takes here "
                             "(the listener ends a session that is idle for a minute) — use at most 50s\n")
    assert _requests(listener) == before


def test_an_env_set_value_execve_cannot_carry_is_refused_by_profiles_check_and_before_any_fetch(
        listener: RunningListener, tmp_path: Path) -> None:
    profile = _profile(tmp_path, f'env:\n  set:\n    BIG: "{"x" * 140_000}"\n')
    before = _requests(listener)
    check = listener.run("profiles", "check", str(profile), check=False)
    assert check.returncode == 1, check.stderr
    assert check.stderr == (f"runwrap: {profile}:6: BIG is 140000 bytes; Linux refuses a variable of 131072 bytes "
                            "or more as NAME=value (MAX_ARG_STRLEN) — make it shorter, or put it in a file the "
                            "command reads\n")
    ran = listener.run(str(profile), "--", "true", check=False)
    assert ran.returncode == 125 and ran.stderr == check.stderr
    assert _requests(listener) == before


def test_listen_on_a_tcp_port_in_use_is_one_line_and_status_1(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with RunningListener() as running:  # for its home and environment; a second listener is the test
            home = {**running.env, "RUNWRAP_HOME": str(tmp_path / "other")}
            result = running.run("listen", "--tcp", f"127.0.0.1:{port}", env=home, check=False, timeout=30)
            assert result.returncode == 1, result.stderr
            assert result.stderr == (f"runwrap: cannot listen on tcp:127.0.0.1:{port}: address already in use — pick "
                                     "another port (--tcp HOST:0 lets the system choose one)\n")
            assert [p for p in (tmp_path / "other").rglob("*") if p.is_socket()] == []  # no socket left behind
            big = running.run("listen", "--tcp", "127.0.0.1:99999", env=home, check=False, timeout=30)
            assert big.returncode == 2 and big.stderr == "runwrap: --tcp: not a port: 99999 (use 0 to 65535)\n"
    finally:
        taken.close()
