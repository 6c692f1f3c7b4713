"""Run a command as a child subreaper and report what it left behind.

    witness.py OUT -- CMD [ARG...]

Anything the command leaves running, or dead but unreaped, is reparented to this process. After
the command exits, OUT gets JSON: {"status": its wait status, "left": [[pid, state], ...]} —
the processes whose parent is now this one (zombies included, read before anything is reaped).
Then everything left is killed and reaped, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from runwrap.linux import PR_SET_CHILD_SUBREAPER, prctl
from runwrap.supervise.reaper import descendants


def orphans() -> list[list[object]]:
    me = os.getpid()
    left = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    line = f.read()
            except OSError:
                continue
            fields = line[line.rindex(b")") + 2:].split()
            if int(fields[1]) == me:
                left.append([int(entry.name), fields[0].decode()])
    return left


def main(out: str, command: list[str]) -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    proc = subprocess.Popen(command)
    # Not proc.wait(): that would reap only the command; orphans must stay visible until read.
    _, status = os.waitpid(proc.pid, 0)
    proc.returncode = status  # reaped here; Popen must not try again
    with open(out, "w") as f:
        json.dump({"status": status, "left": orphans()}, f)
    while descendants(os.getpid()):
        for pid in descendants(os.getpid()):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[3:] if sys.argv[2] == "--" else sys.argv[2:])
