"""Nothing the child started outlives it: daemons, background jobs and pipelines get TERM, then KILL."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.polling import wait_for

from .supervisor_support import DRIVER, HELPERS, PYTHON, marked_pids

SCRIPT = r"""
for i in $(seq 100); do setsid sh -c 'sleep 1000 & exit 0'; done   # double-forked daemons
sleep 1000 &                                                        # a background job
sleep 1000 | sleep 1000 | cat &                                     # a pipeline
sh -c 'trap "" TERM; exec sleep 1000' &                             # ignores TERM: needs KILL
touch "$1/ready"
while [ ! -e "$1/go" ]; do sleep 0.02; done
exit 7
"""


def test_a_hundred_daemons_jobs_and_a_pipeline_are_all_ended_and_reaped(procs, tmp_path: Path) -> None:
    out = tmp_path / "witness.json"
    witness = subprocess.Popen(
        [PYTHON, str(HELPERS / "witness.py"), str(out), "--", *DRIVER, "--no-mask", "--kill-grace", "1",
         "--", "bash", "-c", SCRIPT, "script", str(tmp_path)],
        env=procs.env(), stdin=subprocess.DEVNULL)
    procs.started.append(witness)
    wait_for(lambda: (tmp_path / "ready").exists(), timeout=60, what="the script to start everything")
    running = marked_pids(procs.mark)
    # witness, driver, bash, 100 daemons, the job, 3 pipeline members, the TERM-ignoring sleep.
    assert len(running) >= 3 + 100 + 1 + 3 + 1
    started = time.monotonic()
    (tmp_path / "go").touch()
    assert witness.wait(timeout=60) == 0
    result = json.loads(out.read_text())
    assert result["left"] == []  # no survivor and no zombie was handed to the driver's parent
    assert result["status"] >> 8 == 7  # the child's status, after all that
    assert marked_pids(procs.mark) == set()
    assert time.monotonic() - started < 1 + 5  # the TERM-ignoring one costs the grace period, no more


def test_the_exit_waits_for_nothing_when_no_descendant_is_left(procs) -> None:
    started = time.monotonic()
    done = procs.run(["--no-mask", "--kill-grace", "30"], ["true"])
    assert done.returncode == 0
    assert time.monotonic() - started < 10
