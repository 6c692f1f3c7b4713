"""A child that reports what it saw: its identity and environment, then every signal it receives.

    reporter.py OUT [--trap SIG,...|all] [--exit-on SIG] [--stdout TEXT] [--stderr TEXT]
                    [--echo-env NAME] [--exit N | --die SIG | --wait]

OUT gets one JSON line first: pid, ppid, pgid, sid, which of fds 0-2 are terminals, and the
environment as hex-encoded bytes (so the test compares it byte for byte). Then one line
`signal NAME` per trapped signal, in the order they arrive (each line is one O_APPEND write).
--exit-on SIG: exit 0 once that signal has been recorded. The default ending is --wait: sleep
until a signal ends it. --echo-env NAME writes that variable's value to stdout (and stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

UNTRAPPABLE = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD}


def sig(name: str) -> signal.Signals:
    name = name.upper()
    return signal.Signals[name if name.startswith("SIG") else "SIG" + name]


def exec_env() -> dict[bytes, bytes]:
    """The environment exactly as execve gave it (Python may add LC_CTYPE to os.environ itself)."""
    with open("/proc/self/environ", "rb") as f:
        entries = f.read().split(b"\0")
    return dict(entry.partition(b"=")[::2] for entry in entries if entry)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--trap", default="")
    parser.add_argument("--exit-on")
    parser.add_argument("--stdout")
    parser.add_argument("--stderr")
    parser.add_argument("--echo-env")
    end = parser.add_mutually_exclusive_group()
    end.add_argument("--exit", type=int)
    end.add_argument("--die")
    end.add_argument("--wait", action="store_true")
    args = parser.parse_args()

    out = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    exit_on = sig(args.exit_on) if args.exit_on else None

    def record(signo: int, _frame: object) -> None:
        os.write(out, f"signal {signal.Signals(signo).name}\n".encode())
        if signo == exit_on:
            os._exit(0)

    if args.trap == "all":
        trapped = [s for s in signal.valid_signals() if s not in UNTRAPPABLE and s < signal.SIGRTMIN]
    else:
        trapped = [sig(name) for name in args.trap.split(",") if name]
    if exit_on is not None:
        trapped.append(exit_on)
    for signo in trapped:
        signal.signal(signo, record)

    report = {
        "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgrp(), "sid": os.getsid(0),
        "isatty": [os.isatty(fd) for fd in (0, 1, 2)],
        "env": {k.hex(): v.hex() for k, v in exec_env().items()},
    }
    os.write(out, (json.dumps(report) + "\n").encode())
    if args.echo_env:
        value = os.environb.get(args.echo_env.encode(), b"")
        os.write(1, b"out:" + value + b"\n")
        os.write(2, b"err:" + value + b"\n")
    if args.stdout:
        os.write(1, args.stdout.encode() + b"\n")
    if args.stderr:
        os.write(2, args.stderr.encode() + b"\n")
    if args.exit is not None:
        sys.exit(args.exit)
    if args.die:
        signo = sig(args.die)
        if signo != signal.SIGKILL:
            signal.signal(signo, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signo])
        os.kill(os.getpid(), signo)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
