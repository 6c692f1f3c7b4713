"""runwrap killed outright (SIGKILL, the OOM killer): its child must not live on with the secrets."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.polling import wait_for

from .supervisor_support import state

SECRET = b"correct-horse-battery-staple"


@pytest.mark.parametrize("mode", ["masked", "no-mask"])
def test_kill_9_of_runwrap_ends_a_child_that_traps_term_and_hup(procs, tmp_path: Path, mode: str) -> None:
    (tmp_path / "secret").write_bytes(SECRET)
    report, reporter = procs.report()
    flags = ["--secret", f"T={tmp_path / 'secret'}", *(["--no-mask"] if mode == "no-mask" else [])]
    driver = procs.start(flags, [*reporter, "--trap", "TERM,HUP,PIPE"])
    child = report.info()["pid"]
    assert state(child) not in (None, "Z")
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    wait_for(lambda: state(child) in (None, "Z"), timeout=10, what="the child to end with runwrap")
    assert report.signals() == []  # SIGKILL: nothing a trap could catch and ignore
