"""The lease: its end is reported with the child's status; a revocation stops the child and exits 125."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.polling import wait_for

from .supervisor_support import state


def test_the_end_is_reported_with_status_and_duration(procs, tmp_path: Path) -> None:
    done = procs.run(["--no-mask", "--lease", str(tmp_path)], ["sh", "-c", "sleep 0.2; exit 3"])
    assert done.returncode == 3
    end = json.loads((tmp_path / "end").read_text())
    assert end["exit"] == 3
    assert 150 <= end["duration_ms"] < 10_000


def test_a_death_by_signal_is_reported_as_128_plus_n(procs, tmp_path: Path) -> None:
    done = procs.run(["--no-mask", "--lease", str(tmp_path)], ["sh", "-c", "kill -TERM $$"])
    assert done.returncode == -15
    assert json.loads((tmp_path / "end").read_text())["exit"] == 143


def test_a_revocation_stops_even_a_term_trapping_child_within_a_second(procs, tmp_path: Path) -> None:
    report, reporter = procs.report()
    driver = procs.start(["--no-mask", "--kill-grace", "30", "--lease", str(tmp_path)],
                         [*reporter, "--trap", "TERM"])
    child = report.info()["pid"]
    started = time.monotonic()
    with open(tmp_path / "revoke", "w") as fifo:
        fifo.write("peer revoked by admin\n")
    assert driver.wait(timeout=10) == 125
    assert time.monotonic() - started < 5
    assert driver.stderr.read() == b"runwrap: access revoked by the listener: peer revoked by admin\n"
    assert report.signals() == ["SIGTERM"]
    wait_for(lambda: state(child) is None, what="the child to be gone")
    assert json.loads((tmp_path / "end").read_text())["exit"] == 128 + 9
