"""The child's environment is exactly Launch.env, byte for byte; what execve cannot carry is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runwrap.errors import RunwrapError
from runwrap.secret import Secret
from runwrap.supervise.supervisor import Launch, run

TRICKY = {
    b"HOME": b"/home/someone",
    b"MULTI": b"line one\nline two\n",
    b"EQUALS": b"a=b=c==",
    b"UNICODE": "h\u00e9 \u2603 \U0001f511".encode(),
    b"NOT_UTF8": b"\xff\xfe raw",
    b"EMPTY": b"",
    b"SPACES": b"  padded  ",
}


def env_file(path: Path, entries: dict[bytes, bytes]) -> Path:
    path.write_bytes(b"".join(k + b"=" + v + b"\0" for k, v in entries.items()))
    return path


def test_exactly_the_given_environment_byte_for_byte(procs, tmp_path: Path) -> None:
    report, reporter = procs.report()
    secret = tmp_path / "secret"
    secret.write_bytes(b"s3cr3t=with\nnewline \xe2\x98\x83")
    envf = env_file(tmp_path / "env", TRICKY)
    # The driver's own environment has things that must not reach the child.
    parent = procs.env(AWS_SECRET_ACCESS_KEY="leak", BW_SESSION="leak", RUNWRAP_HOME="/leak",
                       SSH_AUTH_SOCK="/leak", LD_PRELOAD="")
    done = procs.run(["--no-mask", "--env-file", str(envf), "--secret", f"TOKEN={secret}"],
                     [*reporter, "--exit", "0"], env=parent)
    assert done.returncode == 0, done.stderr
    assert report.env() == {**TRICKY, b"TOKEN": secret.read_bytes()}


def test_a_nul_in_a_value_is_refused_before_the_child_starts(procs, tmp_path: Path) -> None:
    report, reporter = procs.report()
    secret = tmp_path / "secret"
    secret.write_bytes(b"before\0after")
    done = procs.run(["--secret", f"TOKEN={secret}"], [*reporter, "--exit", "0"])
    assert done.returncode == 125
    assert done.stderr == (b'runwrap: environment variable "TOKEN" (the environment) contains a NUL byte, which a '
                           b"variable cannot carry \xe2\x80\x94 remove the NUL from its value\n")
    assert report.lines() == []


def test_an_over_long_value_is_refused_before_the_child_starts(procs, tmp_path: Path) -> None:
    report, reporter = procs.report()
    secret = tmp_path / "secret"
    secret.write_bytes(b"x" * 200_000)
    done = procs.run(["--secret", f"TOKEN={secret}"], [*reporter, "--exit", "0"])
    assert done.returncode == 125
    assert b'"TOKEN" (the environment) is 200006 bytes as NAME=value' in done.stderr
    assert report.lines() == []


def test_refusal_happens_in_run_itself() -> None:
    with pytest.raises(RunwrapError, match="NUL"):
        run(Launch(argv=["/bin/true"], env={"A": "x\0y"}, mask=False))
    with pytest.raises(RunwrapError, match="cannot be an environment variable name"):
        run(Launch(argv=["/bin/true"], env={"A=B": "x"}, mask=False))
    big = Secret(b"y" * 131072)
    with pytest.raises(RunwrapError, match="MAX_ARG_STRLEN"):
        run(Launch(argv=["/bin/true"], env={"BIG": big}, mask=False))
    assert os.environ.get("BIG") is None
