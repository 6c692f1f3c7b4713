"""The secret files of one run (a credential's `files:`), as the supervisor is given them.

Every run has a FileSet, most of them empty: the files themselves (memfile) load with the first one.
"""

from __future__ import annotations

import os

from runwrap.errors import RunwrapError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from runwrap.secret import Secret
    from runwrap.supervise.memfile import MemFile, PrivateFolder


class FileSet:
    """The secret files of one run, and the private folder of its path: true ones."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ  # where $XDG_RUNTIME_DIR is read
        self.files: list[MemFile] = []
        self.folder: PrivateFolder | None = None

    def add(self, name: str, content: Secret, mode: int, *, path: bool = False) -> MemFile:
        from runwrap.supervise.memfile import MemFile  # a run without files: never loads it

        try:
            made = MemFile(name, content, mode, self.make_folder() if path else None)
        except OSError as exc:
            raise RunwrapError(f"cannot make the secret file {name} in memory: {exc.strerror}"
                               " — check the free memory and the open-files limit (ulimit -n)") from None
        self.files.append(made)
        return made

    def make_folder(self) -> PrivateFolder:
        """The folder for path: true files, made on first use (the exec path makes it before fetching,
        so a missing memory file system is refused before any secret is asked for)."""
        if self.folder is None:
            from runwrap.supervise.memfile import PrivateFolder

            try:
                self.folder = PrivateFolder(self.environ)
            except OSError as exc:
                raise RunwrapError(f"cannot make a private folder for path: true files: {exc.strerror}"
                                   " — check that $XDG_RUNTIME_DIR or /dev/shm is writable") from None
        return self.folder

    def rewrite(self, contents: dict[str, Secret]) -> None:
        """A rotation: the files named in `contents` (by variable) get it, in place; the contents are wiped."""
        try:
            for made in self.files:
                if made.name in contents:
                    made.rewrite(contents[made.name])
        except OSError as exc:
            raise RunwrapError(f"cannot rewrite a secret file in memory: {exc.strerror}"
                               " — check the free memory") from None
        finally:
            for content in contents.values():
                content.wipe()

    def child_fds(self) -> tuple[int, ...]:
        return tuple(f.child_fd for f in self.files if f.child_fd is not None)

    def remove(self) -> None:
        """Zero and close every file, remove the folder. Safe to call more than once."""
        for made in self.files:
            made.destroy()
        if self.folder is not None:
            self.folder.remove()
            self.folder = None

    def __bool__(self) -> bool:
        return bool(self.files)
