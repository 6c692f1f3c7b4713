"""Run `run()` once per exit status in forked copies of this process (no interpreter start-up each
time), and print what each copy ended with: `[[wanted, "exit" | "signal", value], ...]` as JSON.

    statuses.py FIRST LAST            # the child is `sh -c 'exit N'`
    statuses.py --signals N,N,...     # the child is `sh -c 'kill -N $$'`
"""

from __future__ import annotations

import json
import os
import sys

from runwrap.supervise.command import resolve_command
from runwrap.supervise.supervisor import Launch, run


def ended(argv: list[str]) -> tuple[str, int]:
    pid = os.fork()
    if pid == 0:
        code = 125
        try:
            code = run(Launch(argv=argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, mask=False))
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "signal", os.WTERMSIG(status)
    return "exit", os.WEXITSTATUS(status)


def main(args: list[str]) -> None:
    sh = resolve_command("sh", os.environ.get("PATH"))
    if args[0] == "--signals":
        wanted = [int(n) for n in args[1].split(",")]
        runs = [(n, [sh, "-c", f"kill -{n} $$"]) for n in wanted]
    else:
        runs = [(n, [sh, "-c", f"exit {n}"]) for n in range(int(args[0]), int(args[1]) + 1)]
    print(json.dumps([[n, *ended(argv)] for n, argv in runs]))


if __name__ == "__main__":
    main(sys.argv[1:])
