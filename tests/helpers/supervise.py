"""A tiny driver: build a `Launch` from argv and the environment, call `run()`, exit as runwrap would.

    supervise.py [--no-mask] [--mask-hex] [--timeout S] [--kill-grace S] [--secret NAME=FILE]...
                 [--env-file FILE] [--lease DIR] [--ready FILE] -- CMD [ARG...]

- The child's environment is this process's (or, with --env-file, exactly the NUL-separated
  NAME=value entries of FILE), plus each --secret: FILE's bytes, read straight into a wipeable
  buffer, injected as NAME and masked.
- --lease DIR: a lease whose revocation is a line written to the FIFO DIR/revoke and whose end is
  recorded as JSON in DIR/end.
- --ready FILE: write this process's pid to FILE once the secrets are loaded (for tests that look at
  the supervisor itself).
The CLI wraps the same function; this keeps the supervisor's tests independent of it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from runwrap.errors import RunwrapError
from runwrap.secret import Secret
from runwrap.supervise.command import resolve_command
from runwrap.supervise.hardening import harden
from runwrap.supervise.supervisor import Launch, run


class FifoLease:
    def __init__(self, folder: str) -> None:
        self.folder = folder
        path = os.path.join(folder, "revoke")
        if not os.path.exists(path):
            os.mkfifo(path, 0o600)
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def fileno(self) -> int:
        return self.fd

    def poll_revoked(self) -> str | None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return None
        return data.decode().strip() or None

    def end(self, exit_status: int, duration_ms: int) -> None:
        with open(os.path.join(self.folder, "end"), "w") as f:
            json.dump({"exit": exit_status, "duration_ms": duration_ms}, f)


def read_secret(path: str) -> Secret:
    """The file's bytes in a buffer nothing else copies."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        buf = bytearray(os.fstat(fd).st_size)
        view = memoryview(buf)
        got = 0
        while got < len(buf):
            n = os.readv(fd, [view[got:]])
            if n == 0:
                break
            got += n
        view.release()
        del buf[got:]
        return Secret.from_buffer(buf)
    finally:
        os.close(fd)


def read_env_file(path: str) -> dict[str, str | Secret]:
    with open(path, "rb") as f:
        data = f.read()
    env: dict[str, str | Secret] = {}
    for entry in data.split(b"\0"):
        if entry:
            name, _, value = entry.partition(b"=")
            env[os.fsdecode(name)] = os.fsdecode(value)
    return env


def main(argv: list[str]) -> int:
    harden()
    parser = argparse.ArgumentParser(prog="supervise")
    parser.add_argument("--no-mask", dest="mask", action="store_false")
    parser.add_argument("--mask-hex", action="store_true")
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--kill-grace", type=float, default=5.0)
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--env-file")
    parser.add_argument("--lease")
    parser.add_argument("--ready")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    env: dict[str, str | Secret] = read_env_file(args.env_file) if args.env_file else dict(os.environ)
    secrets = []
    for spec in args.secret:
        name, _, path = spec.partition("=")
        secret = read_secret(path)
        secrets.append(secret)
        env[name] = secret
    if args.ready:
        with open(args.ready + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(args.ready + ".tmp", args.ready)
    try:
        path = env.get("PATH")
        resolved = resolve_command(command[0], path if isinstance(path, str) else None)
        launch = Launch(argv=[resolved, *command[1:]], env=env, secrets=tuple(secrets), mask=args.mask,
                        timeout=args.timeout, kill_grace=args.kill_grace,
                        lease=FifoLease(args.lease) if args.lease else None,
                        mask_hex=args.mask_hex)
        return run(launch)
    except RunwrapError as exc:
        for secret in secrets:
            secret.wipe()
        sys.stderr.write(f"runwrap: {exc.message}\n")
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
