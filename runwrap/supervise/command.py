"""Resolve the command before forking, as ptyprocess does.

The command is looked up on the child's PATH the way execvp would, so a missing or unrunnable
command fails with the shell's 127/126 message before any secret is fetched or any child started.
"""

from __future__ import annotations

import errno
import os
import stat

from runwrap.errors import CannotExecute, CommandNotFound


def resolve_command(cmd: str, path: str | None) -> str:
    """The file execvp would run for `cmd` on the child's PATH; 127/126 errors as a shell gives them."""
    if not cmd:
        raise CommandNotFound(": command not found")
    if "/" in cmd:
        candidates = [cmd]
    else:
        search = path if path is not None else (os.confstr("CS_PATH") or os.defpath)
        candidates = [os.path.join(folder or ".", cmd) for folder in search.split(":")]
    refused: str | None = None
    for candidate in candidates:
        try:
            info = os.stat(candidate)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.ELOOP) or ("/" in cmd and exc.errno != errno.ENOENT):
                refused = refused or f"{candidate}: {os.strerror(exc.errno or 0)}"
            continue
        if stat.S_ISDIR(info.st_mode):
            refused = refused or f"{candidate}: Is a directory"
        elif not stat.S_ISREG(info.st_mode) or not os.access(candidate, os.X_OK):
            refused = refused or f"{candidate}: Permission denied"
        else:
            _refuse_shebang_loop(candidate)
            return candidate
    if refused:
        raise CannotExecute(refused)
    raise CommandNotFound(f"{cmd}: command not found")


def _refuse_shebang_loop(path: str) -> None:
    """Refuse a script whose `#!` line would make runwrap run this same script again, forever.

    `#!/usr/bin/env -S runwrap deploy -- bash` runs bash on the script; `#!/usr/bin/env -S runwrap
    deploy --` runs the script itself under runwrap, which reads the same line again.
    """
    try:
        with open(path, "rb") as script:
            head = script.read(512)
    except OSError:
        return
    if not head.startswith(b"#!"):
        return
    words = head[2:].split(b"\n", 1)[0].split()
    if words and os.path.basename(words[0]) == b"env":
        words = _env_operands(words[1:])
    if not words or os.path.basename(words[0]) != b"runwrap":
        return
    rest = words[1:]
    command = rest[rest.index(b"--") + 1:] if b"--" in rest else []
    if not command:
        raise CannotExecute(f"refusing to run {path}: its shebang runs runwrap on itself")


def _env_operands(args: list[bytes]) -> list[bytes]:
    """What env(1) runs: its arguments after options (`-S`, `-i`, `-u NAME`) and NAME=value pairs."""
    i = 0
    while i < len(args):
        word = args[i]
        if word in (b"-u", b"-C", b"--unset", b"--chdir"):
            i += 2
        elif word.startswith(b"-S") and len(word) > 2:
            return [word[2:], *args[i + 1:]]
        elif word.startswith(b"-") or b"=" in word:
            i += 1
        else:
            break
    return args[i:]
