"""Secret files that never touch a disk, for programs that take a credential only as a file.

By default a file is an anonymous memory file (`memfd_create`): runwrap keeps its writable
descriptor (close-on-exec), and the child inherits a second, read-only one, opened through
/proc/self/fd, at the number the variable names (`/dev/fd/N`). Opening /dev/fd/N gives a fresh
offset, so a program may read it any number of times; `stat` sees a regular file with the mode
the profile asked for, which ssh and psql check. No MFD_ALLOW_SEALING: then no one, the child
included, can add a seal that would stop runwrap rewriting the content when it rotates.

`path: true` is for a program that hands the path to another process (which cannot open the
child's /dev/fd): the file goes in a private 0700 folder on a memory file system, $XDG_RUNTIME_DIR
when that is tmpfs, else /dev/shm, and runwrap refuses to run when neither is one. The folder is
removed once the child's tree has ended and been reaped, however the child ended; a run that was
itself killed with SIGKILL leaves it behind in memory, and the next run that makes files removes
it (the folder's name holds runwrap's pid and pid namespace).

Before a file goes, its content is overwritten with zeros, so the pages freed hold no secret.
A run's files are a `fileset.FileSet`, which loads this module when it makes the first one.
"""

from __future__ import annotations

import os
import stat

from runwrap.errors import RunwrapError
from runwrap.secret import Secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

MEMORY_FILE_SYSTEMS = ("tmpfs", "ramfs")
PREFIX = "runwrap-files-"


class MemFile:
    """One secret file: `path` is what its variable holds; `child_fd` the descriptor the child inherits."""

    def __init__(self, name: str, content: Secret, mode: int, folder: PrivateFolder | None = None) -> None:
        self.name = name
        self.child_fd: int | None = None
        self.file: str | None = None  # the path: true file, to unlink
        if folder is None:
            self.fd = os.memfd_create(f"runwrap:{name}", os.MFD_CLOEXEC)
        else:
            self.file = os.path.join(folder.path, name)
            self.fd = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            self.rewrite(content)
            os.fchmod(self.fd, mode)  # after the write: mode 0400 is the child's, runwrap's fd stays writable
            if folder is None:
                self.child_fd = os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | os.O_CLOEXEC)
                self.path = f"/dev/fd/{self.child_fd}"
            else:
                self.path = self.file or ""
        except BaseException:
            self.destroy()
            raise

    def rewrite(self, content: Secret) -> None:
        """Replace the content in place (a rotation); readers of /dev/fd/N see it on their next open."""
        view = memoryview(content.buffer)
        try:
            os.ftruncate(self.fd, 0)
            at = 0
            while at < len(view):
                at += os.pwrite(self.fd, view[at:], at)
        finally:
            view.release()

    def destroy(self) -> None:
        """Zero the content, close both descriptors, unlink the path: true file. Safe to call twice."""
        if self.fd >= 0:
            try:
                size = os.fstat(self.fd).st_size
                if size:
                    os.pwrite(self.fd, bytes(size), 0)
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = -1
        if self.child_fd is not None:
            os.close(self.child_fd)
            self.child_fd = None
        if self.file is not None:
            try:
                os.unlink(self.file)
            except FileNotFoundError:
                pass
            self.file = None


class PrivateFolder:
    """A 0700 folder of runwrap's on a memory file system, for the path: true files of one run."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        base = memory_base(environ)
        tag = f"{PREFIX}{_pid_namespace()}-"
        _sweep(base, tag)
        self.path = os.path.join(base, f"{tag}{os.getpid()}-{os.urandom(6).hex()}")
        os.mkdir(self.path, 0o700)
        info = os.lstat(self.path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise RunwrapError(f"{self.path} is not a private folder of this user — remove it and run again")

    def remove(self) -> None:
        """Remove the folder and anything the child left in it. Safe to call twice."""
        _remove_tree(self.path)


def memory_base(environ: Mapping[str, str]) -> str:
    """$XDG_RUNTIME_DIR if it is on a memory file system, else /dev/shm if that is; else refuse."""
    candidates = [environ.get("XDG_RUNTIME_DIR", ""), "/dev/shm"]
    for candidate in candidates:
        if os.path.isabs(candidate) and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK) \
                and fs_type(candidate) in MEMORY_FILE_SYSTEMS:
            return candidate
    raise RunwrapError("a path: true file needs a memory file system, and neither $XDG_RUNTIME_DIR nor "
                       "/dev/shm is tmpfs here — mount one, or drop path: true to use /dev/fd")


def fs_type(path: str) -> str:
    """The type of the file system `path` is on, from /proc/self/mounts (the last, deepest mount wins)."""
    target = os.path.realpath(path)
    found, depth = "", -1
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = _unescape(fields[1])
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= depth:
                    found, depth = fields[2], len(point)
    except OSError:
        return ""
    return found


def _unescape(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as \040, \011, \012, \134.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]") or "0"
    except OSError:
        return "0"


def _sweep(base: str, tag: str) -> None:
    """Remove the folders that runs of this pid namespace left when they were killed (pid gone)."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(tag):
            continue
        pid = name[len(tag) :].partition("-")[0]
        folder = os.path.join(base, name)
        try:
            info = os.lstat(folder)
        except OSError:
            continue
        if pid.isdigit() and stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() \
                and not os.path.exists(f"/proc/{pid}"):
            _remove_tree(folder)


def _remove_tree(folder: str) -> None:
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        pass
