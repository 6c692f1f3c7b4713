"""A tiny driver: build a `Launch` from argv and the environment, call `run()`, exit as runwrap would.

    supervise.py [--no-mask] [--mask-hex] [--timeout S] [--kill-grace S] [--secret NAME=FILE]...
                 [--file NAME=FILE]... [--env-file FILE] [--lease DIR] [--ready FILE]
                 [--on-change MODE] [--restart-limit N] [--backoff S] -- CMD [ARG...]

- The child's environment is this process's (or, with --env-file, exactly the NUL-separated
  NAME=value entries of FILE), plus each --secret: FILE's bytes, read straight into a wipeable
  buffer, injected as NAME and masked.
- --file NAME=FILE: FILE's bytes as a secret file (a memfd, mode 0400); NAME holds its /dev/fd path,
  and the content is masked as one value.
- --lease DIR: a lease fed through the FIFO DIR/revoke, one line at a time: `change NAME=FILE ...`
  pushes a change (each NAME, a --secret or --file one, gets FILE's bytes; the others stay), any
  other line is a revocation with that reason. Each ROTATED is a line `SEQ` appended to
  DIR/rotated; the end is recorded as JSON in DIR/end.
- --on-change restart|signal:NAME|exit|none, with --restart-limit N and --backoff S (the first
  backoff; the window stays a minute) for tests that cannot wait for the real ones.
- --ready FILE: write this process's pid to FILE once the secrets are loaded (for tests that look at
  the supervisor itself).
The CLI wraps the same function; this keeps the supervisor's tests independent of it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from runwrap.errors import RunwrapError
from runwrap.secret import Secret
from runwrap.supervise.command import resolve_command
from runwrap.supervise.fileset import FileSet
from runwrap.supervise.hardening import harden
from runwrap.supervise.launch import OnChange, Revoked, Update
from runwrap.supervise.supervisor import Launch, run


class FifoLease:
    """The test lease: revocations and changes come as lines on a FIFO (see the module docstring)."""

    def __init__(self, folder: str, env: dict[str, str | Secret] | None = None,
                 values: dict[str, Secret] | None = None, files: dict[str, str] | None = None) -> None:
        self.folder = folder
        path = os.path.join(folder, "revoke")
        if not os.path.exists(path):
            os.mkfifo(path, 0o600)
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.base = {k: v for k, v in (env or {}).items() if isinstance(v, str)}  # the environment but secrets
        self.values = dict(values or {})  # every --secret and --file value now: variable -> value
        self.files = dict(files or {})  # --file variable -> its path
        self.seq = 0

    def fileno(self) -> int:
        return self.fd

    def _line(self) -> str:
        # One line per poll, a byte at a time: what follows stays in the FIFO, which stays readable.
        line = b""
        while not line.endswith(b"\n"):
            try:
                byte = os.read(self.fd, 1)
            except BlockingIOError:
                break
            if not byte:
                break
            line += byte
        return line.decode().strip()

    def poll(self) -> Revoked | Update | None:
        line = self._line()
        if not line:
            return None
        if not line.startswith("change "):
            return Revoked(line)
        self.seq += 1
        new = {name: read_secret(path) for name, _, path in (w.partition("=") for w in line.split()[1:])}
        values = {name: Secret(value.buffer) for name, value in {**self.values, **new}.items()}
        changed = tuple(n for n in sorted(new) if n not in self.files and self.values.get(n) != new[n])
        self.values = values
        env: dict[str, str | Secret] = {**self.base, **self.files}
        env.update((n, v) for n, v in values.items() if n not in self.files)
        contents = {n: Secret(v.buffer) for n, v in new.items() if n in self.files}
        for value in new.values():
            value.wipe()
        return Update(self.seq, env, tuple(values.values()), contents, changed)

    def rotated(self, seq: int) -> None:
        with open(os.path.join(self.folder, "rotated"), "a") as f:
            f.write(f"{seq}\n")

    def end(self, exit_status: int, duration_ms: int) -> None:
        for value in self.values.values():  # its copies go as the supervisor's do
            value.wipe()
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
    parser.add_argument("--file", action="append", default=[])
    parser.add_argument("--on-change", default="none")
    parser.add_argument("--restart-limit", type=int, default=5)
    parser.add_argument("--backoff", type=float, default=1.0)
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
    files = FileSet()
    paths: dict[str, str] = {}
    values = {name: Secret(value.buffer) for name, value in env.items() if isinstance(value, Secret)}
    for spec in args.file:
        name, _, path = spec.partition("=")
        content = read_secret(path)
        values[name] = Secret(content.buffer)
        secrets.append(Secret(content.buffer))
        env[name] = paths[name] = files.add(name, content, 0o400).path
        content.wipe()
    mode, _, signame = args.on_change.partition(":")
    on_change = OnChange(mode, signal.Signals[f"SIG{signame}"] if signame else None,
                         limit=args.restart_limit, first=args.backoff)
    if args.ready:
        with open(args.ready + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(args.ready + ".tmp", args.ready)
    try:
        path = env.get("PATH")
        resolved = resolve_command(command[0], path if isinstance(path, str) else None)
        launch = Launch(argv=[resolved, *command[1:]], env=env, secrets=tuple(secrets), mask=args.mask,
                        timeout=args.timeout, kill_grace=args.kill_grace,
                        lease=FifoLease(args.lease, env, values, paths) if args.lease else None,
                        mask_hex=args.mask_hex, files=files, on_change=on_change)
        return run(launch)
    except RunwrapError as exc:
        for secret in secrets:
            secret.wipe()
        sys.stderr.write(f"runwrap: {exc.message}\n")
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
