"""The exec path turns the garbage collector off while it starts (runwrap.__main__), and on again
before it supervises the child: a run can last hours, and what it makes must be collected. What
starting made is frozen first, so the collector's first passes do not walk it all again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROFILE = "credentials:\n  - domain: github.com\n    env:\n      GH_TOKEN: password\n"

# runwrap's own main(), with supervisor.run wrapped to say whether the collector is on at that point.
DRIVER = """
import gc, sys
from runwrap.supervise import supervisor
run = supervisor.run
def watched(launch):
    print("collecting while supervising:", gc.isenabled(), flush=True)
    print("start-up objects frozen:", gc.get_freeze_count() > 10000, flush=True)
    return run(launch)
supervisor.run = watched
from runwrap.__main__ import main
status = main(sys.argv[1:])
print("collecting after main:", gc.isenabled(), flush=True)
sys.exit(status)
"""


def test_the_collector_is_on_while_the_child_runs(listener, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(PROFILE)
    result = subprocess.run([sys.executable, "-c", DRIVER, str(profile), "--", "true"], env=listener.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("collecting while supervising: True\nstart-up objects frozen: True\n"
                             "collecting after main: True\n")
